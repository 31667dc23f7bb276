# SPDX-License-Identifier: Apache-2.0
"""Load the pack into a running Mistral: ``selfheal install``.

Creates or updates every shipped workbook (only when its text differs), and
checks that the Mistral actually has our actions registered: the workbooks
are useless without them, and only installing the package on every Mistral
node and restarting Mistral registers them. Idempotent; ``dry_run`` says
what would change and changes nothing.

Where Mistral is: an explicit URL (``--mistral-url`` or ``$OS_MISTRAL_URL``,
for a Mistral without Keystone, optionally with ``$OS_AUTH_TOKEN``), or the
usual ``OS_*`` Keystone variables, with Mistral found in the catalog
(service type ``workflowv2``).
"""

import os

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from selfheal_tools import data
from selfheal_tools import workbook_checks

#: which Mistral nodes need the package, said the same way in the README,
#: doc/source/install.rst and here (a test keeps them together)
WHERE_TO_INSTALL = (
    "Install the selfheal package on every Mistral node and restart Mistral there (it loads "
    "plugins only at start): executors run the actions, engines evaluate the YAQL functions "
    "(selfheal_alarm, ...), and API nodes list the actions for this check.")


class InstallError(Exception):
    """Something the operator must fix; the message says what."""


def keystone_session():
    """A Keystone session from the usual ``OS_*`` variables (password auth)."""
    loader = loading.get_plugin_loader("password")
    auth = loader.load_from_options(
        auth_url=os.environ["OS_AUTH_URL"], username=os.environ.get("OS_USERNAME"),
        password=os.environ.get("OS_PASSWORD"), project_name=os.environ.get("OS_PROJECT_NAME"),
        user_domain_name=os.environ.get("OS_USER_DOMAIN_NAME", "Default"),
        project_domain_name=os.environ.get("OS_PROJECT_DOMAIN_NAME", "Default"))
    return ks_session.Session(auth=auth, verify=os.environ.get("OS_CACERT", True))


def mistral_session(mistral_url=None):
    """``(session, endpoint)`` for Mistral's v2 API."""
    url = mistral_url or os.environ.get("OS_MISTRAL_URL")
    if url:
        token = os.environ.get("OS_AUTH_TOKEN") or "selfheal-noauth"
        return ks_session.Session(auth=token_endpoint.Token(url, token)), url.rstrip("/")
    if not os.environ.get("OS_AUTH_URL"):
        raise InstallError("no Mistral to talk to: pass --mistral-url (or set OS_MISTRAL_URL) "
                           "for a Mistral without Keystone, or set the OS_* variables "
                           "(OS_AUTH_URL, OS_USERNAME, ...) of your cloud")
    sess = keystone_session()
    try:
        endpoint = sess.get_endpoint(service_type="workflowv2", interface="public",
                                     region_name=os.environ.get("OS_REGION_NAME"))
    except ks_exc.ClientException as e:
        raise InstallError(f"cannot log in to Keystone or find Mistral in the catalog: {e}") \
            from None
    if not endpoint:
        raise InstallError("the catalog has no workflowv2 (Mistral) endpoint")
    return sess, endpoint.rstrip("/")


def _get(sess, url, **kwargs):
    return sess.get(url, raise_exc=False, **kwargs)


def _absent(sess, endpoint, names):
    """The names of ``names`` that Mistral at ``endpoint`` has no action for.

    Each is looked up by name (``GET /v2/actions/<name>``): a Mistral with
    mistral-extra has thousands of actions, and one unpaged list misses ours.
    """
    from urllib.parse import quote

    absent = []
    for name in names:
        try:
            answer = _get(sess, f"{endpoint}/actions/{quote(name, safe='')}")
        except ks_exc.ConnectFailure as e:
            raise InstallError(f"cannot reach Mistral at {endpoint}: {e}") from None
        if answer.status_code == 404:
            absent.append(name)
        elif answer.status_code != 200:
            raise InstallError(f"Mistral at {endpoint} answered {answer.status_code} to "
                               f"GET /actions/{name}: {answer.text[:300]}")
    return absent


def absent_actions(names, mistral_url=None):
    """The action names of ``names`` that the Mistral (``mistral_url``, else
    the ``OS_*`` variables) has not registered."""
    sess, endpoint = mistral_session(mistral_url)
    return _absent(sess, endpoint, names)


def install(mistral_url=None, dry_run=False, workbook_paths=None):
    """Load the workbooks and check the actions.

    :returns: ``{"mistral", "workbooks": [{"name", "file", "change"}],
        "missing_actions": [...], "dry_run"}``; ``change`` is ``created``,
        ``updated``, ``unchanged`` (or ``would create`` / ``would update``).
    :raises InstallError: Mistral unreachable, or a workbook it rejects.
    """
    import yaml

    sess, endpoint = mistral_session(mistral_url)
    missing = _absent(sess, endpoint, sorted(workbook_checks.selfheal_actions()))

    report = []
    for path in workbook_paths or data.workbook_paths():
        text = path.read_text()
        name = yaml.safe_load(text)["name"]
        current = _get(sess, f"{endpoint}/workbooks/{name}")
        if current.status_code == 200 and current.json().get("definition") == text:
            change = "unchanged"
        else:
            method = "PUT" if current.status_code == 200 else "POST"
            change = "updated" if method == "PUT" else "created"
            if dry_run:
                change = f"would {change[:-1]}"
            else:
                answer = sess.request(f"{endpoint}/workbooks", method, data=text,
                                      headers={"Content-Type": "text/plain"}, raise_exc=False)
                if answer.status_code >= 400:
                    raise InstallError(f"Mistral rejected {path}: {answer.status_code} "
                                       f"{answer.text[:500]}; run `selfheal validate {path}`")
        report.append({"name": name, "file": str(path), "change": change})
    return {"mistral": endpoint, "workbooks": report, "missing_actions": missing,
            "dry_run": dry_run}


def describe(result):
    """Lines for a person: what changed, and what to do about missing actions."""
    dry = " (dry run: nothing changed)" if result["dry_run"] else ""
    lines = [f"Mistral: {result['mistral']}{dry}"]
    for workbook in result["workbooks"]:
        lines.append(f"  workbook {workbook['name']}: {workbook['change']}")
    if result["missing_actions"]:
        lines.append(
            f"  MISSING actions: {', '.join(result['missing_actions'])}. " + WHERE_TO_INSTALL)
    else:
        lines.append("  actions: every selfheal action is registered")
    return lines
