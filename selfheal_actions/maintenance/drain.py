# SPDX-License-Identifier: Apache-2.0
"""The drain action: empty a host before planned maintenance.

The decisions are in :mod:`selfheal_actions.maintenance.drain_plan`, the carrying out in
:mod:`selfheal_actions.maintenance.drain_run`; this module checks inputs and the host,
claims it (:mod:`selfheal_actions.common.host_claim`, the same claim the evacuation
takes, so a drain and an evacuation of one host never run together) and
shapes the result.
"""

import time

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import host_claim
from selfheal_actions.common import inputs
from selfheal_actions.common import markers
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.maintenance.drain_run import DrainOptions
from selfheal_actions.maintenance.drain_run import DrainRun
from selfheal_actions.moves.windowed_run import summary_line
from selfheal_actions.moves.windowed_run import totals

#: outcomes that leave an instance on the host
NOT_MOVED = ("left", "failed", "timed_out")


class DrainHostAction(SelfhealAction):
    """Move every instance off a host with live migration, and prove where each went.

    The host's nova-compute service must be up (live migration needs the
    source) and disabled (so nothing new lands on it; the maintenance
    workflow disables it with ``selfheal.disable_monitoring``). Running
    instances (and paused ones) are live-migrated, at most ``concurrency``
    at once; stopped ones are cold-migrated and confirmed (``cold_migration``
    decides). Each is verified: its migration ``completed`` (live) or
    ``confirmed`` (cold), it is on another host, in the state it had. A
    failed migration is retried on another host up to ``max_attempts``.
    When the host cannot be emptied (not enough capacity, instances Nova
    cannot move), what moved stays where it went and the error lists the
    rest. Rerunning it never moves an instance twice: migrations in flight
    are picked up.

    :param host: the host to empty (string, required).
    :param concurrency: migrations requested at once (1-100, default 4).
        Nova itself runs ``max_concurrent_live_migrations`` per source host
        (default 1) and queues the rest.
    :param max_attempts: attempts per instance and method (1-10, default 3).
    :param target_hosts: ordered hosts to move to; empty lets the scheduler
        choose (retries then go to other up and enabled hosts).
    :param cold_migration: ``stopped`` (default: cold-migrate the stopped
        instances, which live migration cannot move), ``fallback`` (also
        running ones whose live migration failed every attempt; they
        restart) or ``never``.
    :param timeout: seconds the action may run (10-7200, default 1800); it
        returns by then whatever the state.
    :param poll_interval: longest pause between two polls, seconds (default 2).
    :param dry_run: return the plan, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :param owner_instances: ids of instances whose owner said it moves them
        itself: they are not touched while they may still leave (see
        ``owner_window``), like those whose metadata says
        ``selfheal:maintenance=leave_to_owner``.
    :param owner_window: seconds (0-7200, default 600; less than
        ``timeout`` when the host has owners' instances) the drain waits
        for owners to move their instances (read from Nova); then those
        still on the host get the default policy (live migration).
    :param max_impacted_members: members of one anti-affinity (or
        soft-anti-affinity) server group disrupted at once, on any host
        (1-1000, default 1); Nova's server groups carry no metadata for it.
    :returns: ``host``, ``microversion``, ``emptied`` (no instance left on
        the host but those stopped there by their policy), ``instances``
        (per instance: id, name, policy, source, destination, method (live
        / cold / stop), migration_id, migration_status, attempts, seconds,
        outcome: migrated / cold_migrated / already_migrated / stopped /
        moved_by_owner / removed_by_owner / skipped / left / failed /
        timed_out / planned, reason), ``moved_by_owner`` (ids),
        ``stopped_on_host`` (ids, started again by finish_maintenance),
        ``owner_instances_not_on_host`` (ids of owner_instances not found on
        the host at the start), ``totals``, ``seconds``, ``changes``. Each
        instance is handled by its ``selfheal:maintenance`` metadata (see
        ``selfheal_actions.maintenance.drain_plan``). Error reasons:
        ``invalid_input``, ``invalid_instance_policy`` (a server's
        ``selfheal:maintenance`` value is not a policy: nothing was changed,
        the details list each such server), ``host_not_found``,
        ``host_not_disabled``,
        ``host_down`` (use the host failure flow), ``host_busy`` (another
        execution works on the host), ``host_not_emptied`` (the details list
        every instance and why it is still there), and the client errors of
        fence_host.
    """

    action_name = "selfheal.drain_host"

    def __init__(self, host, concurrency=4, max_attempts=3, target_hosts=None,
                 cold_migration=plans.COLD_STOPPED, timeout=1800, poll_interval=2,
                 dry_run=False, microversion=None, owner_instances=None, owner_window=600,
                 max_impacted_members=1):
        self.host = host
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = target_hosts
        self.cold_migration = cold_migration
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        self.microversion = microversion
        self.owner_instances = owner_instances
        self.owner_window = owner_window
        self.max_impacted_members = max_impacted_members

    def _validated(self):
        cold = inputs.text("cold_migration", self.cold_migration, required=False) \
            or plans.COLD_STOPPED
        if cold not in plans.COLD_POLICIES:
            raise InvalidInput(f"input 'cold_migration' must be one of "
                               f"{', '.join(plans.COLD_POLICIES)}, got {cold!r}")
        args = {
            "host": inputs.text("host", self.host),
            "concurrency": inputs.number("concurrency", self.concurrency, 1, 100, integer=True),
            "max_attempts": inputs.number("max_attempts", self.max_attempts, 1, 10, integer=True),
            "target_hosts": inputs.text_list("target_hosts", self.target_hosts),
            "cold_migration": cold,
            "timeout": inputs.number("timeout", self.timeout, 10, 7200),
            "poll_interval": inputs.number("poll_interval", self.poll_interval, 0.1, 60),
            "dry_run": inputs.boolean("dry_run", self.dry_run),
            "microversion": inputs.microversion("microversion", self.microversion),
            "owner_instances": inputs.text_list("owner_instances", self.owner_instances),
            "owner_window": inputs.number("owner_window", self.owner_window, 0, 7200),
            "max_impacted_members": inputs.number("max_impacted_members",
                                                  self.max_impacted_members, 1, 1000,
                                                  integer=True),
        }
        if args["host"] in args["target_hosts"]:
            raise InvalidInput(f"target_hosts names the host to empty '{args['host']}'")
        return args

    def execute(self, context):
        args = self._validated()
        host = args["host"]
        started = time.monotonic()
        api = compute.NovaApi(clients.nova(context, args["microversion"]))
        services = api.compute_services()
        service = compute.find_service(services, host)
        known = {s["host"] for s in services}
        unknown = [h for h in args["target_hosts"] if h not in known]
        if unknown:
            raise InvalidInput(f"target_hosts has unknown hosts {unknown}; known compute "
                               f"hosts: {sorted(known)}")
        if service["state"] != "up" or service.get("forced_down"):
            raise ActionFailure(
                "host_down",
                f"nova-compute on '{host}' is down, so its instances cannot be "
                "live-migrated. If the host failed, heal it with "
                "selfheal.host_failure.evacuate_host (force=true when it is under "
                "maintenance).", host=host)
        disabled = service["status"] == "disabled"
        if not disabled and not args["dry_run"]:
            raise ActionFailure(
                "host_not_disabled",
                f"nova-compute on '{host}' is enabled, so the scheduler could place new "
                "instances on it while it is drained. Disable it first "
                "(selfheal.disable_monitoring; the selfheal.maintenance.start_maintenance "
                "workflow does both).", host=host)
        marker = markers.parse(service.get("disabled_reason"))
        since = marker["at"] if marker and marker["kind"] == markers.MAINTENANCE else None
        result = {"host": host, "microversion": api.microversion}
        on_host = api.servers_on_host(host)
        _refuse_bad_policies(on_host, args["owner_instances"], host)
        _check_owner_window(on_host, args)
        if args["dry_run"]:
            entries, earlier = self._plan(api, host, args, since)
            for entry in entries:
                entry["outcome"] = _planned_outcome(entry["decision"])
            instances = earlier + entries
            self._report_owners(result, instances, entries, args["owner_instances"])
            result.update(instances=instances, totals=totals(instances),
                          emptied=not any(e["outcome"] not in ("already_migrated", "stopped")
                                          for e in instances),
                          seconds=round(time.monotonic() - started, 2),
                          changes=[change(f"server {e['id']}", f"would_{e['method']}_migrate")
                                   for e in entries if e["decision"] == "move"])
            if not disabled:
                result["note"] = (f"host '{host}' is not disabled yet: a real run refuses "
                                  "until its nova-compute service is disabled")
            return result

        with host_claim.claimed(api, host, clients.run_owner(context), args["timeout"],
                                execution=clients.execution_id(context)) as lock:
            entries, earlier = self._plan(api, host, args, since)
            candidates = [s["host"] for s in services if s["host"] != host
                          and s["state"] == "up" and s["status"] == "enabled"]
            remaining = args["timeout"] - (time.monotonic() - started)
            run = DrainRun(api, host, entries, DrainOptions(
                args["concurrency"], args["max_attempts"], args["target_hosts"],
                max(remaining, 1), args["poll_interval"], candidates, args["cold_migration"],
                args["owner_window"],
                plans.group_limits(api.server_groups(), args["max_impacted_members"])),
                on_cycle=lock.check)
            self.changes_so_far = run.changes
            run.run()
        instances = earlier + entries
        for entry in instances:
            entry.pop("phase", None)
        not_moved = [e for e in instances if e["outcome"] in NOT_MOVED]
        self._report_owners(result, instances, entries, args["owner_instances"])
        result.update(instances=instances, totals=totals(instances), emptied=not not_moved,
                      seconds=round(time.monotonic() - started, 2), changes=run.changes)
        if lock.waited_for:
            result["waited_for"] = lock.waited_for
        if not_moved:
            moved = sum(1 for e in instances if e["outcome"] in (
                "migrated", "cold_migrated", "already_migrated"))
            details = {k: v for k, v in result.items() if k != "changes"}
            raise ActionFailure(
                "host_not_emptied",
                f"{len(not_moved)} of {len(instances)} instances are still on '{host}': "
                + "; ".join(_line(e) for e in not_moved) +
                f". The {moved} moved ones stay where they went. Free capacity (or choose "
                "other target_hosts) and fix the instances named, then run the drain "
                "again: it resumes without moving anything twice.",
                changes=run.changes, **details)
        return result

    @staticmethod
    def _report_owners(result, instances, entries, owners):
        on_host = {e["id"] for e in entries}
        result["moved_by_owner"] = [e["id"] for e in instances if e.get("outcome") in (
            "moved_by_owner", "removed_by_owner")]
        result["stopped_on_host"] = [e["id"] for e in instances if e.get("outcome") == "stopped"]
        result["owner_instances_not_on_host"] = [
            i for i in owners if i not in on_host]

    def _plan(self, api, host, args, since):
        """Plan entries for the host's servers, and the ones moved earlier."""
        servers = api.servers_on_host(host)
        migrations = api.migrations_from(host)
        entries = plans.plan(host, servers, migrations, args["cold_migration"],
                             args["owner_instances"])
        earlier = [_earlier_entry(m, host) for m in plans.already_moved(
            migrations, servers, since)]
        return entries, earlier


