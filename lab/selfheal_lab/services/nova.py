# SPDX-License-Identifier: Apache-2.0
"""Nova in a box: the real Nova API, conductor, scheduler, placement and
several fake-driver compute hosts in one background process.

``up()`` starts ``nova_box.py`` with the nova venv's interpreter and records
in ``endpoints.json`` (key ``nova``)::

    {"compute_url": "http://127.0.0.1:P/v2.1",
     "control_url": "http://127.0.0.1:C",
     "headers": {"X-Auth-User": "admin", "X-Auth-Project-Id": ..., "X-Roles": ...},
     "hosts": ["compute-1", ...], "driver": "fake.FakeLiveMigrateDriver", "pid": ...,
     "report_interval": 1, "service_down_time": 6}

Nova's heartbeat timings are the lab's (``report_interval`` 1 s,
``service_down_time`` 6 s: a dead host is seen in seconds) unless ``up()``
is given others, or the environment sets ``SELFHEAL_LAB_REPORT_INTERVAL``
and ``SELFHEAL_LAB_SERVICE_DOWN_TIME`` (Nova's production defaults are 10
and 60; the watch benchmark runs them). They are part of what the box was
started with: a running box with other timings is replaced.

The Nova API needs no token: send ``headers`` with every request (a
keystoneauth ``Token`` plugin's ``X-Auth-Token`` is accepted and ignored).
:func:`open_keystone_door` adds a second port, the same Nova behind real
token validation by the lab's Keystone, registered in its catalog as
``compute`` (``keystone_compute_url`` in the endpoints entry).
The control endpoint belongs to the lab only (simulated host failures, fault
injection, request counters); it is never part of the Nova API, and never
faulted. The fault controls (a crashed host, slow or failing spawns, HTTP
faults at the Nova API) are described in ``doc/source/lab.rst``, "Fault
controls".

Stdlib only: this module runs in the operator's or test runner's Python.
"""

import json
import os
import pathlib

from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "nova"
PROCESS = "nova"
BOX_SCRIPT = pathlib.Path(__file__).resolve().parent / "nova_box.py"
DEFAULT_HOSTS = ("compute-1", "compute-2", "compute-3")
# FakeDriver's capacity (1000 vCPUs, 800 GB RAM per host), plus live migration
# that cleans the guest off the source (FakeDriver leaves it there, so a later
# move back fails with InstanceExists); each live migration takes about 5 s.
DEFAULT_DRIVER = "fake.FakeLiveMigrateDriver"
PROJECT_ID = "6f70656e737461636b20342065766572"
HEADERS = {
    "X-Auth-User": "admin",
    "X-Auth-Project-Id": PROJECT_ID,
    "X-Roles": "reader,member,admin",
}
START_TIMEOUT = 120.0
#: the lab's heartbeat timings (nova_box.py's defaults): seconds
LAB_REPORT_INTERVAL = 1
LAB_SERVICE_DOWN_TIME = 6
TIMING_ENV = {"report_interval": "SELFHEAL_LAB_REPORT_INTERVAL",
              "service_down_time": "SELFHEAL_LAB_SERVICE_DOWN_TIME"}


def wanted_timings(report_interval=None, service_down_time=None, environ=None):
    """``{"report_interval", "service_down_time"}`` for a box: the values
    given, else the environment's (:data:`TIMING_ENV`), else the lab's.

    :raises ValueError: for a value that is not a whole number of seconds,
        or a report interval not below the down time.
    """
    environ = os.environ if environ is None else environ
    given = {"report_interval": report_interval, "service_down_time": service_down_time}
    lab = {"report_interval": LAB_REPORT_INTERVAL, "service_down_time": LAB_SERVICE_DOWN_TIME}
    timings = {}
    for key, value in given.items():
        if value is None:
            value = environ.get(TIMING_ENV[key]) or lab[key]
        try:
            timings[key] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"Nova's {key} must be whole seconds, got {value!r}") from None
    if not 1 <= timings["report_interval"] < timings["service_down_time"]:
        raise ValueError(f"need 1 <= report_interval < service_down_time, got {timings}")
    return timings


