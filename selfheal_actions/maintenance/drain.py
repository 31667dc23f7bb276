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
    :returns: ``host``, ``microversion``, ``emptied`` (no instance left on
        the host), ``instances`` (per instance: id, name, source,
        destination, method (live / cold), migration_id, migration_status,
        attempts, seconds, outcome: migrated / cold_migrated /
        already_migrated / skipped / left / failed / timed_out / planned,
        reason), ``totals``, ``seconds``, ``changes``. Error reasons:
        ``invalid_input``, ``host_not_found``, ``host_not_disabled``,
        ``host_down`` (use the host failure flow), ``host_busy`` (another
        execution works on the host), ``host_not_emptied`` (the details list
        every instance and why it is still there), and the client errors of
        fence_host.
    """

    action_name = "selfheal.drain_host"

    def __init__(self, host, concurrency=4, max_attempts=3, target_hosts=None,
                 cold_migration=plans.COLD_STOPPED, timeout=1800, poll_interval=2,
                 dry_run=False, microversion=None):
        self.host = host
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = target_hosts
        self.cold_migration = cold_migration
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        self.microversion = microversion

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
        if args["dry_run"]:
            entries, earlier = self._plan(api, host, args, since)
            for entry in entries:
                entry["outcome"] = "planned" if entry["decision"] in ("move", "adopt") \
                    else ("skipped" if entry["decision"] == "skip" else "left")
            instances = earlier + entries
            result.update(instances=instances, totals=totals(instances),
                          emptied=not any(e["outcome"] != "already_migrated"
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
                max(remaining, 1), args["poll_interval"], candidates, args["cold_migration"]),
                on_cycle=lock.check)
            self.changes_so_far = run.changes
            run.run()
        instances = earlier + entries
        for entry in instances:
            entry.pop("phase", None)
        not_moved = [e for e in instances if e["outcome"] in NOT_MOVED]
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

    def _plan(self, api, host, args, since):
        """Plan entries for the host's servers, and the ones moved earlier."""
        servers = api.servers_on_host(host)
        migrations = api.migrations_from(host)
        entries = plans.plan(host, servers, migrations, args["cold_migration"])
        earlier = [_earlier_entry(m, host) for m in plans.already_moved(
            migrations, servers, since)]
        return entries, earlier


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
