# SPDX-License-Identifier: Apache-2.0
"""The lab's Heat 27: ``heat-wsgi-api`` and ``heat-engine`` (stdlib only).

No Keystone: the API runs the ``noauth`` paste flavor (every request is the
admin of project ``admin``). API and engine talk over RabbitMQ (a virtual
host of this lab's own: Heat's queue names are fixed, so two labs on one
broker would serve each other's calls) and keep their data in MariaDB (database
``selfheal_heat_<lab tag>``): on sqlite, replacing a group member corrupts
Heat's data. Both backends come from :mod:`selfheal_lab.backends`, private
ones when the machine has none; a database or virtual host created on the
machine's own is recorded in :mod:`selfheal_lab.ledger`, and
``selfheal-lab down`` drops it.

``up()`` records in ``endpoints.json`` (key ``heat``)::

    {"orchestration_url": "http://127.0.0.1:P/v1/admin",
     "headers": {"X-Auth-User": "admin", "X-Auth-Project": "admin"}, ...}

Talk to it with python-heatclient:
``heatclient.client.Client("1", endpoint=url, token="x")``.

``up(authenticated=True)`` starts the authenticated lab's Heat instead, a
second one beside it (folder ``heat-auth``, database
``selfheal_heat_auth_<lab tag>``, a virtual host of its own: both would
consume the fixed queue ``engine``): the default paste pipeline, where
keystonemiddleware validates tokens as the ``heat`` service user, and
``deferred_auth_method = trusts`` as in production, so that a trust-scoped
token (the alarm chain's) may update a stack of nested stacks; ``[trustee]``
is the ``heat`` user. Endpoints key ``heat_auth``; registered in the catalog
as ``orchestration`` with ``$(project_id)s``, which Keystone fills in per
token. The no-auth Heat keeps ``password``: trusts need Keystone for every
stack. Its configuration holds the heat user's password (mode 0600).

The engine loads the lab's own resource plugins (``heat_plugins/``):
``Selfheal::Lab::Member``, an ``OS::Heat::TestResource`` whose creation
fails while :func:`fail_member_creates` says so (a replacement that Nova
cannot place, without Nova).
"""

import fcntl
import json
import pathlib
import subprocess

from selfheal_lab import backends
from selfheal_lab import ledger
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import keystone
from selfheal_lab.services import managed

SERVICE = "heat"
KEY = "heat"
AUTH_SERVICE = "heat-auth"
AUTH_KEY = "heat_auth"
PROJECT = "admin"
HEADERS = {"X-Auth-User": "admin", "X-Auth-Project": PROJECT}
NAMES = ("engine", "api")
START_TIMEOUT = 180.0
#: the lab's resource plugins (``Selfheal::Lab::Member``), loaded by the engine
PLUGIN_DIR = pathlib.Path(__file__).parent / "heat_plugins"
#: where the engine's plugin reads the faults to inject (an environment variable)
FAULTS_ENV = "SELFHEAL_LAB_HEAT_FAULTS"


def _db_name(authenticated=False):
    return f"selfheal_heat_{'auth_' if authenticated else ''}{backends.lab_tag()}"


# Runs in the Heat venv (PyMySQL): create the database when it is missing,
# and say whether it was created now.
_CREATE_DB = r"""
import json, sys, pymysql
port, name = int(sys.argv[1]), sys.argv[2]
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                       connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    created = not cur.fetchone()
    cur.execute("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % name)
conn.close()
print(json.dumps({"created": created}))
"""

# Runs in the interpreter that created the database (PyMySQL): drop it.
_DROP_DB = r"""
import sys, pymysql
port, name = int(sys.argv[1]), sys.argv[2]
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                       connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("DROP DATABASE IF EXISTS `%s`" % name)
conn.close()
"""


