# SPDX-License-Identifier: Apache-2.0
"""The lab's Zaqar 23: one ``zaqar-server`` with Redis stores (stdlib only).

No Keystone (``auth_strategy`` empty): every request carries a ``Client-ID``
(a UUID) and an ``X-Project-ID`` header. Redis holds both the messages and
the management data (queues, subscriptions), in a database number of its
own, and the message pipeline includes Zaqar's notifier, without which
subscriptions deliver nothing. Redis comes from :mod:`selfheal_lab.backends`;
on the machine's Redis, a database number found empty is recorded in
:mod:`selfheal_lab.ledger`, and ``selfheal-lab down`` empties it again.

``up()`` records in ``endpoints.json`` (key ``zaqar``)::

    {"messaging_url": "http://127.0.0.1:P", "project_id": "...", ...}

Talk to it with :mod:`selfheal_lab.zaqar_client`.

``up(with_keystone=True)`` (the authenticated lab) adds a second server on
the same stores with ``auth_strategy = keystone``: tokens validated by
keystonemiddleware as the ``zaqar`` service user, queues per Keystone
project, and ``trust+http(s)`` subscriptions, for which Zaqar creates a trust
from the subscriber to the ``zaqar`` user (``[trustee]``) and posts with a
token of that trust. It is recorded as ``keystone_url`` and registered in
the catalog as ``messaging``; its configuration (0600) holds the password.
"""

import socket
import uuid

from selfheal_lab import backends
from selfheal_lab import ledger
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import keystone
from selfheal_lab.services import managed

SERVICE = "zaqar"
KEY = "zaqar"
NAMES = ("server",)
KEYSTONE_NAMES = ("server", "keystone")
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


def _config_text(port, redis_port, keystone_url=None):
    uri = f"redis://127.0.0.1:{redis_port}?dbid={_redis_db()}"
    return f"""\
[DEFAULT]
debug = False
use_stderr = True
auth_strategy = {"keystone" if keystone_url else ""}

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
""" + (_keystone_sections() if keystone_url else "")


def _keystone_sections():
    # [trustee]: for trust+http subscriptions Zaqar posts with a token of a
    # trust to this user
    return (keystone.authtoken_section("zaqar") + "\n[trustee]\n"
            + keystone.auth_options("zaqar", project=None))


def _probe(info):
    return managed.http_status(info["messaging_url"] + "/v2/ping", headers()) == 204


def _keystone_probe(info):
    # without a token the authenticated server answers 401 once it listens
    return _probe(info) and managed.http_status(info["keystone_url"] + "/v2/ping") == 401


def up(timeout=START_TIMEOUT, with_keystone=False):
    """Start (or keep) Zaqar; return its endpoints entry.

    :param with_keystone: also the server behind Keystone (needs the lab's
        Keystone). A running Zaqar that has it is kept without it too.
    :raises RuntimeError: when it does not answer in ``timeout`` seconds.
    """
    python = venvs.ensure("zaqar")
    redis = backends.ensure("redis")
    keystone_url = keystone.up()["url"] if with_keystone else None
    info = None
    if with_keystone:
        info = _running(redis, keystone_url)
    else:  # a running Zaqar with the Keystone server does as well
        info = _running(redis, None) or _running(redis, keystone.url())
    if info is None:
        info = _start(python, redis, keystone_url, timeout)
    if with_keystone:
        keystone.register_endpoint("messaging", "zaqar", info["keystone_url"])
    return info


def _fingerprint(redis, keystone_url):
    return managed.fingerprint(redis["port"], managed.source_of(__file__),
                               venvs.stamp("zaqar"), keystone_url)


def _running(redis, keystone_url):
    if keystone_url:
        return managed.running(SERVICE, KEYSTONE_NAMES, _fingerprint(redis, keystone_url),
                               _keystone_probe)
    return managed.running(SERVICE, NAMES, _fingerprint(redis, None), _probe)


def _start(python, redis, keystone_url, timeout):
    if not redis["private"]:
        _claim_redis_db(redis["port"])
    previous = state.read_endpoints().get(KEY) or {}
    managed.stop(SERVICE, KEY, KEYSTONE_NAMES)  # keep the ports they had
    sdir = state.service_dir(SERVICE)
    ports = [previous.get(k) or processes.free_port() for k in ("port", "keystone_port")]
    ports = [processes.free_port() if processes.port_open(p) else p for p in ports]
    conf = sdir / "zaqar.conf"
    conf.write_text(_config_text(ports[0], redis["port"]))
    commands = {"server": [str(python.parent / "zaqar-server"), "--config-file", str(conf)]}
    info = {"messaging_url": f"http://127.0.0.1:{ports[0]}", "port": ports[0],
            "project_id": project_id(), "headers": headers(), "config": str(conf),
            "redis_db": _redis_db()}
    probe = _probe
    if keystone_url:
        keystone_conf = sdir / "zaqar-keystone.conf"
        state.write_private(keystone_conf, _config_text(ports[1], redis["port"], keystone_url))
        commands["keystone"] = [str(python.parent / "zaqar-server"), "--config-file",
                                str(keystone_conf)]
        info.update(keystone_url=f"http://127.0.0.1:{ports[1]}", keystone_port=ports[1])
        probe = _keystone_probe
    progress.step(f"starting Zaqar on port {ports[0]} (Redis stores, notifications on)"
                  + (f", and behind Keystone on port {ports[1]}" if keystone_url else ""))
    return managed.start(SERVICE, KEY, commands, _fingerprint(redis, keystone_url), info, probe,
                         timeout, "Zaqar")


def _claim_redis_db(port):
    """Record this lab's Redis database number on the machine's Redis (at
    ``port``) in the ledger when it is empty: Zaqar is about to fill it, and
    ``down`` empties it again (:func:`drop_redis_db`). One holding keys
    already (someone else's) is not recorded.

    :returns: True when the database is (now) recorded.
    """
    db = _redis_db()
    if ledger.recorded(ledger.REDIS_DATABASE, db, port):
        return True
    if _redis(port, db, "DBSIZE") != 0:
        return False
    ledger.record(ledger.REDIS_DATABASE, db, port)
    return True


def drop_redis_db(entry):
    """Empty (``FLUSHDB``) the Redis database number a ledger entry names;
    an empty one is fine. Raises OSError or RuntimeError when Redis fails."""
    _redis(entry["port"], int(entry["name"]), "FLUSHDB")


def _redis(port, db, command):
    """Send ``command`` (one word: DBSIZE, FLUSHDB) to database ``db`` of the
    Redis on 127.0.0.1:``port``; return its reply: an int or a status str."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(f"SELECT {int(db)}\r\n{command}\r\n".encode())
        replies = conn.makefile("rb")
        for _ in range(2):  # SELECT's reply, then the command's
            line = replies.readline().decode(errors="replace").rstrip("\r\n")
            if not line or line[0] == "-":
                raise RuntimeError(f"Redis on port {port}: {line[1:] or 'no reply'}")
    return int(line[1:]) if line[0] == ":" else line[1:]


def down():
    """Stop Zaqar (by PID). Returns True if it was running."""
    return managed.stop(SERVICE, KEY, KEYSTONE_NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
