# SPDX-License-Identifier: Apache-2.0
"""Vitrage in the lab: its real ScenarioEvaluator on the lab's Nova and Mistral.

Optional part of the lab (Vitrage is retired upstream; its last PyPI release
still works). ``up()`` starts ``vitrage_box.py`` with the vitrage venv's
interpreter and records in ``endpoints.json`` (key ``vitrage``)::

    {"url": "http://127.0.0.1:P", "pid": ..., "log": ..., "templates_dir": ...,
     "templates": [{"file", "name", "uuid", "status", "status_details", "type"}],
     "invalid_templates": [...], "maintenance_alarm": "selfheal.maintenance",
     "fingerprint": ...}

The box builds Vitrage's entity graph from the lab's Nova (zone, hosts,
instances; servers with metadata ``selfheal_stack: NAME`` become a
``heat.stack`` NAME that is ``comprised`` of them), loads every template of
``templates_dir`` into Vitrage's template DB, and runs the real
``ScenarioEvaluator``; its ``execute_mistral`` actions reach the lab's
Mistral through Vitrage's own ``MistralNotifier``. Host alarms are Doctor
alarms (type ``doctor``, what ``vitrage event post`` creates); instance
alarms are Aodh event alarms (type ``aodh``): Doctor alarms only attach to
``nova.host``.

The box also answers ``POST /v1/event`` like Vitrage's API (what
python-vitrageclient's ``event.post`` sends); the lab's cloud configuration
names it as the ``rca`` endpoint, and ``up()`` installs python-vitrageclient
(selfheal's ``vitrage`` extra) into the lab's Mistral.

Every client call below returns once the evaluator has processed the event
and Vitrage's notifier has sent every execution it caused; the result holds
those executions: ``{"executions": [...], "pending": 0}``.

Stdlib only: this module runs in the operator's or test runner's Python.
"""

import datetime
import hashlib
import json
import pathlib
import subprocess

from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs

SERVICE = "vitrage"
PROCESS = "vitrage"
BOX_SCRIPT = pathlib.Path(__file__).resolve().parent / "vitrage_box.py"
DEFAULT_TEMPLATES_DIR = state.SOURCE_ROOT / "vitrage_templates"
MAINTENANCE_ALARM = "selfheal.maintenance"
START_TIMEOUT = 120.0


class VitrageLabError(RuntimeError):
    """The lab's Vitrage could not start, or its control API failed."""


def _endpoint():
    return state.read_endpoints().get(SERVICE)


