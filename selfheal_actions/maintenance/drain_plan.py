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

What happens to one instance is its owner's choice, in its server metadata
under ``selfheal:maintenance`` (:data:`POLICY_KEY`):

* ``live_migrate`` (also when the key is absent): as above.
* ``cold_migrate``: cold-migrated (a running one restarts on the new host)
  and the migration confirmed; a paused one is left (Nova cold-migrates
  only ACTIVE and SHUTOFF servers).
* ``stop_start``: stopped on the host before its maintenance and started
  again, on the same host, by ``finish_maintenance``. The drain writes
  ``selfheal:stopped_for_maintenance = <host>`` (:data:`STOPPED_KEY`) in its
  metadata before stopping it; only instances carrying that mark are
  started again (one stopped by its owner stays stopped).
* ``leave_to_owner``: not touched while its owner may move it (up to
  ``owner_window`` seconds; the drain checks Nova); still on the host after
  that, it gets the default (``live_migrate``). Instances named in the
  drain's ``owner_instances`` input (the owner replied that it will move
  them) are handled the same way whatever their metadata says.

Any other value is an error for that instance, and the drain refuses the
whole host before anything moves (:func:`bad_policies`): a typo must not
silently turn into a live migration the owner did not want.
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

#: the server metadata key an owner sets, and its values
POLICY_KEY = "selfheal:maintenance"
LIVE_MIGRATE = "live_migrate"
COLD_MIGRATE = "cold_migrate"
STOP_START = "stop_start"
LEAVE_TO_OWNER = "leave_to_owner"
POLICIES = (LIVE_MIGRATE, COLD_MIGRATE, STOP_START, LEAVE_TO_OWNER)
DEFAULT_POLICY = LIVE_MIGRATE
#: the mark the drain leaves on a server it stopped (value: the host)
STOPPED_KEY = "selfheal:stopped_for_maintenance"
#: the method of a stop_start entry
STOP = "stop"

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


def policy_of(server, owner_instances=()):
    """Return ``(policy, error)`` for one server: its maintenance policy, or
    None and why its metadata value is not one.

    :param server: the server dict from Nova (``metadata`` read).
    :param owner_instances: ids whose owner said it moves them itself.
    """
    if server["id"] in owner_instances:
        return LEAVE_TO_OWNER, None
    value = (server.get("metadata") or {}).get(POLICY_KEY)
    if value is None:
        return DEFAULT_POLICY, None
    if value not in POLICIES:
        return None, (f"metadata {POLICY_KEY}={value!r} is not one of "
                      f"{', '.join(POLICIES)}")
    return value, None


def bad_policies(servers, owner_instances=()):
    """The servers whose policy metadata is not valid: ``[{id, name, value,
    reason}]`` (empty when every one is)."""
    found = []
    for server in servers:
        policy, error = policy_of(server, owner_instances)
        if policy is None:
            found.append({"id": server["id"], "name": server.get("name"),
                          "value": (server.get("metadata") or {}).get(POLICY_KEY),
                          "reason": error})
    return found


def stopped_by_us(server, host):
    """True when the drain stopped ``server`` for the maintenance of ``host``."""
    return (server.get("metadata") or {}).get(STOPPED_KEY) == host


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


def decide(server, migration, cold_migration=COLD_STOPPED, policy=DEFAULT_POLICY,
           host=None):
    """Return ``(decision, method, reason)`` for one server on the host.

    :param server: the server dict from Nova.
    :param migration: its newest live or cold migration from this host, or None.
    :param cold_migration: ``never``, ``stopped`` or ``fallback``.
    :param policy: the server's maintenance policy (:func:`policy_of`).
    :param host: the host being emptied (to recognise our stop mark).
    :returns: decision ``move``, ``adopt``, ``stop`` (stop it on the host),
        ``stay`` (stopped on the host already), ``owner`` (wait for its owner),
        ``skip`` (will be gone) or ``leave`` (cannot be handled as it is);
        method ``live`` / ``cold`` / ``stop`` / None.
    """
    vm, task = records.vm_state(server), records.task_state(server)
    if task == "deleting" or vm in ("deleted", "soft-delete", "soft_deleted"):
        return "skip", None, "being_deleted"
    if migration is not None and migration_phase(migration) in (IN_FLIGHT, AWAITING_CONFIRM):
        return "adopt", method_of(migration), "migration_in_flight"
    if policy == LEAVE_TO_OWNER:
        return "owner", None, "left_to_owner"
    if task is not None:
        return "leave", None, f"busy with task {task}; run the drain again when it ends"
    if policy == STOP_START:
        return _decide_stop(server, vm, host)
    if policy == COLD_MIGRATE:
        if vm in COLD_STATES:
            return "move", COLD, None
        return "leave", None, (f"in state {vm or 'unknown'}: {POLICY_KEY}={COLD_MIGRATE} "
                               "needs ACTIVE or SHUTOFF")
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


