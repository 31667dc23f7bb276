# SPDX-License-Identifier: Apache-2.0
"""Start lab processes in the background and stop them by their PID only.

Every process the lab starts gets a PID file in its service folder holding
its PID and its start time (from ``/proc/PID/stat``); ``stop`` signals only a
PID found there whose start time still matches, so a recycled PID is never
touched. The start time, unlike the command line, survives processes that
retitle themselves (oslo.service does).
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from selfheal_lab import state


def pid_file(service, name):
    return state.service_dir(service) / f"{name}.pid"


def log_file(service, name):
    return state.service_dir(service) / f"{name}.log"


def start(service, name, argv, env=None, cwd=None):
    """Start ``argv`` detached, logging to the service folder.

    :returns: the PID.
    """
    log = open(log_file(service, name), "ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=full_env, cwd=cwd, start_new_session=True)
    record(service, name, proc.pid)
    return proc.pid


def record(service, name, pid):
    """Write the PID file of a process the lab started (also after an exec)."""
    pid_file(service, name).write_text(f"{pid}\n{_start_time(pid)}")


def _start_time(pid):
    """The process's start time in clock ticks since boot, or "" if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def running_pid(service, name):
    """Return the PID of a lab process that is still alive, else None."""
    path = pid_file(service, name)
    try:
        pid_text, _, started = path.read_text().partition("\n")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A recycled PID belongs to some other program: never treat it as ours.
    if started.strip() and _start_time(pid) != started.strip():
        return None
    return pid


def stop(service, name, grace=10.0):
    """Stop a lab process (and its process group) by PID: TERM, then KILL.

    :returns: True if something was running.
    """
    pid = running_pid(service, name)
    pid_file(service, name).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return True


def _alive(pid):
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[-1][0] != "Z"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_http(url, timeout, pid=None, headers=None):
    """Wait until ``url`` answers (any HTTP status below 500).

    :raises RuntimeError: on timeout, or when ``pid`` died meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            raise RuntimeError(f"process {pid} exited while waiting for {url}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2):
                return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def wait_ready_line(log, pid, timeout):
    """Wait for a ``READY <json>`` line in ``log`` from process ``pid``.

    :returns: the decoded JSON.
    :raises RuntimeError: when the process exits first or time runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return json.loads(line[len("READY "):])
        if not _alive(pid):  # also sees an unreaped (zombie) child
            raise RuntimeError(f"process {pid} exited before it was ready")
        time.sleep(0.3)
    raise RuntimeError(f"not ready within {timeout:.0f} s")


def group_members(pgid):
    """PIDs of the live processes in process group ``pgid`` (a lab process
    and what it forked)."""
    if not pgid:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[2] the process group.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return sorted(members)


def rerecord(service, name, pid):
    """Record ``pid`` as the lab's process ``name`` once it is the final one.

    Start wrappers (setpriv, the RabbitMQ script) exec into the real server;
    only a live leader of its own process group (as started) is recorded.
    """
    if pid in group_members(pid):
        record(service, name, pid)


def stop_group(service, name, grace):
    """Stop a lab process and make sure nothing of its group survives.

    :raises RuntimeError: when a member survives SIGKILL.
    """
    pid = running_pid(service, name)
    stopped = stop(service, name, grace=grace)
    if pid:
        deadline = time.monotonic() + 5.0
        while group_members(pid) and time.monotonic() < deadline:
            for member in group_members(pid):
                try:
                    os.kill(member, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        left = group_members(pid)
        if left:
            raise RuntimeError(f"processes {left} of {service}/{name} survived SIGKILL")
    return stopped
