# SPDX-License-Identifier: Apache-2.0
"""What to move off a host before planned maintenance, and how: pure decisions.

No client here: :func:`plan` takes the servers Nova lists on the host and the
migrations Nova recorded from it, and returns one entry per server saying how
it will be moved (or why it cannot be). :mod:`selfheal_actions.maintenance.drain_run`
carries the entries out.

How each kind of instance is handled (also in the README):

* ``ACTIVE`` / ``PAUSED`` with no task: live-migrated; it keeps running (or
  paused) through the move.
* ``SHUTOFF`` with no task: live migration cannot move a stopped server, so
  it is cold-migrated and the migration confirmed, unless ``cold_migration``
  is ``never``. It stays stopped.
* a live or cold migration from the host still in flight (a rerun, or a
  concurrent run): adopted, never asked for twice; a cold migration waiting
  for confirmation (``VERIFY_RESIZE``) is confirmed.
* being deleted: skipped (it will be gone).
* anything Nova cannot move as it is (``ERROR``, ``SUSPENDED``, ``RESCUED``,
  shelved but not offloaded, a task in progress): left on the host with the
  reason, and the host is reported not emptied.
"""

from selfheal_actions.common.timeutil import parse_time
from selfheal_actions.moves import records

LIVE = "live"
COLD = "cold"

#: Nova's migration_type values
MIGRATION_TYPES = {LIVE: "live-migration", COLD: "migration"}

#: ``cold_migration`` input values
COLD_NEVER = "never"
COLD_STOPPED = "stopped"
COLD_FALLBACK = "fallback"
COLD_POLICIES = (COLD_NEVER, COLD_STOPPED, COLD_FALLBACK)

# migration phases, from the record's status
IN_FLIGHT = "in_flight"
AWAITING_CONFIRM = "awaiting_confirm"
DONE = "done"
FAILED = "failed"

_DONE = {LIVE: {"completed", "done"}, COLD: {"confirmed"}}
_FAILED = {"error", "failed", "cancelled", "reverted", "reverting"}

#: vm states a live migration keeps, and the ones a cold migration can move
LIVE_STATES = {"active", "paused"}
COLD_STATES = {"active", "stopped"}


def method_of(migration):
    """``live`` or ``cold`` for a migration record (None for evacuations, resizes)."""
    kind = migration.get("migration_type")
    for method, name in MIGRATION_TYPES.items():
        if kind == name:
            return method
    return None


def migration_phase(migration):
    status = (migration.get("status") or "").lower()
    method = method_of(migration)
    if status in _DONE.get(method, ()):
        return DONE
    if status in _FAILED:
        return FAILED
    if method == COLD and status == "finished":
        return AWAITING_CONFIRM
    return IN_FLIGHT


def moves(migrations):
    """Only the live and cold migrations (not evacuations, not resizes)."""
    return [m for m in migrations if method_of(m) is not None]


def _entry(server, host):
    return {
        "id": server["id"],
        "name": server.get("name"),
        "source": host,
        "vm_state_before": records.vm_state(server),
        "expected_state": None,
        "method": None,
        "decision": None,
        "reason": None,
    }


def decide(server, migration, cold_migration=COLD_STOPPED):
    """Return ``(decision, method, reason)`` for one server on the host.

    :param server: the server dict from Nova.
    :param migration: its newest live or cold migration from this host, or None.
    :param cold_migration: ``never``, ``stopped`` or ``fallback``.
    :returns: decision ``move``, ``adopt``, ``skip`` (will be gone) or
        ``leave`` (cannot be moved as it is); method ``live`` / ``cold`` / None.
    """
    vm, task = records.vm_state(server), records.task_state(server)
    if task == "deleting" or vm in ("deleted", "soft-delete", "soft_deleted"):
        return "skip", None, "being_deleted"
    if migration is not None and migration_phase(migration) in (IN_FLIGHT, AWAITING_CONFIRM):
        return "adopt", method_of(migration), "migration_in_flight"
    if task is not None:
        return "leave", None, f"busy with task {task}; run the drain again when it ends"
    if vm in LIVE_STATES:
        return "move", LIVE, None
    if vm == "stopped":
        if cold_migration == COLD_NEVER:
            return "leave", None, ("stopped: live migration cannot move it and "
                                   "cold_migration is never")
        return "move", COLD, None
    if vm == "error":
        return "leave", None, "in ERROR: repair or delete it, then drain again"
    if vm == "suspended":
        return "leave", None, "suspended: resume it (it is then live-migrated) or shelve it"
    if vm == "shelved":
        return "leave", None, "shelved: offload it (openstack server shelve --offload)"
    return "leave", None, f"in state {vm or 'unknown'}, which Nova cannot migrate"


def plan(host, servers, migrations, cold_migration=COLD_STOPPED):
    """One entry per server on ``host``, by name.

    :param host: the host to empty.
    :param servers: server dicts on the host.
    :param migrations: migration dicts from the host (any type).
    :param cold_migration: ``never``, ``stopped`` or ``fallback``.
    :returns: entries with ``decision``, ``method``, ``reason`` and
        ``expected_state`` (the vm state it must have after the move).
    """
    latest = records.latest_migrations(moves(migrations))
    entries = []
    for server in servers:
        entry = _entry(server, host)
        migration = latest.get(server["id"])
        entry["decision"], entry["method"], entry["reason"] = decide(
            server, migration, cold_migration)
        vm = entry["vm_state_before"]
        # A server resized for a cold migration goes back to what it was.
        entry["expected_state"] = vm if vm in LIVE_STATES | {"stopped"} else None
        if entry["decision"] == "adopt":
            entry["migration_id"] = migration["id"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["name"] or "", e["id"]))
    return entries


def already_moved(migrations, servers_on_host, since):
    """Migrations that finished moving a server off the host since ``since``.

    A rerun reports them instead of forgetting them.
    """
    if since is None:
        return []
    on_host = {s["id"] for s in servers_on_host}
    found = []
    for uuid, migration in records.latest_migrations(moves(migrations)).items():
        created = parse_time(migration.get("created_at"))
        if uuid in on_host or created is None or created < since.replace(microsecond=0):
            continue
        if migration_phase(migration) == DONE:
            found.append(migration)
    return found