def _decide_stop(server, vm, host):
    if vm == "stopped":
        if stopped_by_us(server, host):
            return "stay", STOP, "stopped_for_maintenance"
        return "stay", STOP, "stopped by its owner: stays stopped on the host"
    if vm == "active":
        return "stop", STOP, None
    return "leave", None, (f"in state {vm or 'unknown'}: {POLICY_KEY}={STOP_START} needs "
                           "ACTIVE (Nova stops only running servers)")


def plan(host, servers, migrations, cold_migration=COLD_STOPPED, owner_instances=()):
    """One entry per server on ``host``, by name.

    :param host: the host to empty.
    :param servers: server dicts on the host (their policies valid:
        :func:`bad_policies` is empty).
    :param migrations: migration dicts from the host (any type).
    :param cold_migration: ``never``, ``stopped`` or ``fallback``.
    :param owner_instances: ids whose owner said it moves them itself.
    :returns: entries with ``policy``, ``decision``, ``method``, ``reason``
        and ``expected_state`` (the vm state it must have after the move).
    """
    latest = records.latest_migrations(moves(migrations))
    entries = []
    for server in servers:
        entry = _entry(server, host)
        migration = latest.get(server["id"])
        policy, _ = policy_of(server, owner_instances)
        entry["policy"] = policy or DEFAULT_POLICY
        entry["decision"], entry["method"], entry["reason"] = decide(
            server, migration, cold_migration, entry["policy"], host)
        vm = entry["vm_state_before"]
        # A server resized for a cold migration goes back to what it was.
        entry["expected_state"] = vm if vm in LIVE_STATES | {"stopped"} else None
        if entry["decision"] == "stop":
            entry["expected_state"] = "stopped"
        if entry["decision"] == "adopt":
            entry["migration_id"] = migration["id"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["name"] or "", e["id"]))
    return entries


#: server group policies whose members must not all be disrupted at once
SPREAD_POLICIES = ("anti-affinity", "soft-anti-affinity")


def group_limits(groups, max_impacted_members):
    """Which servers belong to a group whose disruption is limited.

    Nova's server groups carry no metadata, so the limit is the drain's
    ``max_impacted_members`` input, applied to anti-affinity and
    soft-anti-affinity groups (their members are spread so that the
    application survives one host: disrupting several at once would defeat
    that); affinity groups are not limited.

    :param groups: server group dicts from Nova (``id``, ``name``,
        ``policy`` (2.64+) or ``policies``, ``members``).
    :param max_impacted_members: members of one group disrupted at once.
    :returns: ``{server id: {"id", "name", "policy", "limit", "members"}}``.
    """
    found = {}
    for group in groups:
        policy = group.get("policy") or next(iter(group.get("policies") or []), None)
        if policy not in SPREAD_POLICIES:
            continue
        info = {"id": group["id"], "name": group.get("name"), "policy": policy,
                "limit": max_impacted_members, "members": list(group.get("members") or [])}
        for member in info["members"]:
            found[member] = info
    return found


def disrupted(server, host=None):
    """True while ``server`` is disrupted by a maintenance: being moved
    (a task in progress, or a cold migration awaiting confirmation) or
    stopped by a drain (:data:`STOPPED_KEY`)."""
    if records.task_state(server) is not None or records.vm_state(server) == "resized":
        return True
    return (records.vm_state(server) == "stopped"
            and bool((server.get("metadata") or {}).get(STOPPED_KEY)))


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
