# SPDX-License-Identifier: Apache-2.0
"""The lab's Mistral 23: start and stop it (stdlib only).

Three modes, which can run at the same time (separate folders, ports, PIDs):

``embedded``
    one process (``mistral_embedded.py`` in the Mistral venv): API, engine
    and periodic server, in-memory ``fake:/`` transport, local executor,
    sqlite. Endpoints key ``mistral``.
``distributed``
    stock ``mistral-server --server api,engine,executor,notifier,periodic``
    (a master process forking one worker per component), RabbitMQ (a virtual
    host of this lab's own on a shared broker) and PostgreSQL (database
    ``selfheal_mistral_<lab tag>``), remote executor. Endpoints key
    ``mistral_distributed``. When RabbitMQ or PostgreSQL is not reachable
    on its standard loopback port, private instances are started from the
    Debian packages' binaries (data in the lab's state folder, free loopback
    ports) and stopped again by :func:`down`. The database and virtual host
    created on the machine's own are recorded in :mod:`selfheal_lab.ledger`,
    and ``selfheal-lab down`` drops them.
``authenticated``
    the one-process Mistral of ``embedded`` with ``[pecan] auth_enable =
    True``: every API call needs a token of the lab's Keystone, validated by
    keystonemiddleware as the ``mistral`` service user, and the actions get
    the caller's token and token body in ``context.security``. Endpoints key
    ``mistral_auth``. Its configuration holds that user's password: mode 0600.

Mistral loads the selfheal actions (entry point group ``mistral.actions``)
only at start, so :func:`up` reinstalls the package into the venv when its
sources changed and then restarts Mistral. ``env`` is added to the
environment of every Mistral process (the executor reads
``SELFHEAL_CLOUD_CONFIG`` from it).

Talk to it with :mod:`selfheal_lab.mistral_client`.
"""

import getpass
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import time
import urllib.error
import urllib.request

from selfheal_lab import backends
from selfheal_lab import ledger
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import keystone

MODES = {
    "embedded": {"service": "mistral", "key": "mistral"},
    "distributed": {"service": "mistral-distributed", "key": "mistral_distributed"},
    "authenticated": {"service": "mistral-auth", "key": "mistral_auth"},
}
#: modes that run ``mistral_embedded.py`` (one process, sqlite, local executor)
ONE_PROCESS = ("embedded", "authenticated")
PROCESS = "mistral"
EMBEDDED_SCRIPT = pathlib.Path(__file__).resolve().with_name("mistral_embedded.py")
DISTRIBUTED_SERVERS = "api,engine,executor,notifier,periodic"  # no event-engine: it spins a core
START_TIMEOUT = 180.0
# Log lines that say each component is ready (the API answers before the
# engine listens, and a call sent before that would wait for the RPC timeout).
READY_LINES = {
    "embedded": ("Engine server started.", "Periodic server started.", "API server started"),
    "distributed": ("Engine server started.", "Executor server started.",
                    "Notification server started.", "Periodic server started.",
                    "API server started"),
}
READY_LINES["authenticated"] = READY_LINES["embedded"]


class MistralLabError(RuntimeError):
    """The lab could not start or stop Mistral (the message says why)."""


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------

