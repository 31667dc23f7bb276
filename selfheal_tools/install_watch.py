# SPDX-License-Identifier: Apache-2.0
"""The host watch's cron trigger and kill switch: ``selfheal install
--with-watch`` and ``selfheal watch pause|resume|status``.

The trigger (``selfheal-watch``) starts ``selfheal.host_failure.watch``
every minute. Mistral cannot update a cron trigger in place, so a changed
pattern or input deletes it and creates it again; an unchanged one is left
alone. The kill switch is the Mistral environment ``selfheal-watch``:
``paused: true`` stops every heal the watch would start, from its next
cycle, without editing a workflow or the trigger.
"""

import json

from selfheal_tools.install import InstallError
from selfheal_tools.install import mistral_session

TRIGGER = "selfheal-watch"
WORKFLOW = "selfheal.host_failure.watch"
KILL_SWITCH = "selfheal-watch"
#: every minute; the watch observes for ``period`` (50 s) of it
DEFAULT_PATTERN = "* * * * *"


def _call(sess, method, url, **kwargs):
    answer = sess.request(url, method, raise_exc=False, **kwargs)
    if answer.status_code >= 400 and answer.status_code != 404:
        raise InstallError(f"Mistral answered {answer.status_code} to {method} {url}: "
                           f"{answer.text[:300]}")
    return answer


def _decoded(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def install_watch(mistral_url=None, dry_run=False, pattern=DEFAULT_PATTERN, watch_input=None):
    """Create or replace the watch's cron trigger; create the kill switch
    (off) when it does not exist.

    :param watch_input: inputs of the watch workflow (e.g. ``{"budget": 10}``).
    :returns: ``{"trigger": change, "kill_switch": change, "pattern", "input"}``
        with changes ``created``, ``replaced``, ``unchanged`` (or ``would ...``).
    """
    sess, endpoint = mistral_session(mistral_url)
    watch_input = dict(watch_input or {})
    current = _call(sess, "GET", f"{endpoint}/cron_triggers/{TRIGGER}")
    if current.status_code == 200:
        found = current.json()
        same = (found.get("pattern") == pattern
                and found.get("workflow_name") == WORKFLOW
                and (_decoded(found.get("workflow_input")) or {}) == watch_input)
        trigger = "unchanged" if same else "replaced"
    else:
        trigger = "created"
    if trigger != "unchanged" and not dry_run:
        if trigger == "replaced":
            _call(sess, "DELETE", f"{endpoint}/cron_triggers/{TRIGGER}")
        _call(sess, "POST", f"{endpoint}/cron_triggers", json={
            "name": TRIGGER, "workflow_name": WORKFLOW, "pattern": pattern,
            "workflow_input": json.dumps(watch_input)})
    switch = "unchanged"
    if _call(sess, "GET", f"{endpoint}/environments/{KILL_SWITCH}").status_code == 404:
        switch = "created"
        if not dry_run:
            _set_switch(sess, endpoint, False, "", create=True)
    if dry_run:
        trigger = trigger if trigger == "unchanged" else f"would be {trigger}"
        switch = switch if switch == "unchanged" else f"would be {switch}"
    return {"trigger": trigger, "kill_switch": switch, "pattern": pattern,
            "input": watch_input, "dry_run": dry_run}


def _set_switch(sess, endpoint, paused, reason, create=False):
    body = {"name": KILL_SWITCH, "description": "selfheal host watch kill switch",
            "variables": json.dumps({"paused": paused, "reason": reason})}
    _call(sess, "POST" if create else "PUT", f"{endpoint}/environments", json=body)


def set_paused(paused, reason="", mistral_url=None):
    """Turn the kill switch on (``paused``) or off; creates it if needed."""
    sess, endpoint = mistral_session(mistral_url)
    exists = _call(sess, "GET", f"{endpoint}/environments/{KILL_SWITCH}").status_code == 200
    _set_switch(sess, endpoint, paused, reason, create=not exists)


def status(mistral_url=None):
    """Lines for a person: the trigger, the kill switch, the last decision."""
    sess, endpoint = mistral_session(mistral_url)
    lines = []
    trigger = _call(sess, "GET", f"{endpoint}/cron_triggers/{TRIGGER}")
    if trigger.status_code == 200:
        found = trigger.json()
        lines.append(f"trigger {TRIGGER}: pattern '{found.get('pattern')}', next "
                     f"{found.get('next_execution_time')} UTC")
    else:
        lines.append(f"trigger {TRIGGER}: absent (selfheal install --with-watch creates it)")
    switch = _call(sess, "GET", f"{endpoint}/environments/{KILL_SWITCH}")
    variables = _decoded(switch.json().get("variables")) if switch.status_code == 200 else {}
    if (variables or {}).get("paused") is True:
        lines.append(f"kill switch: ON ({variables.get('reason') or 'no reason given'}): "
                     "no heal starts; `selfheal watch resume` turns it off")
    else:
        lines.append("kill switch: off")
    executions = _call(sess, "GET", f"{endpoint}/executions", params={
        "workflow_name": WORKFLOW, "sort_keys": "created_at", "sort_dirs": "desc",
        "limit": 1, "include_output": "true"})
    newest = (executions.json().get("executions") or [None])[0] \
        if executions.status_code == 200 else None
    if newest:
        output = _decoded(newest.get("output")) or {}
        cycles = output.get("cycles") or []
        lines.append(f"last watch: {newest.get('id')} {newest.get('state')} at "
                     f"{newest.get('created_at')}")
        if cycles:
            lines.append(f"  {cycles[-1]}")
    else:
        lines.append("last watch: none yet")
    return lines