def _config_text(api_port, rabbit_url, db_url, paste_ini, authenticated=False):
    tag = backends.lab_tag()
    text = f"""\
[DEFAULT]
debug = False
use_stderr = True
transport_url = {rabbit_url}
# our own exchange too (the virtual host already separates labs)
control_exchange = selfheal_heat_{tag}
host = selfheal-heat-{tag}
num_engine_workers = 1
deferred_auth_method = {"trusts" if authenticated else "password"}
heat_metadata_server_url = http://127.0.0.1:{api_port}
heat_waitcondition_server_url = http://127.0.0.1:{api_port}/v1/waitcondition
# the lab's own resources (Selfheal::Lab::Member: creations that fail on demand)
plugin_dirs = {PLUGIN_DIR}

[database]
connection = {db_url}

[paste_deploy]
# empty: Heat's default pipeline, with keystonemiddleware
flavor = {"" if authenticated else "noauth"}
api_paste_config = {paste_ini}

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

[oslo_messaging_notifications]
driver = noop

[heat_api]
workers = 1
"""
    if authenticated:
        text += (keystone.authtoken_section("heat")
                 + "\n# trusts: deferred operations and trust-scoped requests act as heat\n"
                   "[trustee]\n" + keystone.auth_options("heat", project=None)
                 + f"\n[clients_keystone]\nauth_uri = {keystone.url()}\n")
    return text


def _probe(info):
    """True once the API answers a stack list (the engine too)."""
    if not info.get("authenticated"):
        return managed.http_status(info["orchestration_url"] + "/stacks", HEADERS) == 200
    try:
        token, body = keystone.token()
    except keystone.KeystoneError:
        return False
    url = info["orchestration_url"].replace("$(project_id)s", body["project"]["id"])
    return managed.http_status(url + "/stacks", {"X-Auth-Token": token}) == 200


def up(timeout=START_TIMEOUT, authenticated=False):
    """Start (or keep) Heat; return its endpoints entry.

    :param authenticated: the authenticated lab's Heat (needs the lab's
        Keystone), a second instance beside the no-auth one.
    :raises RuntimeError: when it cannot be set up or does not answer.
    """
    python = venvs.ensure("heat")
    mariadb = backends.ensure("mariadb")
    service, key = (AUTH_SERVICE, AUTH_KEY) if authenticated else (SERVICE, KEY)
    rabbit_url = backends.rabbitmq_url(isolated=True, name="heat_auth" if authenticated
                                       else None)
    db_url = (f"mysql+pymysql://root@127.0.0.1:{mariadb['port']}/{_db_name(authenticated)}"
              "?charset=utf8mb4")
    identity_url = keystone.up()["url"] if authenticated else None
    sdir = state.service_dir(service)
    previous = state.read_endpoints().get(key) or {}
    fingerprint = managed.fingerprint(db_url, rabbit_url, managed.source_of(__file__),
                                      venvs.stamp("heat"), identity_url, *[
                                          managed.source_of(p)
                                          for p in sorted(PLUGIN_DIR.glob("*.py"))])
    info = managed.running(service, NAMES, fingerprint, _probe)
    if info:
        return _registered(info)
    managed.stop(service, key, NAMES)  # an outdated Heat keeps its port (in the catalog)
    api_port = previous.get("port") or processes.free_port()
    if processes.port_open(api_port):
        api_port = processes.free_port()
    conf = sdir / "heat.conf"
    paste_ini = venvs.venv_dir("heat") / "etc" / "heat" / "api-paste.ini"
    state.write_private(conf, _config_text(api_port, rabbit_url, db_url, paste_ini,
                                           authenticated))
    # A call sent before the engine declared its queue is dropped by the
    # broker and waits the whole RPC timeout in the one-threaded API: keep
    # the API's timeout short so the start-up probe retries soon.
    api_conf = sdir / "heat-api.conf"
    api_conf.write_text("[DEFAULT]\nrpc_response_timeout = 10\n")
    _prepare_database(python, mariadb, conf, db_url, service, _db_name(authenticated))
    bindir = python.parent
    commands = {
        "engine": [str(bindir / "heat-engine"), "--config-file", str(conf)],
        "api": [str(bindir / "heat-wsgi-api"), "--host", "127.0.0.1", "--port", str(api_port),
                "--", "--config-file", str(conf), "--config-file", str(api_conf)],
    }
    info = {"orchestration_url": f"http://127.0.0.1:{api_port}/v1/{PROJECT}",
            "port": api_port, "headers": dict(HEADERS), "config": str(conf),
            "database": _db_name(authenticated)}
    what = "Heat"
    if authenticated:
        info = {"orchestration_url": f"http://127.0.0.1:{api_port}/v1/$(project_id)s",
                "port": api_port, "authenticated": True, "config": str(conf),
                "database": _db_name(True)}
        what = "Heat (authenticated)"
    progress.step(f"starting {what} (api on port {api_port}, engine) "
                  "over RabbitMQ and MariaDB")
    return _registered(managed.start(service, key, commands, fingerprint, info, _probe,
                                     timeout, what,
                                     env={FAULTS_ENV: str(faults_path(authenticated))}))


