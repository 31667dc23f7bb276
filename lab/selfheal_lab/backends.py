# SPDX-License-Identifier: Apache-2.0
"""The lab's backing services: RabbitMQ, PostgreSQL, MariaDB and Redis.

Development and CI machines run them on their standard 127.0.0.1 ports, and
the lab uses those when they answer. A user's machine usually has none: then
the lab starts **private** instances from the Debian packages' binaries
(installing a missing package with apt-get), with their data under
``<lab>/services/backends/`` and on free loopback ports, and :func:`down`
stops them again, by the PIDs the lab recorded. What the lab creates on the
machine's own (a virtual host here, databases in the services) is recorded
in :mod:`selfheal_lab.ledger`, and ``selfheal-lab down`` removes it.

Each ``ensure_*`` function returns ``{"port": int, "private": bool}``;
``SELFHEAL_LAB_PRIVATE_BACKENDS=1`` forces private instances even where the
standard ones answer (how the private path is tested on a development
machine).
"""

import hashlib
import os
import pathlib
import pwd
import shutil
import subprocess
import time

from selfheal_lab import ledger
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state

SERVICE = "backends"
STANDARD_PORTS = {"rabbitmq": 5672, "postgres": 5432, "mariadb": 3306, "redis": 6379}
PRIVATE_BACKENDS_ENV = "SELFHEAL_LAB_PRIVATE_BACKENDS"
#: the private processes, in the order :func:`down` stops them
PRIVATE_PROCESSES = ("rabbitmq", "epmd", "postgres", "mariadb", "redis")


class BackendError(RuntimeError):
    """A backing service could not be found, installed or started."""


def lab_tag():
    """A short name unique to this lab folder (isolates databases and topics)."""
    return hashlib.sha256(str(state.lab_dir().resolve()).encode()).hexdigest()[:8]


def force_private():
    return os.environ.get(PRIVATE_BACKENDS_ENV, "") not in ("", "0")


def ensure(name):
    """Return ``{"port", "private"}`` of a reachable ``name`` backend,
    starting a private one if the standard one does not answer."""
    starters = {"rabbitmq": _start_rabbitmq, "postgres": _start_postgres,
                "mariadb": _start_mariadb, "redis": _start_redis}
    if not force_private() and processes.port_open(STANDARD_PORTS[name]):
        return {"port": STANDARD_PORTS[name], "private": False}
    if processes.running_pid(SERVICE, name):
        return {"port": int(_port_file(name).read_text()), "private": True}
    return {"port": starters[name](), "private": True}


def rabbitmq_url(isolated=False, name=None):
    """The ``transport_url`` of the lab's RabbitMQ (started if needed).

    :param isolated: a virtual host of this lab's own on a shared broker.
        Some services (Heat) name their queues with fixed topics, so two labs
        on one broker would consume each other's calls; a private broker is
        this lab's alone and needs none.
    :param name: a virtual host of its own for one more instance of such a
        service in this lab (the authenticated Heat), on any broker.
    """
    rabbit = ensure("rabbitmq")
    vhost = ""
    if name or (isolated and not rabbit["private"]):
        vhost = f"selfheal_{lab_tag()}" + (f"_{name}" if name else "")
        _ensure_vhost(vhost, _rabbitmq_env() if rabbit["private"] else None)
    return f"rabbit://guest:guest@127.0.0.1:{rabbit['port']}/{vhost}"


