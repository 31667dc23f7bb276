# SPDX-License-Identifier: Apache-2.0
"""The lab's Masakari 22: the real ``masakari-api`` and ``masakari-engine``
(stdlib only).

Masakari only runs behind Keystone here, as in production: its Nova client
(``masakari.compute.nova.novaclient``) always logs in to Keystone as the
privileged user (``[DEFAULT] os_privileged_user_*``, with the plugin named
in ``[keystone_authtoken] auth_type``) and finds Nova in the catalog
(``nova_catalog_admin_info``, ``compute:nova:publicURL``); it has no
endpoint override. So ``up()`` starts (or keeps) the lab's Keystone and opens
the Nova box's Keystone door (the catalog's ``compute``); the Masakari API
validates tokens with keystonemiddleware as the ``masakari`` service user
(``auth_strategy = keystone``, the stock paste pipeline), and the engine
reaches Nova with that user's password from the catalog. Nothing of Masakari
is replaced or patched.

API and engine talk over RabbitMQ, in a virtual host of this lab's own
(Masakari's engine topic ``ha_engine`` is fixed); their data (notifications,
hosts, segments, VM moves and the taskflow persistence) live in MariaDB,
database ``selfheal_masakari_<lab tag>``, made by ``masakari-manage db
sync``; one made on the machine's MariaDB is in the ledger, ``selfheal-lab
down`` drops it.

``up(**options)`` sets Masakari's own options (:data:`OPTIONS`: the engine's
waits, threads and host-failure settings, the API's duplicate window and
random delay); an option not given keeps **Masakari's default**. A running
Masakari with other options (or another configuration) is restarted, so a
benchmark reconfigures it between cells with another ``up(...)``.

``up()`` records in ``endpoints.json`` (key ``masakari``)::

    {"url": "http://127.0.0.1:P/v1", "port": P, "options": {...},
     "config": ".../masakari.conf", "database": "selfheal_masakari_...",
     "pids": {...}, "logs": {"api": ..., "engine": ...}}

and registers ``url`` in the catalog as ``instance-ha`` (name ``masakari``).
Every request needs a Keystone token with the admin role (Masakari's
default policy): :mod:`selfheal_lab.masakari_client` sends the lab admin's.
"""

import os
import signal
import subprocess
import time

from selfheal_lab import backends
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import heat
from selfheal_lab.services import keystone
from selfheal_lab.services import managed
from selfheal_lab.services import nova

SERVICE = "masakari"
KEY = "masakari"
NAMES = ("engine", "api")
#: the Masakari service user in the lab's Keystone (admin on project service)
USER = "masakari"
CATALOG_TYPE = "instance-ha"
START_TIMEOUT = 180.0
ENGINE_TIMEOUT = 90.0

#: Masakari 22's options a caller of :func:`up` may set: name -> (section,
#: type, Masakari's default). From ``masakari/conf/engine.py``,
#: ``engine_driver.py`` (``[host_failure]``) and ``api.py``.
OPTIONS = {
    # engine: the host failure flow
    "host_failure_recovery_threads": ("DEFAULT", int, 3),
    "wait_period_after_service_update": ("DEFAULT", int, 180),
    "wait_period_after_evacuation": ("DEFAULT", int, 90),
    "verify_interval": ("DEFAULT", int, 1),
    "wait_period_after_power_off": ("DEFAULT", int, 180),
    "wait_period_after_power_on": ("DEFAULT", int, 60),
    # engine: the periodic retry of notifications left new or in error
    "process_unfinished_notifications_interval": ("DEFAULT", int, 120),
    "retry_notification_new_status_interval": ("DEFAULT", int, 60),
    "check_expired_notifications_interval": ("DEFAULT", int, 600),
    "notifications_expired_interval": ("DEFAULT", int, 86400),
    # API: the duplicate check and the random pause before each notification
    "duplicate_notification_detection_interval": ("DEFAULT", int, 180),
    "notification_delay_max": ("DEFAULT", int, 5),
    # [host_failure]
    "evacuate_all_instances": ("host_failure", bool, True),
    "ignore_instances_in_error_state": ("host_failure", bool, False),
    "ha_enabled_instance_metadata_key": ("host_failure", str, "HA_Enabled"),
    "service_disable_reason": ("host_failure", str, "Masakari detected host failed."),
    "add_reserved_host_to_aggregate": ("host_failure", bool, False),
}
#: lowest values above 0: Masakari's own minimum for the threads; a
#: ``verify_interval`` of 0 would make every confirmation loop a busy loop
_MINIMUM = {"host_failure_recovery_threads": 1, "verify_interval": 1}


def _db_name():
    return f"selfheal_masakari_{backends.lab_tag()}"


