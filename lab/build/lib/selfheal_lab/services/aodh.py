# SPDX-License-Identifier: Apache-2.0
"""The lab's Aodh 23 with event alarms (stdlib only; part of the authenticated lab).

Three processes from the aodh venv: the API (``wsgi_server.py --app aodh``,
Keystone auth as the ``aodh`` service user), ``aodh-listener`` (evaluates
event alarms on the events it consumes) and ``aodh-notifier`` (runs the
alarm actions, ``trust+zaqar://`` among them, with trusts to the ``aodh``
user). sqlite database; RabbitMQ in this lab's own virtual host.

Events reach the listener the way Ceilometer's event pipeline publishes
them (``notifier://?topic=alarm.all``): an oslo.messaging notification of
priority ``sample`` on topic ``alarm.all`` of the ``aodh`` exchange, whose
payload is a list of events ``{message_id, event_type, generated, traits:
[[name, type, value], ...]}``. :func:`publish_event` sends one.

``up()`` records in ``endpoints.json`` (key ``aodh``) ``{"url", "port", ...}``
and registers the API in the catalog as ``alarming``.

:data:`EVENT_ALARM_CACHE_TTL`: Aodh keeps each project's list of event alarms
for this many seconds (60 by default upstream, which would hide an alarm
created in the last minute); the lab uses a short cache.
"""

import configparser
import json
import os
import subprocess

from selfheal_lab import backends
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import keystone
from selfheal_lab.services import managed

SERVICE = "aodh"
KEY = "aodh"
NAMES = ("listener", "notifier", "api")
SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgi_server.py")
START_TIMEOUT = 120.0
EVENT_ALARM_CACHE_TTL = 2
EXCHANGE = "aodh"
TOPIC = "alarm.all"


def _paste_config(sdir, conf):
    """Aodh's own api-paste.ini, with its authtoken filter reading ``conf``:
    keystonemiddleware loads ``oslo_config_project = aodh`` from
    ``/etc/aodh`` otherwise, not from the file the API was started with."""
    shipped = venvs.venv_dir("aodh").glob("lib/python*/site-packages/aodh/api/api-paste.ini")
    paste = configparser.ConfigParser(interpolation=None)
    paste.read(next(iter(shipped)))
    paste["filter:authtoken"]["oslo_config_file"] = str(conf)
    path = sdir / "api-paste.ini"
    with open(path, "w") as f:
        paste.write(f)
    return path


def _config_text(sdir, rabbit_url, paste_ini):
    return f"""\
[DEFAULT]
debug = False
use_stderr = True
transport_url = {rabbit_url}
control_exchange = {EXCHANGE}
event_alarm_cache_ttl = {EVENT_ALARM_CACHE_TTL}

[api]
auth_mode = keystone
paste_config = {paste_ini}

[database]
connection = sqlite:///{sdir / 'aodh.sqlite'}

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

{keystone.authtoken_section("aodh")}
# the notifier's trusts (trust+ actions) and catalog lookups
[service_credentials]
{keystone.auth_options("aodh")}interface = public
region_name = {keystone.REGION}
"""


def _probe(info):
    return managed.http_status(info["url"].rstrip("/") + "/healthcheck") == 200


def up(timeout=START_TIMEOUT):
    """Start (or keep) Aodh; return its endpoints entry (needs the lab's Keystone).

    :raises RuntimeError: when it cannot be set up or does not answer.
    """
    python = venvs.ensure("aodh")
    identity = keystone.up()
    rabbit_url = backends.rabbitmq_url(isolated=True)
    sdir = state.service_dir(SERVICE)
    fingerprint = managed.fingerprint(rabbit_url, identity["url"], managed.source_of(__file__),
                                      venvs.stamp("aodh"))
    info = managed.running(SERVICE, NAMES, fingerprint, _probe)
    if info is None:
        info = _start(python, sdir, rabbit_url, identity, fingerprint, timeout)
    keystone.register_endpoint("alarming", "aodh", info["url"])
    return info


def _start(python, sdir, rabbit_url, identity, fingerprint, timeout):
    previous = state.read_endpoints().get(KEY) or {}
    managed.stop(SERVICE, KEY, NAMES)
    port = previous.get("port") or processes.free_port()
    if processes.port_open(port):
        port = processes.free_port()
    conf = sdir / "aodh.conf"
    state.write_private(conf, _config_text(sdir, rabbit_url, _paste_config(sdir, conf)))
    _prepare_database(python, conf)
    bindir = python.parent
    commands = {
        "listener": [str(bindir / "aodh-listener"), "--config-file", str(conf)],
        "notifier": [str(bindir / "aodh-notifier"), "--config-file", str(conf)],
        "api": [str(python), SERVER_SCRIPT, "--app", "aodh", "--config-file", str(conf),
                "--port", str(port)],
    }
    info = {"url": f"http://127.0.0.1:{port}", "port": port, "config": str(conf),
            "exchange": EXCHANGE, "topic": TOPIC, "cache_ttl": EVENT_ALARM_CACHE_TTL}
    progress.step(f"starting Aodh (api on port {port}, listener, notifier)")
    return managed.start(SERVICE, KEY, commands, fingerprint, info, _probe, timeout, "Aodh")


def _prepare_database(python, conf):
    marker = state.service_dir(SERVICE) / "db-ready"
    if marker.exists() and marker.read_text() == str(conf):
        return
    progress.step("creating the Aodh sqlite database (first time only)")
    log = state.service_dir(SERVICE) / "dbsync.log"
    with open(log, "w") as out:
        result = subprocess.run([str(python.parent / "aodh-dbsync"), "--config-file", str(conf)],
                                stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"aodh-dbsync failed; see {log}")
    marker.write_text(str(conf))


# Runs in the aodh venv (oslo.messaging): one notification, as Ceilometer's
# notifier publisher sends it.
_PUBLISH = r"""
import json, sys, time
from oslo_config import cfg
import oslo_messaging
url, exchange, topic, event = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
conf = cfg.ConfigOpts()
conf([], project="selfheal-lab-publisher")
oslo_messaging.set_transport_defaults(exchange)
transport = oslo_messaging.get_notification_transport(conf, url=url)
notifier = oslo_messaging.Notifier(transport, driver="messagingv2",
                                   publisher_id="ceilometer.publisher", topics=[topic])
notifier.sample({}, "event.sample", [event])
print(json.dumps({"sent_at": time.time()}))
transport.cleanup()
"""


def publish_event(event):
    """Publish one event on the lab's bus as Ceilometer's event pipeline does.

    :param event: ``{"message_id", "event_type", "generated", "traits": [[name,
        type, value], ...]}``; the ``project_id`` (or ``tenant_id``) trait
        selects the project whose event alarms are evaluated.
    :returns: the wall-clock time (``time.time()``) the notification was sent.
    """
    result = subprocess.run([str(venvs.python("aodh")), "-c", _PUBLISH,
                             backends.rabbitmq_url(isolated=True), EXCHANGE, TOPIC,
                             json.dumps(event)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"publishing the event failed: {result.stderr.strip()[-800:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["sent_at"]


def down():
    """Stop Aodh's processes (by PID). Returns True if they were running."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
