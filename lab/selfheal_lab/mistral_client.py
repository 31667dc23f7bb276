# SPDX-License-Identifier: Apache-2.0
"""A tiny stdlib REST client for Mistral's v2 API (the lab's, or any).

Used by the tests, the demo and the benchmarks. Mistral returns some fields
as JSON inside a string (``input``, ``output``, ``params``, ``result``,
``published``...); these helpers decode them into Python values and follow
pagination.

Against a Mistral with Keystone auth (the lab's ``authenticated`` mode) pass
``token``: it is sent as ``X-Auth-Token`` and never put in a message.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request

TERMINAL_STATES = ("SUCCESS", "ERROR", "CANCELLED")


class MistralAPIError(RuntimeError):
    """Mistral's REST API answered with an error status."""

    def __init__(self, status, detail, method, url):
        super().__init__(f"{method} {url}: HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


_JSON_FIELDS = ("input", "output", "params", "result", "published", "runtime_context", "env")


def _request(method, url, body=None, content_type="application/json", timeout=60,
             accept="application/json", token=None):
    data = None
    headers = {"Accept": accept}
    if token:
        headers["X-Auth-Token"] = token
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            detail = json.loads(text).get("faultstring", text)
        except (ValueError, AttributeError):
            detail = text
        raise MistralAPIError(e.code, detail, method, url) from None
    return json.loads(text) if text.strip() else None


def _decode(resource):
    """Turn Mistral's JSON-in-a-string fields into Python values."""
    if not isinstance(resource, dict):
        return resource
    for key in _JSON_FIELDS:
        value = resource.get(key)
        if isinstance(value, str):
            try:
                resource[key] = json.loads(value)
            except ValueError:
                pass
    return resource


def _url(url, path, **query):
    query = {k: v for k, v in query.items() if v is not None}
    full = url.rstrip("/") + path
    return full + ("?" + urllib.parse.urlencode(query) if query else "")


def _get_all(url, path, collection, token=None, **query):
    items = []
    next_url = _url(url, path, **query)
    while next_url:
        page = _request("GET", next_url, token=token)
        items.extend(_decode(item) for item in page.get(collection, []))
        next_url = page.get("next")
    return items


def create_execution(url, workflow_name, workflow_input, params=None, token=None):
    """Start ``workflow_name`` with ``workflow_input`` (a dict); returns the execution."""
    body = {"workflow_name": workflow_name, "input": json.dumps(workflow_input or {})}
    if params:
        body["params"] = json.dumps(params)
    return _decode(_request("POST", _url(url, "/executions"), body, token=token))


def get_execution(url, execution_id, token=None):
    return _decode(_request("GET", _url(url, f"/executions/{execution_id}"), token=token))


def wait_execution(url, execution_id, timeout=60.0, interval=0.05, max_interval=0.5,
                   token=None):
    """Poll until the execution is SUCCESS, ERROR or CANCELLED; returns it.

    Polls start every ``interval`` seconds and slow down to ``max_interval``.

    :raises TimeoutError: with the last state when ``timeout`` runs out.
    """
    deadline = time.monotonic() + timeout
    while True:
        execution = get_execution(url, execution_id, token=token)
        if execution["state"] in TERMINAL_STATES:
            return execution
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_id} still {execution['state']} "
                               f"after {timeout} s: {execution.get('state_info')}")
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def list_tasks(url, execution_id, token=None):
    """The task executions of one workflow execution."""
    return _get_all(url, f"/executions/{execution_id}/tasks", "tasks", token=token)


def list_executions(url, workflow_name=None, token=None):
    return _get_all(url, "/executions", "executions", token=token, workflow_name=workflow_name)


def create_or_update_workbook(url, yaml_text, token=None, scope=None):
    """Create the workbook, or update it if one with that name exists.

    :param scope: ``public`` makes it usable by every project (Mistral with
        auth keeps a workbook private to its project by default).
    """
    target = _url(url, "/workbooks", scope=scope)
    try:
        return _request("PUT", target, yaml_text, "text/plain", accept="text/plain",
                        token=token)
    except MistralAPIError as e:
        if e.status != 404:
            raise
    return _request("POST", target, yaml_text, "text/plain", accept="text/plain",
                    token=token)


def delete_workbook(url, name):
    """Delete a workbook; True when it existed."""
    try:
        _request("DELETE", _url(url, f"/workbooks/{name}"))
    except MistralAPIError as e:
        if e.status == 404:
            return False
        raise
    return True


def list_workbooks(url):
    return _get_all(url, "/workbooks", "workbooks")