def check_options(options):
    """Validate :func:`up`'s options (nothing starts when one is wrong).

    :param options: ``{name: value}``, names from :data:`OPTIONS`.
    :returns: ``{name: value}`` with every option of :data:`OPTIONS`: the
        given value, else Masakari's default.
    :raises ValueError: for an unknown name, a value of the wrong type, a
        negative duration, or zero threads (naming the option).
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown Masakari option(s) {unknown}: use {sorted(OPTIONS)}")
    effective = {}
    for name, (_, kind, default) in OPTIONS.items():
        value = options.get(name, default)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"Masakari's {name} must be a whole number, got {value!r}")
        if kind is int and value < _MINIMUM.get(name, 0):
            raise ValueError(f"Masakari's {name} must be at least {_MINIMUM.get(name, 0)}, "
                             f"got {value}")
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"Masakari's {name} must be True or False, got {value!r}")
        if kind is str and (not isinstance(value, str) or "\n" in value or not value.strip()):
            raise ValueError(f"Masakari's {name} must be a one-line text, got {value!r}")
        effective[name] = value
    return effective


def _option_lines(effective, section):
    lines = []
    for name, value in effective.items():
        if OPTIONS[name][0] == section:
            lines.append(f"{name} = {str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"


def config_text(api_port, rabbit_url, db_url, paste_ini, identity_url, effective):
    """masakari.conf (it holds the masakari user's password: write it 0600).

    :param effective: every option of :data:`OPTIONS` (:func:`check_options`).
    """
    tag = backends.lab_tag()
    return f"""\
[DEFAULT]
debug = False
use_stderr = True
transport_url = {rabbit_url}
host = selfheal-masakari-{tag}
auth_strategy = keystone
masakari_api_listen = 127.0.0.1
masakari_api_listen_port = {api_port}
masakari_api_workers = 1
# the privileged user the API and the engine reach Nova as (catalog lookup)
os_privileged_user_name = {USER}
os_privileged_user_password = {keystone.password(USER)}
os_privileged_user_tenant = service
os_privileged_user_auth_url = {identity_url}
# Keystone's default domain: id "default", name "Default"
os_user_domain_name = Default
os_project_domain_name = Default
os_region_name = {keystone.REGION}
nova_catalog_admin_info = compute:nova:publicURL
{_option_lines(effective, "DEFAULT")}
[host_failure]
{_option_lines(effective, "host_failure")}
[wsgi]
api_paste_config = {paste_ini}

[database]
connection = {db_url}

[taskflow]
connection = {db_url}

[oslo_messaging_notifications]
driver = noop
{keystone.authtoken_section(USER)}"""


def _token_headers():
    return {"X-Auth-Token": keystone.token()[0]}


def _probe(info):
    """True once the API answers a segment list for the lab's admin."""
    try:
        headers = _token_headers()
    except keystone.KeystoneError:
        return False
    return managed.http_status(info["url"] + "/segments", headers) == 200


# Runs in the Masakari venv: True once the engine consumes its RPC topic.
# A call of a method no endpoint has is answered by the server itself
# (NoSuchMethod, as a remote error): an answer proves the engine listens.
_ENGINE_PROBE = r"""
import sys, time
from oslo_config import cfg
import oslo_messaging as messaging
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
conf = cfg.ConfigOpts()
conf([])
transport = messaging.get_rpc_transport(conf, url=url)
client = messaging.get_rpc_client(transport, messaging.Target(topic="ha_engine"), timeout=3)
while True:
    try:
        client.call({}, "selfheal_lab_probe")
    except messaging.MessagingTimeout:
        if time.monotonic() > deadline:
            sys.exit("masakari-engine does not answer on ha_engine")
        continue
    except Exception as e:
        print("engine answers:", type(e).__name__)
        break
"""


def _wait_engine(python, rabbit_url, timeout=ENGINE_TIMEOUT):
    """Wait until the engine consumes its topic (a notification cast before
    that would be dropped by the broker, not queued)."""
    try:
        result = subprocess.run([str(python), "-c", _ENGINE_PROBE, rabbit_url, str(timeout)],
                                capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def up(timeout=START_TIMEOUT, **options):
    """Start (or keep) Masakari's API and engine; return its endpoints entry.

    Starts the lab's Keystone and opens the Nova box's Keystone door when
    they are not (Nova in a box must be running).

    :param options: Masakari options (:data:`OPTIONS`); the others keep
        Masakari's defaults. A running Masakari with other options restarts.
    :raises ValueError: for a wrong option (:func:`check_options`), before
        anything starts.
    :raises RuntimeError: when Nova is not running, or Masakari does not
        start (the message holds the end of its log).
    """
    effective = check_options(options)
    if not state.read_endpoints().get(nova.SERVICE):
        raise RuntimeError("Masakari needs the lab's Nova: start the lab first "
                           "(selfheal-lab up --auth --with masakari)")
    python = venvs.ensure("masakari")
    identity_url = keystone.up()["url"]
    nova.open_keystone_door()
    mariadb = backends.ensure("mariadb")
    rabbit_url = backends.rabbitmq_url(isolated=True, name="masakari")
    db_url = (f"mysql+pymysql://root@127.0.0.1:{mariadb['port']}/{_db_name()}"
              "?charset=utf8mb4")
    fingerprint = managed.fingerprint(db_url, rabbit_url, identity_url, effective,
                                      managed.source_of(__file__), venvs.stamp("masakari"))
    info = managed.running(SERVICE, NAMES, fingerprint, _probe)
    if info:
        return _registered(info)
    previous = state.read_endpoints().get(KEY) or {}
    managed.stop(SERVICE, KEY, NAMES)  # keeps its port (the catalog names it)
    api_port = previous.get("port") or processes.free_port()
    if processes.port_open(api_port):
        api_port = processes.free_port()
    sdir = state.service_dir(SERVICE)
    conf = sdir / "masakari.conf"
    paste_ini = venvs.venv_dir("masakari") / "etc" / "masakari" / "api-paste.ini"
    state.write_private(conf, config_text(api_port, rabbit_url, db_url, paste_ini,
                                          identity_url, effective))
    _prepare_database(python, mariadb, conf, db_url)
    bindir = python.parent
    commands = {"engine": [str(bindir / "masakari-engine"), "--config-file", str(conf)],
                "api": [str(bindir / "masakari-api"), "--config-file", str(conf)]}
    info = {"url": f"http://127.0.0.1:{api_port}/v1", "port": api_port,
            "options": effective, "config": str(conf), "database": _db_name(),
            "identity_url": identity_url, "engine_argv": commands["engine"],
            "transport_url": rabbit_url}
    changed = {k: v for k, v in effective.items() if v != OPTIONS[k][2]}
    progress.step(f"starting Masakari (api on port {api_port}, engine) over RabbitMQ and "
                  f"MariaDB; options other than Masakari's defaults: {changed or 'none'}")
    info = managed.start(SERVICE, KEY, commands, fingerprint, info, _probe, timeout, "Masakari")
    if not _wait_engine(python, rabbit_url):
        managed.stop(SERVICE, KEY, NAMES)
        log = processes.log_file(SERVICE, "engine")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"masakari-engine does not consume its queue; see {log}:\n{tail}")
    return _registered(info)


def _registered(info):
    keystone.register_endpoint(CATALOG_TYPE, "masakari", info["url"])
    return info


def _prepare_database(python, mariadb, conf, db_url):
    """Create the database (:func:`heat.create_database`, recorded in the
    ledger on the machine's MariaDB) and its schemas (``masakari-manage db
    sync``: Masakari's and the taskflow persistence's); a marker skips the
    sync while the database is the one synced before."""
    marker = state.service_dir(SERVICE) / "db-ready"
    created = heat.create_database(python, mariadb["port"], _db_name(),
                                   shared=not mariadb["private"])
    if not created and marker.exists() and marker.read_text() == db_url:
        return
    marker.unlink(missing_ok=True)
    progress.step(f"creating the Masakari database {_db_name()} (first time only)")
    log = state.service_dir(SERVICE) / "db-sync.log"
    with open(log, "w") as out:
        result = subprocess.run([str(python.parent / "masakari-manage"), "--config-file",
                                 str(conf), "db", "sync"], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"masakari-manage db sync failed; see {log}")
    marker.write_text(db_url)


def kill_engine():
    """Kill masakari-engine at once, mid-work (SIGKILL to its process group,
    by the PID the lab recorded), like a crash: nothing of its flows
    finishes or is cleaned up. The API keeps running.

    :returns: True when it was running.
    """
    pid = processes.running_pid(SERVICE, "engine")
    if pid is None:
        return False
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    # forget it (and reap it when this process started it: a zombie still
    # answers signals, and would pass for a running engine)
    processes.stop(SERVICE, "engine", grace=0.0)
    return True


def start_engine(timeout=ENGINE_TIMEOUT):
    """Start masakari-engine again with the running Masakari's configuration
    (after :func:`kill_engine`), as a service supervisor would; returns once
    it consumes its queue. Masakari's own recovery of what the killed engine
    left is then its periodic tasks' (``process_unfinished_notifications``
    for notifications left new or in error).

    :returns: the updated endpoints entry.
    :raises RuntimeError: when Masakari was not started by :func:`up`, the
        engine still runs, or it does not come back.
    """
    info = state.read_endpoints().get(KEY)
    if not info:
        raise RuntimeError("Masakari is not running in the lab (masakari.up() first)")
    if processes.running_pid(SERVICE, "engine"):
        raise RuntimeError("masakari-engine is running: kill_engine() first")
    log = processes.log_file(SERVICE, "engine")
    with open(log, "a") as out:
        out.write("--- started again by the lab (start_engine) ---\n")
    pid = processes.start(SERVICE, "engine", info["engine_argv"],
                          cwd=str(state.service_dir(SERVICE)))
    if not _wait_engine(venvs.python("masakari"), info["transport_url"], timeout):
        raise RuntimeError(f"masakari-engine did not come back; see {log}")
    return managed.restarted(SERVICE, KEY, "engine", pid)


def down():
    """Stop the API and the engine (by PID). Returns True if one was running."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