def up(mode="embedded", env=None, package_path=state.SOURCE_ROOT, port=None,
       timeout=START_TIMEOUT):
    """Start the lab's Mistral in ``mode`` (or keep the running one).

    :param mode: ``"embedded"``, ``"distributed"`` or ``"authenticated"``
        (needs the lab's Keystone: :func:`selfheal_lab.lab.up_authenticated`).
    :param env: extra environment variables for the Mistral processes.
    :param package_path: selfheal source tree to install into the venv
        (reinstalled when its sources changed); ``None`` to skip.
    :param port: API port; by default the previous one if free, else any.
    :returns: the endpoints entry ``{"url", "mode", "pids", "log", "config"}``.
    :raises MistralLabError: when it cannot be installed or started.
    """
    spec = _spec(mode)
    env = {str(k): str(v) for k, v in (env or {}).items()}
    t0 = time.monotonic()
    python = venvs.ensure("mistral")
    if package_path is not None:
        _install_package(package_path)
    wiring = _backends(mode, python)
    fingerprint = _fingerprint(mode, env, wiring)

    current = _read_running(mode)
    pid = processes.running_pid(spec["service"], PROCESS)
    if (pid and current and current.get("fingerprint") == fingerprint
            and (port is None or port == current.get("port"))
            and _api_answers(current["info"]["url"])):
        return current["info"]
    if pid or current:
        progress.step(f"restarting Mistral ({mode}): package, environment or settings changed"
                      if pid else f"cleaning up a stopped Mistral ({mode})")
        _stop_mistral(mode)

    port = _choose_port(current, port)
    sdir = state.service_dir(spec["service"])
    conf = sdir / "mistral.conf"
    state.write_private(conf, _config_text(mode, port, wiring, sdir))
    _prepare_database(mode, python, conf, wiring, sdir)

    log = processes.log_file(spec["service"], PROCESS)
    offset = log.stat().st_size if log.exists() else 0
    if mode in ONE_PROCESS:
        argv = [str(python), str(EMBEDDED_SCRIPT), "--config-file", str(conf)]
    else:
        argv = [str(python.parent / "mistral-server"), "--server", DISTRIBUTED_SERVERS,
                "--config-file", str(conf)]
    progress.step(f"starting Mistral ({mode}) on port {port}")
    pid = processes.start(spec["service"], PROCESS, argv, env=env, cwd=str(sdir))
    url = f"http://127.0.0.1:{port}/v2"
    try:
        processes.wait_http(url, timeout, pid=pid)
        _wait_log_lines(log, offset, READY_LINES[mode], timeout, pid)
    except RuntimeError as exc:
        processes.rerecord(spec["service"], PROCESS, pid)
        _stop_mistral(mode)
        raise MistralLabError(f"Mistral ({mode}) did not start: {exc}; see {log}") from exc

    processes.rerecord(spec["service"], PROCESS, pid)
    pids = [pid] + [p for p in processes.group_members(pid) if p != pid]
    info = {"url": url, "mode": mode, "pids": pids, "log": str(log), "config": str(conf)}
    if wiring.get("private"):
        info["private_backends"] = wiring["private"]
    _write_running(mode, {"fingerprint": fingerprint, "port": port, "info": info,
                          "backends": wiring})
    state.update_endpoints(spec["key"], info)
    progress.step(f"Mistral ({mode}) ready at {url} in {time.monotonic() - t0:.1f} s")
    return info


def down(mode="embedded"):
    """Stop the lab's Mistral in ``mode`` (only PIDs the lab recorded are
    signalled). Private backends are shared with other services: the lab
    stops them (:func:`selfheal_lab.backends.down`).

    :returns: True if something was running.
    """
    spec = _spec(mode)
    current = _read_running(mode) or {}
    was_running = _stop_mistral(mode)
    state.update_endpoints(spec["key"], None)
    (state.service_dir(spec["service"]) / "running.json").unlink(missing_ok=True)
    return was_running or bool(current)


def status():
    """Return ``{mode: {"running", "url", "pids", "api"}}`` for every mode."""
    result = {}
    for mode, spec in MODES.items():
        pid = processes.running_pid(spec["service"], PROCESS)
        current = _read_running(mode) or {}
        info = current.get("info", {})
        url = info.get("url")
        result[mode] = {
            "running": pid is not None,
            "url": url,
            "pids": [pid] + [p for p in processes.group_members(pid) if p != pid] if pid else [],
            "api": bool(pid and url and _api_answers(url)),
            "endpoints_key": spec["key"],
        }
    return result


def _spec(mode):
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"unknown Mistral mode {mode!r}; use one of {sorted(MODES)}") from None


