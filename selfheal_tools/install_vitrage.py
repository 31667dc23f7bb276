# SPDX-License-Identifier: Apache-2.0
"""Load the Vitrage templates into a running Vitrage: ``selfheal install --with-vitrage``.

Through python-vitrageclient's template API when it is installed (selfheal's
``vitrage`` extra), else the same REST calls on Vitrage's ``/v1/template``:
``GET`` lists and shows, ``PUT`` adds, ``DELETE`` removes.

Idempotent: Vitrage stores a template with its parameters resolved (their
defaults) and the ``parameters`` section removed; :func:`stored_form` makes
the same form of the file, and a template whose stored content equals it is
left alone. A changed one is replaced (deleted, then added once Vitrage has
let go of its name: names are unique), a new one added. Vitrage validates
each with its own validator; a rejected template fails the install with
Vitrage's message. ``dry_run`` changes nothing.

Where Vitrage is: an explicit URL (``--vitrage-url`` or ``$OS_VITRAGE_URL``,
without Keystone, optionally with ``$OS_AUTH_TOKEN``), or the usual ``OS_*``
Keystone variables with Vitrage found in the catalog (service type ``rca``).
"""

import copy
import os
import re
import time

import yaml
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from selfheal_tools import data
from selfheal_tools.install import InstallError

_GET_PARAM = re.compile(r"get_param\(.*\)")
TEMPLATE_URL = "v1/template/"


# --- what Vitrage stores ------------------------------------------------------

def stored_form(text):
    """The template as Vitrage stores it after adding it without params.

    Read as Vitrage reads it (YAML ``BaseLoader``: every value a string);
    each ``get_param(name)`` value replaced by the parameter's default, the
    way Vitrage's function resolver walks the template (dict values, and the
    dicts inside lists); the ``parameters`` section dropped.
    """
    template = yaml.load(text, Loader=yaml.BaseLoader)
    if not isinstance(template, dict) or not isinstance(template.get("metadata"), dict):
        raise InstallError("not a Vitrage template (no metadata section)")
    resolved = copy.deepcopy(template)
    params = resolved.get("parameters") or {}
    _resolve(resolved, params)
    resolved.pop("parameters", None)
    return resolved


def _resolve(block, params):
    for key, value in block.items():
        if isinstance(value, str) and _GET_PARAM.match(value):
            name = value[len("get_param("):-1].strip() if value.endswith(")") else None
            default = (params.get(name) or {}).get("default") if name in params else None
            if default:
                block[key] = default
        elif isinstance(value, dict):
            _resolve(value, params)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _resolve(item, params)


# --- talking to Vitrage -------------------------------------------------------

def vitrage_session(vitrage_url=None):
    """``(session, endpoint)`` for Vitrage's API (the root, without ``/v1``)."""
    url = vitrage_url or os.environ.get("OS_VITRAGE_URL")
    if url:
        token = os.environ.get("OS_AUTH_TOKEN") or "selfheal-noauth"
        return ks_session.Session(auth=token_endpoint.Token(url, token)), url.rstrip("/")
    if not os.environ.get("OS_AUTH_URL"):
        raise InstallError("no Vitrage to talk to: pass --vitrage-url (or set OS_VITRAGE_URL) "
                           "for a Vitrage without Keystone, or set the OS_* variables "
                           "(OS_AUTH_URL, OS_USERNAME, ...) of your cloud")
    from selfheal_tools import install

    sess = install.keystone_session()
    try:
        endpoint = sess.get_endpoint(service_type="rca", interface="public",
                                     region_name=os.environ.get("OS_REGION_NAME"))
    except ks_exc.ClientException as e:
        raise InstallError(f"cannot log in to Keystone or find Vitrage in the catalog: {e}") \
            from None
    if not endpoint:
        raise InstallError("the catalog has no rca (Vitrage) endpoint: is Vitrage installed? "
                           "Or pass --vitrage-url")
    return sess, endpoint.rstrip("/")


class RestTemplates:
    """Vitrage's template API over plain REST: the calls python-vitrageclient makes."""

    via = "REST"

    def __init__(self, sess, endpoint):
        self.sess = sess
        self.url = f"{endpoint}/{TEMPLATE_URL}"

    def _call(self, method, url, **kwargs):
        try:
            answer = self.sess.request(url, method, raise_exc=False,
                                       headers={"Accept": "application/json"}, **kwargs)
        except ks_exc.ConnectFailure as e:
            raise InstallError(f"cannot reach Vitrage at {self.url}: {e}") from None
        if answer.status_code >= 400:
            raise _HttpError(answer.status_code, answer.text[:500])
        return answer.json() if answer.text.strip() else None

    def list(self):
        return self._call("GET", self.url)

    def show(self, uuid):
        return self._call("GET", self.url + uuid)

    def add(self, text):
        template = yaml.load(text, Loader=yaml.BaseLoader)   # as the client reads it
        return self._call("PUT", self.url, json={"templates": [[None, template]],
                                                 "template_type": None, "params": None,
                                                 "overwrite": False})

    def delete(self, uuid):
        return self._call("DELETE", self.url, json={"id": uuid})