def validate_workbook(url, yaml_text):
    """Returns ``{"valid": bool, "error": str (when invalid)}``."""
    return _request("POST", _url(url, "/workbooks/validate"), yaml_text, "text/plain")


def list_actions(url, prefix="selfheal."):
    """Actions whose name starts with ``prefix`` (all with ``prefix=None``)."""
    actions = _get_all(url, "/actions", "actions")
    return [a for a in actions if not prefix or a.get("name", "").startswith(prefix)]


def action_executions(url, execution_id, _path=None, token=None):
    """Every task of the execution (and of its sub-workflows) with its actions.

    One row per action execution (tasks without one give a row with
    ``action`` None): ``workflow`` (path of workflow names), ``task``,
    ``task_state``, ``task_state_info``, ``published``, ``action``,
    ``state``, ``state_info``, ``input``, ``output``, ``id``.
    """
    execution = get_execution(url, execution_id, token=token)
    path = (_path or []) + [execution.get("workflow_name")]
    rows = []
    for task in _get_all(url, f"/executions/{execution_id}/tasks", "tasks", token=token):
        base = {"workflow": "/".join(p or "?" for p in path), "task": task.get("name"),
                "task_id": task.get("id"), "task_state": task.get("state"),
                "task_state_info": task.get("state_info"), "published": task.get("published")}
        actions = _get_all(url, f"/tasks/{task['id']}/action_executions", "action_executions",
                           token=token, include_output="true")
        for action in actions:
            rows.append(dict(base, action=action.get("name"), state=action.get("state"),
                             state_info=action.get("state_info"), input=action.get("input"),
                             output=action.get("output"), id=action.get("id")))
        subs = _get_all(url, f"/tasks/{task['id']}/executions", "executions", token=token)
        for sub in subs:
            rows.extend(action_executions(url, sub["id"], path, token=token))
        if not actions and not subs:
            rows.append(dict(base, action=None, state=None, state_info=None, input=None,
                             output=None, id=None))
    return rows


def get_workflow(url, name, token=None):
    """The workflow definition ``name`` (its ``id`` is what Zaqar triggers use)."""
    return _request("GET", _url(url, f"/workflows/{urllib.parse.quote(name)}"), token=token)


def create_workflows(url, yaml_text, token=None):
    """Create the workflows a ``version: '2.0'`` YAML text defines."""
    return _request("POST", _url(url, "/workflows"), yaml_text, "text/plain",
                    accept="text/plain", token=token)


def _delete(url, path, token=None):
    """DELETE ``path``; True when it existed (False on 404)."""
    try:
        _request("DELETE", _url(url, path), token=token)
    except MistralAPIError as e:
        if e.status == 404:
            return False
        raise
    return True


def delete_workflow(url, name, token=None):
    """Delete a workflow definition; True when it existed."""
    return _delete(url, f"/workflows/{urllib.parse.quote(name)}", token=token)


def create_cron_trigger(url, name, workflow_name, pattern, workflow_input=None,
                        remaining_executions=None, first_execution_time=None, token=None):
    """Create a cron trigger. Mistral 23 takes 6-field patterns with the
    seconds **last** (``* * * * * */5``: every 5 s).

    :param first_execution_time: ``'%Y-%m-%d %H:%M'`` UTC, at least 60 s ahead.
    """
    body = {"name": name, "workflow_name": workflow_name, "pattern": pattern,
            "workflow_input": json.dumps(workflow_input or {})}
    if remaining_executions is not None:
        body["remaining_executions"] = remaining_executions
    if first_execution_time is not None:
        body["first_execution_time"] = first_execution_time
    return _request("POST", _url(url, "/cron_triggers"), body, token=token)


def delete_cron_trigger(url, name, token=None):
    """Delete a cron trigger; True when it existed."""
    return _delete(url, f"/cron_triggers/{urllib.parse.quote(name)}", token=token)


def create_environment(url, name, variables, token=None):
    """Create the environment ``name`` (raises MistralAPIError 409 when it exists)."""
    return _decode(_request("POST", _url(url, "/environments"), {
        "name": name, "variables": json.dumps(variables)}, token=token))


def get_environment(url, name, token=None):
    """The environment ``name`` (variables decoded), or None."""
    try:
        found = _request("GET", _url(url, f"/environments/{urllib.parse.quote(name)}"),
                         token=token)
    except MistralAPIError as e:
        if e.status == 404:
            return None
        raise
    found = _decode(found)
    if isinstance(found.get("variables"), str):
        found["variables"] = json.loads(found["variables"])
    return found


def delete_environment(url, name, token=None):
    """Delete an environment; True when it existed."""
    return _delete(url, f"/environments/{urllib.parse.quote(name)}", token=token)
