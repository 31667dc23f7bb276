# SPDX-License-Identifier: Apache-2.0
"""What to evacuate from a failed host, and how: pure decisions on plain data.

No client here: :func:`plan` takes the servers Nova lists on the host and the
evacuation migrations Nova recorded from it, and returns one entry per server
saying what will happen to it and why. The runner in
:mod:`selfheal_actions.hosts.evacuation` carries the entries out.

How each kind of instance is handled (also in the README):

* ``excluded``: metadata key ``exclude_metadata_key`` set to a true value, or
  a flavor / image in the exclude lists. Left where it is.
* ``ERROR`` before the failure: skipped (``error_before_failure``) unless
  ``include_error_instances``; an instance in ERROR because one of our own
  evacuations of it failed is always retried.
* ``ACTIVE`` / ``SHUTOFF`` with no task: evacuated, and brought back to the
  power state it had (sent at 2.94, where Nova keeps it; else we fix it).
* ``PAUSED`` / ``SUSPENDED`` / ``RESCUED`` / ``RESIZED``, or a task that can
  never finish on a dead host (e.g. ``powering-off``): reset to ERROR, which
  Nova accepts for evacuation, then evacuated and brought back running (their
  memory was on the failed host).
* a ``rebuilding`` task or an evacuation migration still in flight: adopted.
  Someone (an earlier or concurrent run) already asked Nova to evacuate it:
  we wait for that migration instead of asking again.
* being deleted, or shelved: skipped.
* locked: handled like any other; evacuation is an administrator's action and
  Nova allows it on a locked server, which stays locked.

Instances with metadata ``HA_Enabled`` true go first.
"""

from selfheal_actions.common.timeutil import parse_time
from selfheal_actions.moves.records import DONE
from selfheal_actions.moves.records import IN_FLIGHT
from selfheal_actions.moves.records import RESET_STATES
from selfheal_actions.moves.records import RUNNING
from selfheal_actions.moves.records import SHUTOFF
from selfheal_actions.moves.records import flavor_names
from selfheal_actions.moves.records import image_id
from selfheal_actions.moves.records import is_true
from selfheal_actions.moves.records import latest_migrations
from selfheal_actions.moves.records import migration_phase
from selfheal_actions.moves.records import power_of
from selfheal_actions.moves.records import task_state
from selfheal_actions.moves.records import vm_state


def _entry(server, host):
    metadata = server.get("metadata") or {}
    return {
        "id": server["id"],
        "name": server.get("name"),
        "source": host,
        "vm_state_before": vm_state(server),
        "task_state_before": task_state(server),
        "ha_enabled": is_true(metadata.get("HA_Enabled", "")),
        "locked": bool(server.get("locked")),
        "expected_power": None,
        "decision": None,
        "reason": None,
    }


def decide(server, migration, options, evacuated_by_us=False):
    """Return ``(decision, reason, expected_power)`` for one server.

    :param server: the server dict from Nova.
    :param migration: its newest evacuation migration from this host, or None.
    :param options: :class:`PlanOptions`.
    :param evacuated_by_us: an evacuation of it from this host was already
        attempted since the host was fenced.
    """
    metadata = server.get("metadata") or {}
    vm, task = vm_state(server), task_state(server)
    if options.exclude_metadata_key and is_true(metadata.get(options.exclude_metadata_key, "")):
        return "skip", "excluded_by_metadata", None
    if flavor_names(server) & set(options.exclude_flavors):
        return "skip", "excluded_flavor", None
    if image_id(server) and image_id(server) in set(options.exclude_images):
        return "skip", "excluded_image", None
    if migration is not None and migration_phase(migration) == IN_FLIGHT:
        # the vm_state stays what it was while Nova rebuilds: that power
        # state is the one to prove once it lands
        return "adopt", "evacuation_in_flight", power_of(server)
    if task == "deleting" or vm in ("deleted", "soft-delete", "soft_deleted"):
        return "skip", "being_deleted", None
    if vm in ("shelved", "shelved_offloaded"):
        return "skip", "shelved", None
    if task == "rebuilding":
        return "adopt", "rebuild_in_progress", power_of(server)
    if vm == "error":
        if options.include_error_instances or evacuated_by_us:
            return "evacuate", None, RUNNING
        return "skip", "error_before_failure", None
    if vm in ("active", "stopped") and task is None:
        return "evacuate", None, power_of(server)
    if vm in RESET_STATES or vm in ("active", "stopped"):
        # Paused, suspended... or a task the dead host will never finish.
        reason = f"was {vm}" if vm in RESET_STATES else f"stuck in task {task}"
        return "reset_and_evacuate", reason, SHUTOFF if vm == "stopped" else RUNNING
    return "skip", f"unhandled_state_{vm or 'unknown'}", None


class PlanOptions:
    """The inputs that shape a plan (already validated)."""

    def __init__(self, exclude_metadata_key="selfheal_exclude", exclude_flavors=(),
                 exclude_images=(), include_error_instances=False, instance_ids=None):
        self.exclude_metadata_key = exclude_metadata_key
        self.exclude_flavors = list(exclude_flavors)
        self.exclude_images = list(exclude_images)
        self.include_error_instances = include_error_instances
        self.instance_ids = set(instance_ids) if instance_ids else None


def plan(host, servers, migrations, options, fenced_at=None):
    """One entry per server on ``host``, HA_Enabled first, then by name.

    :param host: the failed host.
    :param servers: server dicts on the host.
    :param migrations: evacuation migration dicts from the host.
    :param options: :class:`PlanOptions`.
    :param fenced_at: when the host was fenced (datetime), to tell our own
        failed attempts from instances that were in ERROR before.
    :returns: list of entry dicts with ``decision`` (evacuate, adopt,
        reset_and_evacuate, skip), ``reason`` and ``expected_power``.
    """
    latest = latest_migrations(migrations)
    entries = []
    for server in servers:
        if options.instance_ids is not None and server["id"] not in options.instance_ids:
            continue
        migration = latest.get(server["id"])
        ours = migration is not None and fenced_at is not None and _created_after(
            migration, fenced_at)
        entry = _entry(server, host)
        entry["decision"], entry["reason"], entry["expected_power"] = decide(
            server, migration, options, evacuated_by_us=ours)
        if entry["decision"] == "adopt" and migration is not None:
            entry["migration_id"] = migration["id"]
        entries.append(entry)
    entries.sort(key=lambda e: (not e["ha_enabled"], e["name"] or "", e["id"]))
    return entries


def already_evacuated(migrations, servers_on_host, since, instance_ids=None):
    """Instances that a finished evacuation moved away from the host since ``since``.

    A rerun reports them instead of forgetting them.
    """
    if since is None:
        return []
    on_host = {s["id"] for s in servers_on_host}
    found = []
    for uuid, migration in latest_migrations(migrations).items():
        if uuid in on_host or (instance_ids and uuid not in instance_ids):
            continue
        if migration_phase(migration) == DONE and _created_after(migration, since):
            found.append(migration)
    return found


def _created_after(migration, moment):
    created = parse_time(migration.get("created_at"))
    return created is not None and created >= moment.replace(microsecond=0)
