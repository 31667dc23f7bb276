# SPDX-License-Identifier: Apache-2.0
"""Start, keep and stop a lab service made of a few plain processes.

Heat (API + engine) and Zaqar (one server) follow the same life cycle: a
fingerprint of their configuration is kept in ``running.json``; ``up`` keeps
the running processes when the fingerprint matches and the service answers,
and otherwise stops what is left (by PID) and starts them again.
"""

import hashlib
import json
import pathlib
import time
import urllib.error
import urllib.request

from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state


def fingerprint(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def source_of(path):
    """Hash of a service module: its processes restart when it changes."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _running_file(service):
    return state.service_dir(service) / "running.json"


def running(service, names, wanted_fingerprint, probe):
    """The recorded endpoints of ``service`` if all its processes live, its
    fingerprint is ``wanted_fingerprint`` and ``probe(info)`` is true; else None."""
    try:
        current = json.loads(_running_file(service).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if current.get("fingerprint") != wanted_fingerprint:
        return None
    if not all(processes.running_pid(service, name) for name in names):
        return None
    return current["info"] if probe(current["info"]) else None


def start(service, key, commands, wanted_fingerprint, info, probe, timeout, what):
    """Start ``commands`` (``{name: argv}``) in order and wait for ``probe``.

    :param key: the ``endpoints.json`` key to record ``info`` under.
    :param probe: ``probe(info) -> bool``, true once the service answers.
    :returns: ``info`` with the PIDs and logs added.
    :raises RuntimeError: when a process exits or ``timeout`` passes; what
        was started is stopped again and the message holds the log's end.
    """
    stop(service, key, list(commands))
    t0 = time.monotonic()
    pids = {}
    sdir = state.service_dir(service)
    for name, argv in commands.items():
        processes.log_file(service, name).write_text("")
        pids[name] = processes.start(service, name, argv, cwd=str(sdir))
    deadline = time.monotonic() + timeout
    while not probe(info):
        dead = [name for name, pid in pids.items() if not processes._alive(pid)]
        if dead or time.monotonic() > deadline:
            stop(service, key, list(commands))
            name = dead[0] if dead else list(commands)[-1]
            tail = processes.log_file(service, name).read_text(errors="replace")[-2000:]
            why = f"{name} exited" if dead else f"no answer within {timeout:.0f} s"
            raise RuntimeError(f"{what} did not start ({why}); "
                               f"see {processes.log_file(service, name)}:\n{tail}")
        time.sleep(0.5)
    info = dict(info, pids=pids,
                logs={name: str(processes.log_file(service, name)) for name in commands})
    _running_file(service).write_text(json.dumps({"fingerprint": wanted_fingerprint,
                                                  "info": info}))
    state.update_endpoints(key, info)
    progress.step(f"{what} ready in {time.monotonic() - t0:.1f} s")
    return info


def restarted(service, key, name, pid):
    """Record that process ``name`` of a running ``service`` was started
    again alone (as ``pid``), keeping the rest of what ``start`` recorded.

    :returns: the updated endpoints entry.
    """
    path = _running_file(service)
    current = json.loads(path.read_text())
    current["info"]["pids"][name] = pid
    path.write_text(json.dumps(current))
    state.update_endpoints(key, current["info"])
    return current["info"]


def stop(service, key, names):
    """Stop the named processes of ``service`` (by PID) and forget them.

    :returns: True if one of them was running.
    """
    was_running = False
    for name in names:
        was_running = processes.stop_group(service, name, grace=10.0) or was_running
    _running_file(service).unlink(missing_ok=True)
    state.update_endpoints(key, None)
    return was_running


def status(service, key, names, probe):
    info = state.read_endpoints().get(key) or {}
    pids = {name: processes.running_pid(service, name) for name in names}
    alive = all(pids.values())
    return dict(info, running=alive, healthy=bool(alive and info and probe(info)),
                pids=pids)


def http_status(url, headers=None, timeout=3):
    """HTTP status of a GET (0 when nothing answers)."""
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0
