"""The lab's Heat 27: ``heat-wsgi-api`` and ``heat-engine`` (stdlib only).

No Keystone: the API runs the ``noauth`` paste flavor (every request is the
admin of project ``admin``). API and engine talk over RabbitMQ (a virtual
host of this lab's own: Heat's queue names are fixed, so two labs on one
broker would serve each other's calls) and keep their data in MariaDB (database
``selfheal_heat_<lab tag>``): on sqlite, replacing a group member corrupts
Heat's data. Both backends come from :mod:`selfheal_lab.backends`, private
ones when the machine has none.

``up()`` records in ``endpoints.json`` (key ``heat``)::

    {"orchestration_url": "http://127.0.0.1:P/v1/admin",
     "headers": {"X-Auth-User": "admin", "X-Auth-Project": "admin"}, ...}

Talk to it with python-heatclient:
``heatclient.client.Client("1", endpoint=url, token="x")``.
"""

import subprocess

from selfheal_lab import backends
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "heat"
KEY = "heat"
PROJECT = "admin"
HEADERS = {"X-Auth-User": "admin", "X-Auth-Project": PROJECT}
NAMES = ("engine", "api")
START_TIMEOUT = 180.0


def _db_name():
    return f"selfheal_heat_{backends.lab_tag()}"


# Runs in the Heat venv (PyMySQL): create the database when it is missing.
_CREATE_DB = r"""
import sys, pymysql
port, name = int(sys.argv[1]), sys.argv[2]
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                       connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % name)
conn.close()
"""


def _config_text(api_port, rabbit_url, db_url, paste_ini):
    tag = backends.lab_tag()
    return f"""\
[DEFAULT]
debug = False
use_stderr = True
transport_url = {rabbit_url}
# our own exchange too (the virtual host already separates labs)
control_exchange = selfheal_heat_{tag}
host = selfheal-heat-{tag}
num_engine_workers = 1
deferred_auth_method = password
heat_metadata_server_url = http://127.0.0.1:{api_port}
heat_waitcondition_server_url = http://127.0.0.1:{api_port}/v1/waitcondition

[database]
connection = {db_url}

[paste_deploy]
flavor = noauth
api_paste_config = {paste_ini}

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

[oslo_messaging_notifications]
driver = noop

[heat_api]
workers = 1
"""


def _probe(info):
    return managed.http_status(info["orchestration_url"] + "/stacks", HEADERS) == 200


def up(timeout=START_TIMEOUT):
    """Start (or keep) Heat; return its endpoints entry.

    :raises RuntimeError: when it cannot be set up or does not answer.
    """
    python = venvs.ensure("heat")
    mariadb = backends.ensure("mariadb")
    rabbit_url = backends.rabbitmq_url(isolated=True)
    db_url = (f"mysql+pymysql://root@127.0.0.1:{mariadb['port']}/{_db_name()}"
              "?charset=utf8mb4")
    sdir = state.service_dir(SERVICE)
    previous = state.read_endpoints().get(KEY) or {}
    fingerprint = managed.fingerprint(db_url, rabbit_url, managed.source_of(__file__),
                                      venvs.stamp("heat"))
    info = managed.running(SERVICE, NAMES, fingerprint, _probe)
    if info:
        return info
    api_port = previous.get("port") or processes.free_port()
    if processes.port_open(api_port):
        api_port = processes.free_port()
    conf = sdir / "heat.conf"
    paste_ini = venvs.venv_dir("heat") / "etc" / "heat" / "api-paste.ini"
    conf.write_text(_config_text(api_port, rabbit_url, db_url, paste_ini))
    # A call sent before the engine declared its queue is dropped by the
    # broker and waits the whole RPC timeout in the one-threaded API: keep
    # the API's timeout short so the start-up probe retries soon.
    api_conf = sdir / "heat-api.conf"
    api_conf.write_text("[DEFAULT]\nrpc_response_timeout = 10\n")
    _prepare_database(python, mariadb["port"], conf, db_url)
    bindir = python.parent
    commands = {
        "engine": [str(bindir / "heat-engine"), "--config-file", str(conf)],
        "api": [str(bindir / "heat-wsgi-api"), "--host", "127.0.0.1", "--port", str(api_port),
                "--", "--config-file", str(conf), "--config-file", str(api_conf)],
    }
    info = {"orchestration_url": f"http://127.0.0.1:{api_port}/v1/{PROJECT}",
            "port": api_port, "headers": dict(HEADERS), "config": str(conf),
            "database": _db_name()}
    progress.step(f"starting Heat (api on port {api_port}, engine) over RabbitMQ and MariaDB")
    return managed.start(SERVICE, KEY, commands, fingerprint, info, _probe, timeout, "Heat")


def _prepare_database(python, mariadb_port, conf, db_url):
    marker = state.service_dir(SERVICE) / "db-ready"
    if marker.exists() and marker.read_text() == db_url:
        return
    result = subprocess.run([str(python), "-c", _CREATE_DB, str(mariadb_port), _db_name()],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"cannot create the Heat database in MariaDB on 127.0.0.1:"
                           f"{mariadb_port} as root without a password:\n{result.stderr[-800:]}")
    progress.step(f"migrating the Heat database {_db_name()} (first time only)")
    log = state.service_dir(SERVICE) / "db-sync.log"
    with open(log, "w") as out:
        result = subprocess.run([str(python.parent / "heat-manage"), "--config-file", str(conf),
                                 "db_sync"], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"heat-manage db_sync failed; see {log}")
    marker.write_text(db_url)


def down():
    """Stop Heat's processes (by PID). Returns True if they were running."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