def _log_tail(lines=40):
    try:
        text = processes.log_file(SERVICE, PROCESS).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _endpoint():
    return state.read_endpoints().get(SERVICE)


def _healthy(info):
    if not info or processes.running_pid(SERVICE, PROCESS) != info.get("pid"):
        return False
    try:
        return _call(info["control_url"], "GET", "/health", timeout=3).get("ok") is True
    except (OSError, ValueError, RuntimeError):
        return False


def up(hosts=DEFAULT_HOSTS, driver=DEFAULT_DRIVER, port=None, control_port=None,
       timeout=START_TIMEOUT, report_interval=None, service_down_time=None):
    """Start Nova in a box unless it already runs; return its endpoints.

    When a healthy box is running its info is returned as is (its hosts and
    driver are kept; add hosts with :func:`add_host`), unless it was started
    from another version of ``nova_box.py`` or with other heartbeat timings:
    that box is replaced (its servers are lost), so a change takes effect.

    :param report_interval: Nova's ``report_interval`` (seconds); None:
        ``SELFHEAL_LAB_REPORT_INTERVAL``, else the lab's 1 s.
    :param service_down_time: Nova's ``service_down_time`` (seconds); None:
        ``SELFHEAL_LAB_SERVICE_DOWN_TIME``, else the lab's 6 s.

    :raises RuntimeError: when the box does not become ready in ``timeout``
        seconds (the message holds the end of its log).
    """
    timings = wanted_timings(report_interval, service_down_time)
    info = _endpoint()
    source = managed.source_of(BOX_SCRIPT)
    if (_healthy(info) and info.get("source") == source
            and all(info.get(k) == v for k, v in timings.items())):
        return info
    processes.stop(SERVICE, PROCESS)
    python = venvs.ensure("nova")
    port = port or processes.free_port()
    control_port = control_port or processes.free_port()
    while control_port == port:
        control_port = processes.free_port()
    log = processes.log_file(SERVICE, PROCESS)
    log.write_text("")
    argv = [str(python), str(BOX_SCRIPT), "--port", str(port),
            "--control-port", str(control_port), "--hosts", ",".join(hosts),
            "--driver", driver, "--state-dir", str(state.service_dir(SERVICE)),
            "--report-interval", str(timings["report_interval"]),
            "--service-down-time", str(timings["service_down_time"])]
    progress.step(f"starting Nova in a box ({len(hosts)} compute hosts, {driver}, "
                  f"report_interval {timings['report_interval']} s, service_down_time "
                  f"{timings['service_down_time']} s)")
    pid = processes.start(SERVICE, PROCESS, argv)
    control_url = f"http://127.0.0.1:{control_port}"
    try:
        ready = processes.wait_ready_line(log, pid, timeout)
        processes.wait_http(control_url + "/health", timeout=10, pid=pid)
        box_info = _call(control_url, "GET", "/info")
    except (RuntimeError, OSError, ValueError) as e:
        processes.stop(SERVICE, PROCESS)
        raise RuntimeError(
            f"Nova in a box did not start: {e}\n--- {log} ---\n{_log_tail()}") from None
    info = {
        "compute_url": f"http://127.0.0.1:{port}/v2.1",
        "control_url": control_url,
        "headers": dict(HEADERS),
        "hosts": [h["host"] for h in box_info["hosts"]],
        "driver": driver,
        "pid": pid,
        "report_interval": box_info["report_interval"],
        "service_down_time": box_info["service_down_time"],
        "log": str(log),
        "source": source,
    }
    state.update_endpoints(SERVICE, info)
    progress.step(f"Nova in a box ready in {ready.get('seconds_to_ready')} s "
                  f"at {info['compute_url']}")
    return info


def down():
    """Stop the box (by its PID) and forget its endpoints.

    :returns: True if it was running.
    """
    was_running = processes.stop(SERVICE, PROCESS)
    state.update_endpoints(SERVICE, None)
    return was_running


