"""The lab's Zaqar 23: one ``zaqar-server`` with Redis stores (stdlib only).

No Keystone (``auth_strategy`` empty): every request carries a ``Client-ID``
(a UUID) and an ``X-Project-ID`` header. Redis holds both the messages and
the management data (queues, subscriptions), in a database number of its
own, and the message pipeline includes Zaqar's notifier, without which
subscriptions deliver nothing. Redis comes from :mod:`selfheal_lab.backends`.

``up()`` records in ``endpoints.json`` (key ``zaqar``)::

    {"messaging_url": "http://127.0.0.1:P", "project_id": "...", ...}

Talk to it with :mod:`selfheal_lab.zaqar_client`.
"""

import uuid

from selfheal_lab import backends
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "zaqar"
KEY = "zaqar"
NAMES = ("server",)
START_TIMEOUT = 90.0
# Redis database numbers 0..15; this lab uses one chosen from its tag so
# that two lab folders sharing a Redis do not see each other's queues.
REDIS_DATABASES = 16


def project_id():
    return f"selfheal-{backends.lab_tag()}"


def headers():
    return {"Client-ID": str(uuid.uuid5(uuid.NAMESPACE_URL, project_id())),
            "X-Project-ID": project_id()}


def _redis_db():
    return 1 + int(backends.lab_tag(), 16) % (REDIS_DATABASES - 1)


def _config_text(port, redis_port):
    uri = f"redis://127.0.0.1:{redis_port}?dbid={_redis_db()}"
    return f"""\
[DEFAULT]
debug = False
use_stderr = True
auth_strategy =

[drivers]
transport = wsgi
message_store = redis
management_store = redis

[drivers:transport:wsgi]
bind = 127.0.0.1
port = {port}

[drivers:message_store:redis]
uri = {uri}

[drivers:management_store:redis]
uri = {uri}

[storage]
# without the notifier in the pipeline, subscriptions deliver nothing
message_pipeline = zaqar.notification.notifier
"""


def _probe(info):
    return managed.http_status(info["messaging_url"] + "/v2/ping", headers()) == 204


def up(timeout=START_TIMEOUT):
    """Start (or keep) Zaqar; return its endpoints entry.

    :raises RuntimeError: when it does not answer in ``timeout`` seconds.
    """
    python = venvs.ensure("zaqar")
    redis = backends.ensure("redis")
    previous = state.read_endpoints().get(KEY) or {}
    fingerprint = managed.fingerprint(redis["port"], managed.source_of(__file__),
                                      venvs.stamp("zaqar"))
    info = managed.running(SERVICE, NAMES, fingerprint, _probe)
    if info:
        return info
    port = previous.get("port") or processes.free_port()
    if processes.port_open(port):
        port = processes.free_port()
    conf = state.service_dir(SERVICE) / "zaqar.conf"
    conf.write_text(_config_text(port, redis["port"]))
    commands = {"server": [str(python.parent / "zaqar-server"), "--config-file", str(conf)]}
    info = {"messaging_url": f"http://127.0.0.1:{port}", "port": port,
            "project_id": project_id(), "headers": headers(), "config": str(conf),
            "redis_db": _redis_db()}
    progress.step(f"starting Zaqar on port {port} (Redis stores, notifications on)")
    return managed.start(SERVICE, KEY, commands, fingerprint, info, _probe, timeout, "Zaqar")


def down():
    """Stop Zaqar (by PID). Returns True if it was running."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