def _log_tail(lines=40):
    try:
        text = processes.log_file(SERVICE, PROCESS).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _fingerprint(templates_dir, nova_info, mistral_info, maintenance_alarm):
    """Changes when a template file, the box, or what it talks to changes."""
    h = hashlib.sha256()
    for path in sorted(p for p in pathlib.Path(templates_dir).iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(BOX_SCRIPT.read_bytes())
    h.update(json.dumps([str(templates_dir), nova_info["compute_url"], nova_info["headers"],
                         mistral_info["url"], maintenance_alarm], sort_keys=True).encode())
    return h.hexdigest()


def _healthy(info):
    if not info or processes.running_pid(SERVICE, PROCESS) != info.get("pid"):
        return False
    try:
        return _call(info["url"], "GET", "/health", timeout=3).get("ok") is True
    except (OSError, ValueError, VitrageLabError):
        return False


def up(templates_dir=None, maintenance_alarm=MAINTENANCE_ALARM, port=None,
       timeout=START_TIMEOUT):
    """Start the lab's Vitrage (or keep the running one); return its endpoints.

    :param templates_dir: folder of Vitrage templates; default the
        project's ``vitrage_templates``. Every file in it is loaded; a
        restart happens when any of them changed.
    :param maintenance_alarm: Doctor alarm name :func:`set_maintenance` raises.
    :raises VitrageLabError: when the lab's Nova or Mistral is not running,
        or the box does not start (the message holds the end of its log).
    """
    templates_dir = pathlib.Path(templates_dir or DEFAULT_TEMPLATES_DIR).resolve()
    if not templates_dir.is_dir():
        raise VitrageLabError(f"templates folder {templates_dir} does not exist")
    endpoints = state.read_endpoints()
    missing = [k for k in ("nova", "mistral") if k not in endpoints]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise VitrageLabError(
            f"the lab's {' and '.join(missing)} {verb} not running (no {', '.join(missing)} "
            f"in {state.endpoints_path()}): start the lab first with selfheal_lab.lab.up()")
    nova_info, mistral_info = endpoints["nova"], endpoints["mistral"]
    _client_into_mistral()
    fingerprint = _fingerprint(templates_dir, nova_info, mistral_info, maintenance_alarm)

    info = _endpoint()
    if _healthy(info) and info.get("fingerprint") == fingerprint:
        return info
    if processes.running_pid(SERVICE, PROCESS):
        progress.step("restarting Vitrage: templates, box or lab endpoints changed")
    processes.stop(SERVICE, PROCESS)
    python = venvs.ensure("vitrage")
    port = port or processes.free_port()
    sdir = state.service_dir(SERVICE)
    log = processes.log_file(SERVICE, PROCESS)
    log.write_text("")
    argv = [str(python), str(BOX_SCRIPT), "--port", str(port), "--state-dir", str(sdir),
            "--templates-dir", str(templates_dir),
            "--nova-compute-url", nova_info["compute_url"],
            "--nova-headers", json.dumps(nova_info["headers"]),
            "--mistral-url", mistral_info["url"],
            "--maintenance-alarm", maintenance_alarm]
    progress.step(f"starting Vitrage (templates from {templates_dir})")
    pid = processes.start(SERVICE, PROCESS, argv, cwd=str(sdir))
    url = f"http://127.0.0.1:{port}"
    try:
        ready = processes.wait_ready_line(log, pid, timeout)
        processes.wait_http(url + "/health", timeout=10, pid=pid)
    except (RuntimeError, OSError, ValueError) as e:
        processes.stop(SERVICE, PROCESS)
        raise VitrageLabError(f"Vitrage did not start: {e}\n--- {log} ---\n{_log_tail()}") \
            from None
    invalid = [t for t in ready["templates"] if t["status"] not in ("ACTIVE", "SKIPPED")]
    info = {"url": url, "pid": pid, "log": str(log), "templates_dir": str(templates_dir),
            "templates": ready["templates"], "invalid_templates": invalid,
            "maintenance_alarm": maintenance_alarm, "fingerprint": fingerprint}
    state.update_endpoints(SERVICE, info)
    active = [t["name"] for t in ready["templates"] if t["status"] == "ACTIVE"]
    progress.step(f"Vitrage ready in {ready.get('seconds_to_ready')} s at {url}; "
                  f"templates active: {', '.join(active) or 'none'}")
    for t in invalid:
        progress.step(f"WARNING: Vitrage rejected template {t['file']}: "
                      f"{t['status']} {t.get('status_details')}")
    return info


def _client_into_mistral():
    """selfheal's ``vitrage`` extra (python-vitrageclient) in the lab's Mistral
    venv, so the maintenance actions reach this Vitrage through the real
    client. Installed once; Mistral imports it when an action first needs
    it, so no restart."""
    stamp = venvs.venv_dir("mistral") / "selfheal-vitrageclient-stamp"
    if stamp.exists() or not venvs.python("mistral").exists():
        return
    progress.step("installing python-vitrageclient (selfheal[vitrage]) into the mistral venv")
    log = state.lab_dir() / "venvs" / "mistral-vitrageclient.log"
    with open(log, "w") as out:
        result = subprocess.run([str(venvs.python("mistral")), "-m", "pip", "install",
                                 "--quiet", "--disable-pip-version-check",
                                 "python-vitrageclient>=4.0"],
                                stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise VitrageLabError(f"installing python-vitrageclient into the mistral venv failed; "
                              f"see {log}")
    stamp.write_text("python-vitrageclient>=4.0")


def down():
    """Stop the lab's Vitrage (by its PID) and forget its endpoints.

    :returns: True if it was running.
    """
    was_running = processes.stop(SERVICE, PROCESS)
    state.update_endpoints(SERVICE, None)
    return was_running


def status():
    """``{"running": bool, "healthy": bool, "pid": ..., **endpoints}``"""
    info = _endpoint() or {}
    pid = processes.running_pid(SERVICE, PROCESS)
    return dict(info, running=pid is not None, healthy=_healthy(info), pid=pid)


# --- control API client ------------------------------------------------------

def _call(url, method, path, body=None, timeout=120):
    return http_json.call(url, method, path, body, timeout, error=VitrageLabError,
                            what="vitrage box")


def _control(method, path, body=None):
    info = _endpoint()
    if not info:
        raise VitrageLabError("the lab's Vitrage is not running "
                              "(call selfheal_lab.services.vitrage.up())")
    return _call(info["url"], method, path, body)


def refresh():
    """Re-read zone, hosts, instances (and stand-in stacks) from Nova.

    :returns: ``{"datasources": {name: {"events", "deleted"}}, "executions", "pending"}``
    """
    return _control("POST", "/refresh")


def post_event(alarm_type, hostname, status="down", **details):
    """Post a Doctor event (like ``vitrage event post``) on host ``hostname``.

    :param alarm_type: alarm name, e.g. ``nic.down`` or ``compute.host.down``.
    :param status: ``down`` raises the alarm, ``up`` clears it.
    :param details: more Doctor details (``severity``, ``cause``, ...).
    """
    return _control("POST", "/events", dict(details, type=alarm_type, hostname=hostname,
                                            status=status))


def post_api_event(alarm_type, hostname, status="down", **details):
    """Post a Doctor event through the box's Vitrage API route ``POST /v1/event``,
    with the body python-vitrageclient's ``event.post`` sends (``{"time",
    "type", "details": {"hostname", "status", ...}}``), unlike
    :func:`post_event`, which hands it to the evaluator's bus directly."""
    body = {"time": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f"), "type": alarm_type,
        "details": dict(details, hostname=hostname, status=status)}
    return _control("POST", "/v1/event", body)


def post_instance_event(name, instance_id, status="down", severity="critical"):
    """Raise (``down``) or clear (``up``) an Aodh event alarm ``name`` on an instance."""
    return _control("POST", "/instance_events", {"name": name, "instance_id": instance_id,
                                                 "status": status, "severity": severity})


def set_maintenance(hostname, on=True):
    """Raise or clear the maintenance Doctor alarm on ``hostname``."""
    return _control("POST", "/maintenance", {"hostname": hostname,
                                             "status": "down" if on else "up"})


def notifications():
    """Every execute_mistral the notifier sent: ``[{"workflow", "input",
    "execution_id" | "error", "event_posted_at", "emitted_at", "sent_at",
    "created_at"}]`` (epoch seconds; ``created_at`` is when Mistral answered)."""
    return _control("GET", "/notifications")


def reset_notifications():
    return _control("POST", "/notifications/reset")


def api_events():
    """Every body posted to the box's Vitrage API route ``POST /v1/event``
    (what python-vitrageclient sent), oldest first."""
    return _control("GET", "/api_events")


def alarms():
    """Active alarms in the graph: ``[{"name", "type", "severity", "resource":
    {"type", "id", "name"}, "resource_type", "resource_id", "resource_name",
    "vitrage_id"}]`` (deduced ones have type ``vitrage``)."""
    return _control("GET", "/alarms")


def topology():
    """Resources in the graph with their outgoing resource edges."""
    return _control("GET", "/topology")


def templates():
    """Templates loaded at start with Vitrage's status (ACTIVE or ERROR)."""
    return _control("GET", "/templates")


def validate(template_text, params=None):
    """Vitrage's verdict on a template text: ``{"is_valid_config", "status_code", "message"}``."""
    body = {"template": template_text}
    if params:
        body["params"] = params
    return _control("POST", "/validate", body)
