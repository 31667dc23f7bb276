# SPDX-License-Identifier: Apache-2.0
"""What the lab created on the machine's shared backends, for ``down`` to remove.

The lab uses the machine's PostgreSQL, MariaDB, RabbitMQ and Redis when they
answer on their standard ports (:mod:`selfheal_lab.backends`). Whatever it
creates there (a database, a virtual host, a Redis database number it found
empty) is recorded in ``<lab>/created.json`` the moment it is created, and
:func:`drop_all`, run by ``selfheal-lab down``, removes it again. Private
backends need no record: their data lives in the lab folder.

An entry is ``{"kind", "name", "port"}`` plus what dropping it needs (the
interpreter whose driver created a database, the PostgreSQL user).
"""

import json

from selfheal_lab import progress
from selfheal_lab import state

POSTGRES_DATABASE = "postgres-database"
MARIADB_DATABASE = "mariadb-database"
RABBITMQ_VHOST = "rabbitmq-vhost"
REDIS_DATABASE = "redis-database"

#: each kind: what it is called, and the command that drops one by hand
_KINDS = {
    POSTGRES_DATABASE: ("PostgreSQL database", "psql -h 127.0.0.1 -p {port} -U {user} "
                        "-c 'DROP DATABASE IF EXISTS \"{name}\"'"),
    MARIADB_DATABASE: ("MariaDB database", "mysql -h 127.0.0.1 -P {port} -u root "
                       "-e 'DROP DATABASE IF EXISTS `{name}`'"),
    RABBITMQ_VHOST: ("RabbitMQ virtual host", "rabbitmqctl delete_vhost {name}"),
    REDIS_DATABASE: ("Redis database", "redis-cli -h 127.0.0.1 -p {port} -n {name} flushdb"),
}


def path():
    """The ledger file, ``created.json`` in the lab's state folder."""
    return state.lab_dir() / "created.json"


def entries():
    """The recorded entries, oldest first (``[]`` when none)."""
    try:
        return json.loads(path().read_text())
    except FileNotFoundError:
        return []


def record(kind, name, port, **details):
    """Record that the lab has just created ``name``, a ``kind`` (one of the
    constants above), on the shared backend at 127.0.0.1:``port``.

    :param details: JSON values that dropping it needs, e.g. ``python``.
    :returns: the entry; it replaces an earlier one of the same thing.
    """
    entry = {"kind": kind, "name": str(name), "port": int(port), **details}
    _write([e for e in entries() if not _same(e, entry)] + [entry])
    return entry


def recorded(kind, name, port):
    """True when the ledger holds ``name`` (a ``kind``) at ``port``."""
    wanted = {"kind": kind, "name": str(name), "port": int(port)}
    return any(_same(e, wanted) for e in entries())


def forget(entry):
    """Remove ``entry`` (what it names, whatever its details) from the ledger."""
    _write([e for e in entries() if not _same(e, entry)])


def describe(entry):
    """``"PostgreSQL database NAME on 127.0.0.1:PORT"`` and the like."""
    what = _KINDS.get(entry["kind"], (entry["kind"], None))[0]
    return f"{what} {entry['name']} on 127.0.0.1:{entry['port']}"


def by_hand(entry):
    """The shell command that drops ``entry`` by hand."""
    command = _KINDS.get(entry["kind"], (None, None))[1]
    return command.format(**{"user": "postgres", **entry}) if command else "(unknown kind)"


def drop_all(droppers):
    """Drop every recorded entry: forget those dropped, keep the others for
    the next call. Each is reported in one progress line, and one that could
    not be dropped with the command that drops it by hand.

    :param droppers: ``{kind: function(entry)}``; each function removes the
        thing the entry names, returns quietly when it is already gone, and
        raises (any exception, its message the reason) when it cannot.
    :returns: ``(dropped, kept)``, two lists of entries.
    """
    dropped, kept = [], []
    for entry in entries():
        dropper = droppers.get(entry["kind"])
        try:
            if dropper is None:
                raise LookupError(f"this lab cannot drop a {entry['kind']}")
            dropper(entry)
        except Exception as e:  # reported in one line, and the others still dropped
            reason = " ".join(str(e).split())[-300:] or type(e).__name__
            progress.step(f"could not drop the {describe(entry)}: {reason}; "
                          f"drop it by hand: {by_hand(entry)}")
            kept.append(entry)
            continue
        forget(entry)
        progress.step(f"dropped the {describe(entry)}")
        dropped.append(entry)
    return dropped, kept


def _same(a, b):
    return (a["kind"], a["name"], a["port"]) == (b["kind"], b["name"], b["port"])


def _write(items):
    tmp = path().with_suffix(".tmp")
    tmp.write_text(json.dumps(items, indent=2))
    tmp.replace(path())