class ClientTemplates(RestTemplates):
    """The same calls through python-vitrageclient's ``template`` manager."""

    via = "python-vitrageclient"

    def __init__(self, sess, endpoint):
        from vitrageclient.v1 import client

        self.url = f"{endpoint}/{TEMPLATE_URL}"
        self.manager = client.Client(session=sess, endpoint_override=endpoint).template

    def _guard(self, call, *args, **kwargs):
        from vitrageclient import exceptions as vc_exc

        try:
            return call(*args, **kwargs)
        except ks_exc.ConnectFailure as e:
            raise InstallError(f"cannot reach Vitrage at {self.url}: {e}") from None
        except vc_exc.ClientException as e:
            raise _HttpError(getattr(e, "code", None), str(e)) from None

    def list(self):
        return self._guard(self.manager.list)

    def show(self, uuid):
        return self._guard(self.manager.show, uuid)

    def add(self, text):
        return self._guard(self.manager.add, template_str=text)

    def delete(self, uuid):
        return self._guard(self.manager.delete, uuid)


class _HttpError(Exception):
    def __init__(self, status, text):
        super().__init__(f"{status} {text}")
        self.status = status


def template_api(vitrage_url=None, use_client=None):
    """The template API of the Vitrage to install into.

    :param use_client: True forces python-vitrageclient, False plain REST;
        None uses the client when it is importable.
    """
    sess, endpoint = vitrage_session(vitrage_url)
    if use_client is None:
        try:
            import vitrageclient.v1.client  # noqa: F401
            use_client = True
        except ImportError:
            use_client = False
    return (ClientTemplates if use_client else RestTemplates)(sess, endpoint)


# --- install ------------------------------------------------------------------

def _wait_gone(api, name, timeout):
    """Vitrage deletes asynchronously: until no template has ``name``."""
    deadline = time.monotonic() + timeout
    while any(t.get("name") == name for t in api.list() or []):
        if time.monotonic() >= deadline:
            raise InstallError(f"Vitrage still lists template {name} {timeout:.0f} s after "
                               "deleting it; is its evaluator running? Try again later")
        time.sleep(0.5)


def _wait_active(api, name, timeout):
    deadline = time.monotonic() + timeout
    while True:
        rows = [t for t in api.list() or [] if t.get("name") == name]
        status = rows[0].get("status") if rows else None
        if status != "LOADING" or time.monotonic() >= deadline:
            return rows[0] if rows else None
        time.sleep(0.5)


def install_templates(vitrage_url=None, dry_run=False, template_paths=None, use_client=None,
                      timeout=60):
    """Create, replace or keep every template.

    :returns: ``{"vitrage", "via", "dry_run", "templates": [{"name", "file",
        "change", "status", "uuid"}]}``; ``change`` is ``created``,
        ``updated``, ``unchanged`` (or ``would create`` / ``would update``).
    :raises InstallError: Vitrage unreachable, or a template it rejects.
    """
    api = template_api(vitrage_url, use_client)
    try:
        return _install(api, dry_run, template_paths, timeout)
    except _HttpError as error:
        raise InstallError(f"Vitrage at {api.url} answered {error}") from None


def _install(api, dry_run, template_paths, timeout):
    loaded = {t["name"]: t for t in api.list() or [] if t.get("status") != "DELETED"}
    report = []
    for path in template_paths or data.vitrage_template_paths():
        text = path.read_text()
        try:
            wanted = stored_form(text)
        except (yaml.YAMLError, InstallError) as error:
            raise InstallError(f"{path}: {error}; run `selfheal validate {path}`") from None
        name = wanted["metadata"].get("name")
        current = loaded.get(name)
        entry = {"name": name, "file": str(path), "status": None, "uuid": None}
        report.append(entry)
        if current is not None:
            entry.update(status=current.get("status"), uuid=current.get("uuid"))
            same = current.get("status") in ("ACTIVE", "LOADING") and \
                api.show(current["uuid"]) == wanted
            if same:
                entry["change"] = "unchanged"
                continue
        change = "updated" if current is not None else "created"
        if dry_run:
            entry["change"] = f"would {change[:-1]}"
            continue
        if current is not None:
            api.delete(current["uuid"])
            _wait_gone(api, name, timeout)
        rows = api.add(text) or []
        row = rows[0] if rows else {}
        if row.get("status") == "ERROR" or not rows:
            raise InstallError(
                f"Vitrage rejected {path}: {row.get('status details') or row}; run "
                f"`selfheal validate {path}`")
        row = _wait_active(api, name, timeout) or row
        entry.update(change=change, status=row.get("status"), uuid=row.get("uuid"))
    return {"vitrage": api.url.rstrip("/"), "via": api.via, "dry_run": dry_run,
            "templates": report}


def describe(result):
    """Lines for a person: what changed in Vitrage."""
    dry = " (dry run: nothing changed)" if result["dry_run"] else ""
    lines = [f"Vitrage: {result['vitrage']} via {result['via']}{dry}"]
    for template in result["templates"]:
        status = f" ({template['status']})" if template.get("status") and \
            template["status"] != "ACTIVE" and not result["dry_run"] else ""
        lines.append(f"  template {template['name']}: {template['change']}{status}")
    return lines