def _install_package(package_path):
    path = pathlib.Path(package_path)
    if not (path / "setup.cfg").exists():
        raise MistralLabError(
            f"cannot install selfheal into the Mistral venv: {path / 'setup.cfg'} is missing "
            "(the package is not there yet); pass package_path=None to run Mistral without it")
    _install_requirements(path)
    try:
        venvs.install_package("mistral", path)
    except SystemExit as exc:  # venvs reports failures with sys.exit(message)
        log = state.lab_dir() / "venvs" / "mistral-selfheal.log"
        errors = [line.strip() for line in _read(log).splitlines() if "error" in line.lower()]
        raise MistralLabError("\n".join([str(exc.code), *errors[:4]])) from None


def _install_requirements(path):
    """Install the package's runtime requirements (``install_package`` uses
    ``--no-deps``); again only when ``requirements.txt`` changed."""
    req = pathlib.Path(path) / "requirements.txt"
    if not req.exists():
        return
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    stamp = venvs.venv_dir("mistral") / "selfheal-requirements-stamp"
    if _read(stamp) == digest:
        return
    progress.step("installing selfheal's requirements into the mistral venv")
    log = state.lab_dir() / "venvs" / "mistral-selfheal-requirements.log"
    with open(log, "w") as out:
        result = subprocess.run([str(venvs.python("mistral")), "-m", "pip", "install", "--quiet",
                                 "--disable-pip-version-check", "-r", str(req)],
                                stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise MistralLabError(f"installing {req} into the mistral venv failed; see {log}")
    stamp.write_text(digest)


def _fingerprint(mode, env, wiring):
    vdir = venvs.venv_dir("mistral")
    parts = {
        "mode": mode,
        "env": env,
        "backends": {k: v for k, v in wiring.items() if k not in ("private", "db_state")},
        "venv": _read(vdir / "selfheal-stamp"),
        "package": _read(vdir / "selfheal-package-stamp"),
        "requirements": _read(vdir / "selfheal-requirements-stamp"),
        "script": hashlib.sha256(EMBEDDED_SCRIPT.read_bytes()).hexdigest(),
        "module": hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read(path):
    try:
        return pathlib.Path(path).read_text()
    except FileNotFoundError:
        return ""


def _read_running(mode):
    try:
        return json.loads((state.service_dir(_spec(mode)["service"]) / "running.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_running(mode, data):
    path = state.service_dir(_spec(mode)["service"]) / "running.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _choose_port(current, port):
    if port:
        if processes.port_open(port):
            raise MistralLabError(f"port {port} is already in use")
        return port
    previous = (current or {}).get("port")
    if previous and not processes.port_open(previous):
        return previous
    return processes.free_port()


def _api_answers(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


def _wait_log_lines(log, offset, lines, timeout, pid):
    deadline = time.monotonic() + timeout
    missing = list(lines)
    while True:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        missing = [line for line in lines if line not in text]
        if not missing:
            return
        if not processes._alive(pid):
            raise RuntimeError(f"process {pid} exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {timeout:.0f} s (never logged {missing})")
        time.sleep(0.2)








def _stop_mistral(mode):
    service = _spec(mode)["service"]
    if mode in ONE_PROCESS:  # exits on SIGTERM within a few seconds
        return processes.stop_group(service, PROCESS, grace=10.0)
    # The distributed master does not exit on SIGTERM, its workers do: let
    # the workers finish, then SIGKILL what is left of the group.
    pid = processes.running_pid(service, PROCESS)
    if pid and pid in processes.group_members(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and set(processes.group_members(pid)) - {pid}:
            time.sleep(0.1)
    return processes.stop_group(service, PROCESS, grace=0.5)


# --------------------------------------------------------------------------
# Configuration and database
# --------------------------------------------------------------------------

def _config_text(mode, port, wiring, sdir):
    common = f"""\
[DEFAULT]
debug = False
use_stderr = True
transport_url = {wiring["transport_url"]}
{wiring.get("default_extra", "")}
[api]
host = 127.0.0.1
port = {port}

[pecan]
auth_enable = {mode == "authenticated"}

[database]
connection = {wiring["database"]}

[cron_trigger]
# The periodic server processes cron triggers; the API must not as well.
run_in_api = False

[legacy_action_provider]
load_action_plugins = True

# An action whose executor died is failed after 6 missed heartbeats of 5 s
# (production defaults: 15 of 20 s), so a crash in the middle of a healing
# shows as an ERROR execution within half a minute, not five minutes.
[action_heartbeat]
max_missed_heartbeats = 6
check_interval = 5
first_heartbeat_timeout = 600

# Every lab service listens on loopback, which std.http refuses by default
# (SSRF protection); keep refusing link-local (the metadata service).
[action_std_http]
denied_cidrs = 169.254.0.0/16,fe80::/10
"""
    if mode == "authenticated":
        common += keystone.authtoken_section("mistral")
    if mode in ONE_PROCESS:
        return common + """
[executor]
type = local

[notifier]
type = local
"""
    topic = wiring["topic_prefix"]
    return common + f"""
[engine]
topic = {topic}_engine

[executor]
type = remote
topic = {topic}_executor

[notifier]
type = remote
topic = {topic}_notifier

[event_engine]
topic = {topic}_event_engine
"""


def _lab_tag():
    return backends.lab_tag()


def _db_name():
    """The distributed Mistral's database, one per lab folder."""
    return f"selfheal_mistral_{_lab_tag()}"


def _backends(mode, python):
    if mode in ONE_PROCESS:
        sdir = state.service_dir(MODES[mode]["service"])
        wiring = {"transport_url": "fake:/", "database": f"sqlite:///{sdir / 'mistral.sqlite'}"}
        if mode == "authenticated":
            if not keystone.url():
                raise MistralLabError("the authenticated Mistral needs the lab's Keystone: "
                                      "start it first (selfheal_lab.services.keystone.up())")
            wiring["keystone_url"] = keystone.url()
        return wiring
    rabbit = backends.ensure("rabbitmq")
    postgres = backends.ensure("postgres")
    pg_port = postgres["port"]
    db_state = _create_database(python, pg_port, shared=not postgres["private"])
    tag = f"selfheal_{_lab_tag()}"
    private = [{"name": name, "port": b["port"]}
               for name, b in (("rabbitmq", rabbit), ("postgres", postgres)) if b["private"]]
    return {
        # a virtual host of this lab's own on a shared broker, which
        # ``down`` deletes with the queues and exchange in it
        "transport_url": backends.rabbitmq_url(isolated=True),
        "database": f"postgresql+psycopg2://{db_state['user']}@127.0.0.1:{pg_port}/{_db_name()}",
        # Exchange and topics named after this lab: no collision with any
        # other Mistral using the same broker.
        "default_extra": f"control_exchange = {tag}\n",
        "topic_prefix": tag,
        "private": private,
        "db_state": db_state,
    }


def _prepare_database(mode, python, conf, wiring, sdir):
    manage = str(python.parent / "mistral-db-manage")
    if mode in ONE_PROCESS:
        marker = sdir / "db-ready"
        if marker.exists() and (sdir / "mistral.sqlite").exists():
            return
        progress.step("creating the Mistral sqlite database (first time only)")
        # sqlite cannot run the alembic migrations: build from the models.
        _run([str(python), str(EMBEDDED_SCRIPT), "--config-file", str(conf), "--setup-db"],
             sdir, "db-setup")
        _run([manage, "--config-file", str(conf), "stamp", "head"], sdir, "db-stamp")
        _run([manage, "--config-file", str(conf), "populate"], sdir, "db-populate")
        marker.write_text(wiring["database"])
        return
    # populate stores nothing checkable in 23.0.0: a marker says it ran.
    marker = sdir / "db-ready"
    if wiring["db_state"]["migrated"] and _read(marker) == wiring["database"]:
        return
    progress.step(f"migrating the PostgreSQL database {_db_name()}")
    marker.unlink(missing_ok=True)
    _run([manage, "--config-file", str(conf), "upgrade", "head"], sdir, "db-upgrade")
    _run([manage, "--config-file", str(conf), "populate"], sdir, "db-populate")
    marker.write_text(wiring["database"])


def _run(argv, sdir, name):
    log = sdir / f"{name}.log"
    with open(log, "w") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=str(sdir),
                                stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise MistralLabError(f"{' '.join(argv[-2:])} failed (see {log}):\n{tail}")


# Runs in the Mistral venv (psycopg2): create the database if missing and
# say whether it is migrated, and whether it was created now.
_CREATE_DB = r"""
import json, sys
import psycopg2
host, port, name, users = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
errors = []
for user in users:
    try:
        conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres",
                                connect_timeout=5)
    except psycopg2.OperationalError as e:
        errors.append("%s: %s" % (user, str(e).strip()))
        continue
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        created = not cur.fetchone()
        if created:
            cur.execute('CREATE DATABASE "%s"' % name)
    conn.close()
    conn = psycopg2.connect(host=host, port=port, user=user, dbname=name, connect_timeout=5)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        migrated = cur.fetchone()[0]
        if migrated:
            cur.execute("SELECT count(*) FROM alembic_version")
            migrated = cur.fetchone()[0] > 0
    conn.close()
    print(json.dumps({"user": user, "migrated": migrated, "created": created}))
    sys.exit(0)
sys.stderr.write("\n".join(errors))
sys.exit(1)
"""


def _create_database(python, pg_port, shared=True):
    """Create the distributed Mistral's database if it is missing.

    :param python: an interpreter with psycopg2 (the Mistral venv's).
    :param pg_port: the PostgreSQL on 127.0.0.1 to create it on.
    :param shared: that PostgreSQL is the machine's (not a private one of
        the lab): a database created there is recorded in the ledger, for
        ``down`` to drop (:func:`drop_database`).
    :returns: ``{"user", "migrated", "created"}``: the PostgreSQL user that
        worked, whether the schema is there, whether it was created now.
    """
    users = []
    for user in ("postgres", "root", getpass.getuser()):
        if user not in users:
            users.append(user)
    result = None
    for _ in range(20):  # a fresh private server may still be starting
        result = subprocess.run([str(python), "-c", _CREATE_DB, "127.0.0.1", str(pg_port),
                                 _db_name(), *users], capture_output=True, text=True)
        if result.returncode == 0:
            break
        time.sleep(0.5)
    if result.returncode != 0:
        raise MistralLabError(
            f"cannot use PostgreSQL on 127.0.0.1:{pg_port} as any of {users} without a password "
            f"(the lab needs trust authentication on loopback):\n{result.stderr.strip()[-800:]}")
    db_state = json.loads(result.stdout.strip().splitlines()[-1])
    if db_state["created"] and shared:
        ledger.record(ledger.POSTGRES_DATABASE, _db_name(), pg_port, python=str(python),
                      user=db_state["user"])
    return db_state


# Runs in the interpreter that created the database (psycopg2): drop it.
_DROP_DB = r"""
import sys
import psycopg2
host, port, name, user = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=5)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute('DROP DATABASE IF EXISTS "%s"' % name)
conn.close()
"""


def drop_database(entry):
    """Drop the PostgreSQL database a ledger entry names, with the entry's
    ``python`` and ``user`` (those that created it); one already gone is fine.

    :raises MistralLabError: with the driver's error when the drop fails.
    """
    result = subprocess.run([entry["python"], "-c", _DROP_DB, "127.0.0.1", str(entry["port"]),
                             entry["name"], entry["user"]], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise MistralLabError((result.stderr.strip().splitlines() or ["failed"])[-1])