def status():
    """Return ``{"running": bool, "healthy": bool, "pid": ..., **endpoints}``."""
    info = _endpoint() or {}
    pid = processes.running_pid(SERVICE, PROCESS)
    return dict(info, running=pid is not None, healthy=_healthy(info), pid=pid)


# --- lab control endpoint (not Nova) -----------------------------------------

def _call(url, method, path, body=None, timeout=120):
    return http_json.call(url, method, path, body, timeout, what="nova box control")


def _control(method, path, body=None):
    info = _endpoint()
    if not info:
        raise RuntimeError("Nova in a box is not running (call selfheal_lab.services.nova.up())")
    return _call(info["control_url"], method, path, body)


def hosts():
    """``[{"host": "compute-1", "running": True, "crashed": False}, ...]``"""
    return _control("GET", "/hosts")


def add_host(host):
    """Start a new compute host (no-op when it already runs)."""
    result = _control("POST", "/hosts", {"host": host})
    info = _endpoint()
    if info is not None and host not in info["hosts"]:
        info["hosts"].append(host)
        state.update_endpoints(SERVICE, info)
    return result


def stop_host(host):
    """Simulate a host failure: its nova-compute stops heartbeating.

    A graceful stop: the work it had started (spawns, rebuilds) still
    finishes. The API reports it ``down`` after ``service_down_time``
    seconds. See :func:`crash_host` for a host that dies.
    """
    return _control("POST", f"/hosts/{host}/stop")


def crash_host(host):
    """Crash a compute host: it dies at once, mid-work, like a power cut.

    Its nova-compute stops heartbeating (the API reports it ``down`` after
    ``service_down_time`` seconds) and consumes no more RPC, and every
    hypervisor operation in progress or arriving on it (spawn, the rebuild
    of an evacuation landing there, power operations, migrations, deletes)
    never completes: its servers stay in their task state. :func:`start_host`
    restarts it like a rebooted host (the crashed work stays undone).

    :returns: ``{"host", "running": False, "crashed": True, "changed"}``
        (``changed`` is False when it was already crashed).
    """
    return _control("POST", f"/hosts/{host}/crash")


def start_host(host):
    """Bring a stopped or crashed compute host back (like restarting
    nova-compute: a new service and manager, the same hypervisor)."""
    return _control("POST", f"/hosts/{host}/start")


def request_counts():
    """``{"total": N, "by_route": {"GET /servers/detail": n, ...}, "by_client":
    {client: {route: n}}}``: ``total`` and ``by_route`` since the last
    :func:`reset_request_counts`; ``by_client`` since the box started (never
    reset), per ``X-Bench-Client`` header (``-`` for requests without one)."""
    return _control("GET", "/requests")


def reset_request_counts():
    return _control("POST", "/requests/reset")


def inject_spawn_failures(host, n=1):
    """Make the next ``n`` spawns (boots, evacuation rebuilds) on ``host`` fail."""
    return _control("POST", "/faults", {"host": host, "fail_spawns": n})


def slow_spawns(host, seconds):
    """Make every spawn on ``host`` (a boot, or the rebuild of an evacuation
    landing there) wait ``seconds`` first; 0 makes them fast again.

    The server sits in task state ``spawning`` (an evacuation's migration in
    ``pre-migrating``/``running``) meanwhile; the box keeps serving.

    :returns: ``{"host", "fail_spawns", "spawn_seconds"}``
    :raises RuntimeError: for an unknown host or a negative ``seconds``
        (the box's message).
    """
    return _control("POST", "/faults", {"host": host, "spawn_seconds": seconds})


def spawn_faults():
    """The spawn faults set per host:
    ``{"compute-1": {"host", "fail_spawns": n, "spawn_seconds": s}, ...}``"""
    return _control("GET", "/faults")