def faults_path(authenticated=False):
    """The file of faults the engine's ``Selfheal::Lab::Member`` reads."""
    return state.service_dir(AUTH_SERVICE if authenticated else SERVICE) / "faults.json"


def fail_member_creates(root_stack_id, failures=1, message=None, authenticated=False):
    """Make the next ``failures`` creations of ``Selfheal::Lab::Member``
    resources in the stack ``root_stack_id`` (its nested stacks too) fail,
    with ``message`` as the error (default: Nova's "No valid host").
    ``failures=0`` clears the fault.

    :returns: what the fault was before (``failures`` left, ``taken``), or None.
    """
    path = faults_path(authenticated)
    path.touch()
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        faults = json.loads(f.read() or "{}")
        before = faults.get(root_stack_id)
        faults[root_stack_id] = {
            "failures": failures, "taken": 0,
            "message": message or "No valid host was found. (injected by the lab)"}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(faults))
    return before


def member_create_faults(root_stack_id, authenticated=False):
    """The fault set for ``root_stack_id``: ``failures`` left and ``taken``."""
    try:
        faults = json.loads(faults_path(authenticated).read_text() or "{}")
    except FileNotFoundError:
        return None
    return faults.get(root_stack_id)


def _registered(info):
    """The authenticated Heat is the catalog's ``orchestration``."""
    if info.get("authenticated"):
        keystone.register_endpoint("orchestration", "heat", info["orchestration_url"])
    return info


def _prepare_database(python, mariadb, conf, db_url, service, db_name):
    """Create (:func:`create_database`) and migrate the database; a marker
    skips the migration while the database is the one migrated before."""
    marker = state.service_dir(service) / "db-ready"
    created = create_database(python, mariadb["port"], db_name, shared=not mariadb["private"])
    if not created and marker.exists() and marker.read_text() == db_url:
        return
    marker.unlink(missing_ok=True)
    progress.step(f"migrating the Heat database {db_name} (first time only)")
    log = state.service_dir(service) / "db-sync.log"
    with open(log, "w") as out:
        result = subprocess.run([str(python.parent / "heat-manage"), "--config-file", str(conf),
                                 "db_sync"], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"heat-manage db_sync failed; see {log}")
    marker.write_text(db_url)


def create_database(python, mariadb_port, db_name, shared=True):
    """Create the MariaDB database ``db_name`` if it is missing.

    :param python: an interpreter with PyMySQL (the Heat venv's).
    :param mariadb_port: the MariaDB on 127.0.0.1 (root, no password).
    :param shared: that MariaDB is the machine's (not a private one of the
        lab): a database created there is recorded in the ledger, for
        ``down`` to drop (:func:`drop_database`).
    :returns: True when the database was created now.
    :raises RuntimeError: when MariaDB refuses.
    """
    result = subprocess.run([str(python), "-c", _CREATE_DB, str(mariadb_port), db_name],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"cannot create the Heat database in MariaDB on 127.0.0.1:"
                           f"{mariadb_port} as root without a password:\n{result.stderr[-800:]}")
    created = json.loads(result.stdout.strip().splitlines()[-1])["created"]
    if created and shared:
        ledger.record(ledger.MARIADB_DATABASE, db_name, mariadb_port, python=str(python))
    return created


def drop_database(entry):
    """Drop the MariaDB database a ledger entry names, with the entry's
    ``python`` (the one that created it); one already gone is fine.

    :raises RuntimeError: with the driver's error when the drop fails.
    """
    result = subprocess.run([entry["python"], "-c", _DROP_DB, str(entry["port"]),
                             entry["name"]], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["failed"])[-1])


def down():
    """Stop both Heats' processes (by PID). Returns True if one was running."""
    stopped = managed.stop(AUTH_SERVICE, AUTH_KEY, NAMES)
    return managed.stop(SERVICE, KEY, NAMES) or stopped


def status(authenticated=False):
    if authenticated:
        return managed.status(AUTH_SERVICE, AUTH_KEY, NAMES, _probe)
    return managed.status(SERVICE, KEY, NAMES, _probe)