def _ensure_vhost(vhost, env=None):
    """Create ``vhost`` (guest may use it) on the machine's broker, or with
    ``env`` (:func:`_rabbitmq_env`) on the lab's private one. One created on
    the machine's broker is recorded in the ledger: ``down`` deletes it."""
    if env is not None:
        env = dict(os.environ, **env)
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        raise BackendError(f"cannot create the RabbitMQ virtual host {vhost}: no rabbitmqctl. "
                           f"Create it (rabbitmqctl add_vhost {vhost}; set_permissions -p "
                           f"{vhost} guest '.*' '.*' '.*') or set {PRIVATE_BACKENDS_ENV}=1")
    listed = subprocess.run([ctl, "-q", "list_vhosts"], capture_output=True, text=True,
                            timeout=60, env=env)
    if vhost in listed.stdout.split():
        return
    try:
        _rabbitmqctl(ctl, env, "add_vhost", vhost)
        if env is None:
            ledger.record(ledger.RABBITMQ_VHOST, vhost, STANDARD_PORTS["rabbitmq"])
        _rabbitmqctl(ctl, env, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except BackendError as e:
        raise BackendError(f"{e}. Run it as a user allowed to, or set "
                           f"{PRIVATE_BACKENDS_ENV}=1") from None


def drop_vhost(entry):
    """Delete the virtual host a ledger entry names (``entry["name"]``) from
    the machine's broker; one already gone is fine.

    :raises BackendError: without rabbitmqctl, or when it fails.
    """
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        raise BackendError("no rabbitmqctl")
    if entry["name"] in _rabbitmqctl(ctl, None, "list_vhosts").split():
        _rabbitmqctl(ctl, None, "delete_vhost", entry["name"])


def _rabbitmqctl(ctl, env, *argv):
    """Run ``rabbitmqctl -q argv`` (``env``: its environment, None for this
    one); return its output, or raise :class:`BackendError` with it."""
    result = subprocess.run([ctl, "-q", *argv], capture_output=True, text=True, timeout=60,
                            env=env)
    if result.returncode != 0:
        raise BackendError(f"rabbitmqctl {' '.join(argv)} failed: "
                           f"{(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout


def running_private():
    """``[{"name", "port"}]`` of the private backends running now."""
    found = []
    for name in PRIVATE_PROCESSES:
        if name != "epmd" and processes.running_pid(SERVICE, name):
            found.append({"name": name, "port": int(_port_file(name).read_text())})
    return found


def down():
    """Stop every private backend the lab started. Returns their names."""
    stopped = []
    for name in PRIVATE_PROCESSES:
        if processes.running_pid(SERVICE, name):
            stopped.append(name)
        processes.stop_group(SERVICE, name, grace=15.0)
    return stopped


# --------------------------------------------------------------------------
# Shared plumbing
# --------------------------------------------------------------------------

def _port_file(name):
    return state.service_dir(SERVICE) / f"{name}.port"


def _private_port(name):
    """A stable private loopback port, kept in the service folder."""
    path = _port_file(name)
    try:
        port = int(path.read_text())
    except (FileNotFoundError, ValueError):
        port = None
    if port is None or (processes.port_open(port) and not processes.running_pid(SERVICE, name)):
        port = processes.free_port()
        path.write_text(str(port))
    return port


def _base(name):
    path = state.service_dir(SERVICE) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _as_service_user(user, paths):
    """argv prefix that drops root to ``user`` (exec, no extra process),
    after giving ``paths`` to that user."""
    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise BackendError(f"user {user!r} is missing (is its Debian package installed?)") from None
    for path in paths:
        _check_traversable(path, user)
        for root, _, files in os.walk(path):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
            "--reset-env", "--"]


def _check_traversable(path, user):
    for parent in pathlib.Path(path).parents:
        if parent.stat().st_mode & 0o001:
            continue
        raise BackendError(f"{parent} is not accessible to the {user} user; "
                           "put the lab elsewhere with SELFHEAL_LAB_DIR")


def _apt_install(package):
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BackendError(f"{package} is not installed and this lab cannot install it "
                           f"(run: sudo apt-get install {package})")
    progress.step(f"installing {package} from Debian packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The package scripts start the system-wide service; keep them from doing so.
    policy = pathlib.Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0 and "apt-get update" in result.stderr + result.stdout:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            result = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", package],
                env=env, capture_output=True, text=True)
    finally:
        if created:
            policy.unlink(missing_ok=True)
    if result.returncode != 0:
        raise BackendError(f"apt-get install {package} failed:\n{result.stderr[-800:]}")


def _start(name, what, argv, port, timeout, env=None, cwd=None):
    """Start a private backend and wait until it listens on ``port``."""
    progress.step(f"starting a private {what} on 127.0.0.1:{port}")
    pid = processes.start(SERVICE, name, argv, env=env, cwd=cwd)
    _wait_port(port, timeout, pid, name, what)
    processes.rerecord(SERVICE, name, pid)  # recorded while a wrapper was still exec'ing
    return port


def _wait_port(port, timeout, pid, name, what):
    """Wait for a private backend to listen; stop it (by PID) if it does not."""
    log = processes.log_file(SERVICE, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes.port_open(port):
            return
        if not processes._alive(pid):
            raise BackendError(f"the private {what} exited; see {log}")
        time.sleep(0.3)
    processes.rerecord(SERVICE, name, pid)
    processes.stop_group(SERVICE, name, grace=5.0)
    raise BackendError(f"the private {what} did not listen on {port} within {timeout} s; "
                       f"see {log}")


# --------------------------------------------------------------------------
# The four backends
# --------------------------------------------------------------------------

def _postgres_bindir():
    found = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _start_postgres():
    if _postgres_bindir() is None:
        _apt_install("postgresql")
    bindir = _postgres_bindir()
    if bindir is None:
        raise BackendError("PostgreSQL is not reachable on 127.0.0.1:5432 and no "
                           "/usr/lib/postgresql/*/bin/postgres was found")
    base = _base("postgres")
    data, run = base / "data", base / "run"
    run.mkdir(parents=True, exist_ok=True)
    port = _private_port("postgres")
    if not (data / "PG_VERSION").exists():
        progress.step("creating a private PostgreSQL cluster (first time only)")
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        prefix = _as_service_user("postgres", [base])
        result = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8", "--no-sync"],
                                capture_output=True, text=True, cwd=str(base))
        if result.returncode != 0:
            raise BackendError(f"initdb failed:\n{result.stderr[-800:]}")
    prefix = _as_service_user("postgres", [base])
    return _start("postgres", "PostgreSQL", [
        *prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(run),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off"], port, 60, cwd=str(base))


def _start_mariadb():
    server = pathlib.Path("/usr/sbin/mariadbd")
    if not server.exists():
        _apt_install("mariadb-server")
    if not server.exists() or not shutil.which("mariadb-install-db"):
        raise BackendError("MariaDB is not reachable on 127.0.0.1:3306 and "
                           f"{server} (package mariadb-server) is missing")
    base = _base("mariadb")
    data, run = base / "data", base / "run"
    run.mkdir(parents=True, exist_ok=True)
    port = _private_port("mariadb")
    user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if not (data / "mysql").is_dir():
        progress.step("creating a private MariaDB data folder (first time only)")
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        if user == "mysql":
            _as_service_user(user, [base])
        result = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", f"--user={user}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, cwd=str(base))
        if result.returncode != 0:
            raise BackendError(f"mariadb-install-db failed:\n{result.stderr[-800:]}")
    if user == "mysql":
        _as_service_user(user, [base])
    # mariadbd drops to --user itself; the grant tables are skipped so that
    # root connects over TCP without a password, like on the CI machines.
    return _start("mariadb", "MariaDB", [
        str(server), "--no-defaults", f"--datadir={data}", f"--socket={run / 'mysqld.sock'}",
        f"--pid-file={run / 'mysqld.pid'}", f"--port={port}", "--bind-address=127.0.0.1",
        f"--user={user}", "--skip-grant-tables", "--skip-name-resolve",
        "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
        "--character-set-server=utf8mb4"], port, 90, cwd=str(base))


def _start_redis():
    server = shutil.which("redis-server")
    if not server:
        _apt_install("redis-server")
        server = shutil.which("redis-server")
    if not server:
        raise BackendError("Redis is not reachable on 127.0.0.1:6379 and redis-server "
                           "(package redis-server) is missing")
    base = _base("redis")
    port = _private_port("redis")
    return _start("redis", "Redis", [
        server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(base), "--daemonize", "no"], port, 30, cwd=str(base))


def _start_rabbitmq():
    server = pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if not server.exists():
        _apt_install("rabbitmq-server")
    if not server.exists() or not shutil.which("epmd"):
        raise BackendError("RabbitMQ is not reachable on 127.0.0.1:5672 and "
                           f"{server} (package rabbitmq-server) is missing")
    base = _base("rabbitmq")
    for sub in ("mnesia", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    port = _private_port("rabbitmq")
    epmd_port = _private_port("epmd")
    _private_port("rabbitmq-dist")
    env = _rabbitmq_env()
    (base / "rabbitmq.conf").write_text(
        "loopback_users.guest = true\n"
        f"listeners.tcp.1 = 127.0.0.1:{port}\n")
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq-env.conf").write_text("")
    if not processes.running_pid(SERVICE, "epmd"):
        _start("epmd", "epmd", ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
               epmd_port, 20, env=env)
    return _start("rabbitmq", "RabbitMQ", [str(server)], port, 120, env=env, cwd=str(base))


def _rabbitmq_env():
    """The environment of the lab's private RabbitMQ node (also what
    ``rabbitmqctl`` needs to reach it), with the ports chosen at its start."""
    base = _base("rabbitmq")

    def port(name):
        return _port_file(name).read_text().strip()

    return {
        "HOME": str(base / "home"),
        "ERL_EPMD_PORT": port("epmd"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": f"selfheal{lab_tag()}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": port("rabbitmq"),
        "RABBITMQ_DIST_PORT": port("rabbitmq-dist"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "RABBITMQ_LOGS": "-",
    }