def add_http_fault(match, status=None, reset=False, hang_seconds=None, count=None,
                   share=None, seed=None):
    r"""Add a fault rule in front of the Nova API (both doors; never the
    control endpoint).

    :param match: a Python regular expression, searched (``re.search``) in
        ``"METHOD /path?query"`` of each request, e.g.
        ``r"^GET /v2\.1/servers/detail"`` or ``r"^POST /v2\.1/servers/[^/]+/action"``
        (the path includes ``/v2.1``; ``?query`` only when there is one).
    :param status: answer with this HTTP error (500-599) and a JSON body
        like Nova's (``{"serviceUnavailable": {"code": 503, "message": ...}}``).
    :param reset: close the TCP connection (an RST) without an answer.
    :param hang_seconds: hold the request that long, then let it through.
    :param count: act on the next ``count`` matching requests only.
    :param share: act on that share (0 < share <= 1) of matching requests;
        with neither ``count`` nor ``share``, on every matching request.
    :param seed: seeds the rule's own random draws (with ``share``), for
        repeatable runs.
    :returns: the rule: ``{"id", "match", "action", "remaining", "matched",
        "hits", ...}``
    :raises RuntimeError: when the box refuses the rule (HTTP 400 and why:
        not exactly one of status/reset/hang_seconds, a bad regex, ...).
    """
    body = {"match": match}
    for key, value in (("status", status), ("hang_seconds", hang_seconds), ("count", count),
                       ("share", share), ("seed", seed)):
        if value is not None:
            body[key] = value
    if reset:
        body["reset"] = True
    return _control("POST", "/http_faults", body)


def http_faults():
    """The HTTP fault rules, oldest first, with ``matched`` (matching
    requests seen), ``hits`` (requests faulted) and ``remaining`` (for a
    ``count`` rule)."""
    return _control("GET", "/http_faults")


def remove_http_fault(rule_id):
    """Remove one HTTP fault rule by its id."""
    return _control("DELETE", f"/http_faults/{rule_id}")


def clear_http_faults():
    """Remove every HTTP fault rule: ``{"deleted": n}``."""
    return _control("DELETE", "/http_faults")


def databases():
    """The box's SQLAlchemy engines: ``[{"url", "pool", "recycle_seconds"}]``."""
    return _control("GET", "/databases")


def info():
    """Images, flavors and hosts of the box: ``{"images", "flavors", "hosts", ...}``"""
    return _control("GET", "/info")


# --- the Keystone door -------------------------------------------------------

def open_keystone_door():
    """Serve the box's Nova API behind Keystone too (idempotent).

    Needs the lab's Keystone running. Tokens are validated by
    keystonemiddleware as the ``nova`` service user; Nova's real policy then
    applies to the caller's roles. The door's URL is registered in the
    catalog as ``compute`` and recorded as ``keystone_compute_url``.

    :returns: the door's compute URL.
    """
    from selfheal_lab.services import keystone

    info = _endpoint()
    if not info:
        raise RuntimeError("Nova in a box is not running (call selfheal_lab.services.nova.up())")
    identity = keystone.up()
    door = _control("GET", "/keystone")
    if door["auth_url"] != identity["url"]:  # closed, or Keystone moved
        port = door["port"] or info.get("keystone_port")
        if not door["open"] and (not port or processes.port_open(port)):
            port = processes.free_port()
        settings = state.service_dir(SERVICE) / "keystone-door.json"
        state.write_private(settings, json.dumps({
            "port": port, "auth_url": identity["url"], "username": "nova",
            "password": keystone.password("nova"), "project_name": "service"}))
        door = _control("POST", "/keystone", {"settings_file": str(settings)})
    url = f"http://127.0.0.1:{door['port']}/v2.1"
    if info.get("keystone_compute_url") != url:
        info.update(keystone_compute_url=url, keystone_port=door["port"])
        state.update_endpoints(SERVICE, info)
    keystone.register_endpoint("compute", "nova", url)
    return url


def keystone_requests():
    """Requests the Keystone door served, oldest first: ``[{"route", "status",
    "user_name", "project_name", "roles", "token_sha256", ...}]``."""
    return _control("GET", "/keystone/requests")