def _planned_outcome(decision):
    return {"move": "planned", "adopt": "planned", "stop": "planned", "owner": "planned",
            "stay": "stopped", "skip": "skipped"}.get(decision, "left")


def _refuse_bad_policies(servers, owner_instances, host):
    """Refuse the host, before anything changes, when a server's policy
    metadata is not a policy (a typo must not become a move its owner did
    not ask for)."""
    bad = plans.bad_policies(servers, owner_instances)
    if bad:
        raise ActionFailure(
            "invalid_instance_policy",
            f"{len(bad)} instance(s) on '{host}' have a {plans.POLICY_KEY} metadata value "
            "that is not a policy: " + "; ".join(f"{b['name']} ({b['id']}): {b['reason']}"
                                                 for b in bad)
            + ". Nothing was changed. Fix the metadata (openstack server set --property "
            f"{plans.POLICY_KEY}=live_migrate <server>) or remove it, then run again.",
            host=host, instances=bad)


def _check_owner_window(servers, args):
    """Owners' instances on the host need a window shorter than the drain's
    timeout (time is left to move what the owners did not)."""
    owners = [s for s in servers
              if plans.policy_of(s, args["owner_instances"])[0] == plans.LEAVE_TO_OWNER]
    if owners and args["owner_window"] >= args["timeout"]:
        raise InvalidInput(f"input 'owner_window' ({args['owner_window']:g} s) must be less "
                           f"than 'timeout' ({args['timeout']:g} s) when instances are left to "
                           f"their owners ({len(owners)} on the host): the drain must have "
                           "time left to move what the owners did not")


def _line(entry):
    if entry["outcome"] == "left":
        return f"{entry['name']} ({entry['id']}): {entry['reason']}"
    return summary_line(entry)


def _earlier_entry(migration, host):
    return {"id": migration["instance_uuid"], "name": None, "source": host,
            "destination": migration.get("dest_compute"),
            "method": plans.method_of(migration), "decision": "none",
            "reason": "moved by an earlier run", "migration_id": migration["id"],
            "migration_status": migration.get("status"), "attempts": 0, "seconds": None,
            "outcome": "already_migrated"}
