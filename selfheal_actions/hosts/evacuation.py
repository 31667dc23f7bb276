# SPDX-License-Identifier: Apache-2.0
"""The evacuate-and-verify action and its helper for per-instance triggers.

The planning is in :mod:`selfheal_actions.hosts.evacuation_plan` (pure decisions),
the carrying out in :mod:`selfheal_actions.hosts.evacuation_run`; this module
checks inputs and the host, claims it (:mod:`selfheal_actions.common.host_claim`) and
shapes the result.
"""

import time

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import host_claim
from selfheal_actions.common import inputs
from selfheal_actions.common import markers
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.hosts import evacuation_plan as plans
from selfheal_actions.hosts import fencing
from selfheal_actions.hosts import inventory
from selfheal_actions.hosts import power
from selfheal_actions.hosts.evacuation_run import EvacuationRun
from selfheal_actions.hosts.evacuation_run import RunOptions
from selfheal_actions.moves.windowed_run import summary_line
from selfheal_actions.moves.windowed_run import totals


class EvacuateAndVerifyAction(SelfhealAction):
    """Evacuate every instance of a fenced host and prove where each one landed.

    The host must be fenced (its nova-compute service forced down): with
    ``fence`` true the action fences it itself, as ``selfheal.fence_host``
    does and with the same refusals, after every input and the plan were
    checked; otherwise an unfenced host is refused and nothing is done. Each
    instance is verified: its evacuation migration reached ``done``, it is on
    another host, and it is in the power state it had before (evacuations are
    sent at microversion 2.94 at most, where Nova keeps the power state; one
    that still ends wrong is started or stopped). A failed evacuation is
    retried on another host up to ``max_attempts``. Rerunning it (or running
    two at once) never evacuates an instance twice: migrations already in
    flight are picked up.

    :param host: the failed host (string, required).
    :param instance_ids: only these instances of the host (list; empty: all).
    :param concurrency: evacuations in flight at once (1-200, default 25).
    :param max_attempts: attempts per instance (1-10, default 3).
    :param target_hosts: ordered reserved hosts to evacuate to; empty lets
        the scheduler choose.
    :param include_error_instances: also evacuate instances that were in
        ERROR before the failure (default false).
    :param exclude_metadata_key: instances whose metadata has this key set
        to a true value stay where they are (default ``selfheal_exclude``).
    :param exclude_flavors: flavor names or ids to leave alone.
    :param exclude_images: image ids to leave alone.
    :param force: evacuate even a host under planned maintenance.
    :param fence: fence the host first (force down, then disable with a
        ``selfheal:fenced`` marker) when it is not fenced yet (default false).
    :param fencing: with ``fence``, how the host is fenced: ``auto``
        (default: ``power`` when the fencing inventory has the host;
        ``no_fencing_entry`` when an inventory lacks it; ``nova_only`` with a
        warning when no inventory is configured), ``power`` (power it off
        through its BMC and confirm Off before forcing it down), ``nova_only``
        (force down only: unsafe with shared storage, the result warns), or
        ``workflow`` (the operator's fencing workflow ran: with
        ``host_powered_off``; the BMC, when the inventory has one, must
        report Off).
    :param host_known_dead: with ``fencing`` power or workflow: the caller
        knows the host is dead, so it is powered off (by its BMC or the
        fencing workflow) even while Nova still sees it up (otherwise such a
        host is refused: two signals before a power-off).
    :param power_attempts: power-off attempts (1-10, default 3).
    :param power_timeout: seconds per attempt for the BMC to report Off
        (1-600, default 30).
    :param plan_waits: a dry run waits for Nova to see the host down and
        refuses a host still up, like a real run (default false).
    :param reason: with ``fence``: written into the disabled reason.
    :param max_down_ratio: with ``fence``: refuse when more than this share
        (0-1) of the enabled compute services would be down (default 0.5).
    :param max_down_hosts: with ``fence``: refuse when more than this many
        hosts would be down (1-10000; null: no cap).
    :param host_powered_off: with ``fence``: the node is known to be off, so
        a service Nova still sees up may be fenced.
    :param wait_for_down: with ``fence``: seconds to wait for Nova to see the
        host down when an alarm came first (0-600, default 0: refuse at once).
    :param settle_seconds: with ``fence``: pause before checking the
        partition guard a second time (0-60, default 2).
    :param timeout: seconds the action may run (10-3600, default 600); it
        returns by then whatever the state.
    :param poll_interval: longest pause between two polls, seconds (default 2).
    :param dry_run: return the plan, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``microversion``, ``fencing_mode`` (what fencing
        was used), ``power`` (the power-off: bmc driver and address,
        power_state_before, power_state, attempts, fence_seconds, sent_at,
        confirmed_at; in a dry run what would be done; else null),
        ``warnings``, ``plan`` (``instances`` with their
        ``decision``, ``reason`` and ``outcome`` planned / skipped /
        already_evacuated, before anything changed; ``totals``),
        ``fencing`` (with ``fence``: what fencing did or would do, as
        ``selfheal.fence_host`` reports it; else null), ``instances`` (per
        instance: id, name, source, destination, migration_id,
        migration_status, attempts, seconds, outcome: evacuated /
        already_evacuated / skipped / failed / timed_out / planned, reason),
        ``totals``, ``seconds``, ``changes``, ``took_over_from`` (the dead run
        whose claim this one took over, when it did). Error reasons:
        ``invalid_input``, ``host_not_found``, ``host_not_fenced``,
        ``host_in_maintenance``, ``host_still_up``, ``service_state_unknown``
        and ``too_many_hosts_down`` (with ``fence``), ``host_busy`` (another
        execution still heals the host after ``timeout``), ``claim_lost``
        (another run took the host over: this one stopped),
        ``api_error`` (a Nova call kept failing; the error lists the changes
        made), ``internal_error``, ``no_fencing_entry``, ``bmc_unreachable``,
        ``bmc_auth_failed``, ``bmc_error``, ``power_off_not_confirmed``,
        ``secret_unavailable`` (power fencing: nothing forced down or
        evacuated),
        ``evacuation_incomplete`` (some instances failed or timed out; the
        details list them), and the client errors of fence_host.
    """

    action_name = "selfheal.evacuate_and_verify"

    def __init__(self, host, instance_ids=None, concurrency=25, max_attempts=3,
                 target_hosts=None, include_error_instances=False,
                 exclude_metadata_key="selfheal_exclude", exclude_flavors=None,
                 exclude_images=None, force=False, fence=False, reason="host failure",
                 max_down_ratio=0.5, max_down_hosts=None, host_powered_off=False,
                 wait_for_down=0, settle_seconds=2, timeout=600, poll_interval=2,
                 dry_run=False, microversion=None, fencing="auto", host_known_dead=False,
                 power_attempts=3, power_timeout=30, plan_waits=False):
        self.host = host
        self.instance_ids = instance_ids
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = target_hosts
        self.include_error_instances = include_error_instances
        self.exclude_metadata_key = exclude_metadata_key
        self.exclude_flavors = exclude_flavors
        self.exclude_images = exclude_images
        self.force = force
        self.fence = fence
        self.reason = reason
        self.max_down_ratio = max_down_ratio
        self.max_down_hosts = max_down_hosts
        self.host_powered_off = host_powered_off
        self.wait_for_down = wait_for_down
        self.settle_seconds = settle_seconds
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        self.microversion = microversion
        self.fencing = fencing
        self.host_known_dead = host_known_dead
        self.power_attempts = power_attempts
        self.power_timeout = power_timeout
        self.plan_waits = plan_waits

    def _validated(self):
        return {
            **fencing.fencing_inputs(self),
            "host": inputs.text("host", self.host),
            "instance_ids": inputs.text_list("instance_ids", self.instance_ids),
            "concurrency": inputs.number("concurrency", self.concurrency, 1, 200, integer=True),
            "max_attempts": inputs.number("max_attempts", self.max_attempts, 1, 10, integer=True),
            "target_hosts": inputs.text_list("target_hosts", self.target_hosts),
            "include_error": inputs.boolean("include_error_instances",
                                            self.include_error_instances),
            "exclude_key": inputs.text("exclude_metadata_key", self.exclude_metadata_key,
                                       required=False),
            "exclude_flavors": inputs.text_list("exclude_flavors", self.exclude_flavors),
            "exclude_images": inputs.text_list("exclude_images", self.exclude_images),
            "fence": inputs.boolean("fence", self.fence),
            "reason": inputs.text("reason", self.reason, required=False) or "host failure",
            "timeout": inputs.number("timeout", self.timeout, 10, 3600),
            "poll_interval": inputs.number("poll_interval", self.poll_interval, 0.1, 60),
            "dry_run": inputs.boolean("dry_run", self.dry_run),
            "microversion": inputs.microversion("microversion", self.microversion),
            "fencing": inputs.text("fencing", self.fencing, required=False) or "auto",
            "host_known_dead": inputs.boolean("host_known_dead", self.host_known_dead),
            "power": {"attempts": inputs.number("power_attempts", self.power_attempts, 1, 10,
                                                integer=True),
                      "timeout": inputs.number("power_timeout", self.power_timeout, 1, 600),
                      "poll_interval": 1.0},
            "plan_waits": inputs.boolean("plan_waits", self.plan_waits),
        }

    def execute(self, context):
        args = self._validated()
        host = args["host"]
        if host in args["target_hosts"]:
            raise ActionFailure("invalid_input", f"target_hosts names the failed host '{host}'")
        started = time.monotonic()
        api = compute.NovaApi(clients.nova(context, args["microversion"]))
        services = api.compute_services()
        service = compute.find_service(services, host)
        known = {s["host"] for s in services}
        unknown = [h for h in args["target_hosts"] if h not in known]
        if unknown:
            raise ActionFailure("invalid_input", f"target_hosts has unknown hosts {unknown}; "
                                f"known compute hosts: {sorted(known)}")
        report, mode, entry, warnings = {}, None, None, []
        if args["fence"]:
            mode, entry, warnings = power.resolve_mode(args["fencing"], host, context)
            # two signals before a power-off: Nova must see the host down, or
            # the caller must say it knows it is dead
            args["host_powered_off"] = args["host_powered_off"] or (
                mode in ("power", "workflow") and args["host_known_dead"])
            # wait for Nova to see it down, check, settle, check again
            services, service, steps, report = fencing.decide(
                api, host, args, args["dry_run"], plan_waits=args["plan_waits"])
        else:
            steps = self._fencing_steps(service, services, args)
        result = {"host": host, "microversion": api.microversion, "fencing": None,
                  "fencing_mode": mode, "power": None, "warnings": warnings}
        if args["dry_run"]:
            return self._plan_only(api, service, steps, args, context, result, started, report,
                                   entry)

        if args["instance_ids"]:
            # every input checked before the first write (the claim)
            self._plan(api, host, args, self._fenced_at(service))
        # One healer per host: Nova would accept a second, concurrent evacuation.
        with host_claim.claimed(api, host, clients.run_owner(context), args["timeout"],
                                execution=clients.execution_id(context)) as lock:
            power_changes = self._power_fence(mode, entry, host, args, result)
            self.changes_so_far = list(power_changes)
            # read again under the claim: a healer we waited for may have
            # fenced the host, and its marker dates its evacuations
            services = api.compute_services()
            service = compute.find_service(services, host)
            steps = self._fencing_steps(service, services, args)
            entries, earlier = self._plan(api, host, args, self._fenced_at(service))
            result["plan"] = self._plan_report(entries, earlier)
            candidates = [s["host"] for s in services if s["host"] != host
                          and s["state"] == "up" and s["status"] == "enabled"]
            remaining = args["timeout"] - (time.monotonic() - started)
            run = EvacuationRun(api, host, entries, RunOptions(
                args["concurrency"], args["max_attempts"], args["target_hosts"],
                max(remaining, 1), args["poll_interval"], candidates), on_cycle=lock.check)
            run.changes.extend(power_changes)
            self.changes_so_far = run.changes
            if args["fence"]:
                marker = fencing.fenced_marker(context, args["reason"],
                                               before=fencing.operator_reason(service))
                result["fencing"] = dict(fencing.carry_out(api, service, steps, marker),
                                         **report)
                # the run's change log starts with the fencing, so a refusal
                # in the middle of the run reports it too
                run.changes.extend(result["fencing"]["changes"])
            run.run()
            changes = run.changes
        instances = earlier + entries
        result.update(instances=instances, totals=totals(instances),
                      seconds=round(time.monotonic() - started, 2), changes=changes)
        if lock.waited_for:
            result["waited_for"] = lock.waited_for
        if lock.took_over_from:
            # the earlier run died (no heartbeat): this one carried on its work
            result["took_over_from"] = lock.took_over_from
        unrecovered = [e for e in instances if e["outcome"] in ("failed", "timed_out")]
        if unrecovered:
            details = {k: v for k, v in result.items() if k != "changes"}
            recovered = len(instances) - len(unrecovered)
            others = (f" The other {recovered} are verified where they landed." if recovered
                      else "")
            raise ActionFailure(
                "evacuation_incomplete",
                f"{len(unrecovered)} of {len(instances)} instances on '{host}' were not "
                "recovered: " + "; ".join(summary_line(e) for e in unrecovered[:10]) +
                (f"; and {len(unrecovered) - 10} more (see details)"
                 if len(unrecovered) > 10 else "") +
                f".{others} Fix the cause (capacity, target hosts) and run the workflow "
                "again: it resumes without evacuating anything twice.",
                changes=changes, **details)
        return result

    @staticmethod
    def _power_fence(mode, entry, host, args, result):
        """Power the host off and confirm it (``power``), or check the BMC
        reports Off after the operator's workflow (``workflow`` with a BMC
        known). Before anything is forced down: a failure here leaves Nova
        untouched. Once Off is confirmed, the host counts as powered off.

        :returns: the changes made (the power-off, when it switched).
        """
        if mode == "power":
            result["power"] = power.fence_off(entry, host, args["power"])
            args["host_powered_off"] = True
            if result["power"]["switched"]:
                return [change(f"power of {host}", "powered_off", **result["power"]["bmc"])]
        elif mode == "workflow" and entry:
            result["power"] = power.confirm_off(entry, host)
        return []

    @staticmethod
    def _fencing_steps(service, services, args):
        """What fencing the host takes ([] when fenced), or a refusal.

        :raises ActionFailure: ``host_in_maintenance``; with ``fence`` the
            refusals of :func:`fencing.fencing_steps`; without it
            ``host_not_fenced`` (in a real run).
        """
        if args["fence"]:  # fencing_steps refuses a host in maintenance too
            return fencing.fencing_steps(service, services, args["max_down_ratio"],
                                         args["host_powered_off"], args["force"],
                                         args["max_down_hosts"])
        host = service["host"]
        if markers.kind_of(service.get("disabled_reason")) == markers.MAINTENANCE and (
                not args["force"]):
            raise ActionFailure(
                "host_in_maintenance",
                f"host '{host}' is under planned maintenance; the maintenance flow moves its "
                "instances. Pass force=true only if it really failed.", host=host)
        if not service.get("forced_down") and not args["dry_run"]:
            raise ActionFailure(
                "host_not_fenced",
                f"host '{host}' is not fenced (its nova-compute service is not forced down), "
                "so its instances may still run there. Run selfheal.fence_host first, or pass "
                "fence=true (the selfheal.host_failure.evacuate_host workflow does).",
                host=host)
        return []

    @staticmethod
    def _fenced_at(service):
        marker = markers.parse(service.get("disabled_reason"))
        return marker["at"] if marker and marker["kind"] == markers.FENCED else None

    @staticmethod
    def _plan_report(entries, earlier):
        """The plan as it stood before anything changed (a copy: the run updates entries)."""
        planned = [dict(e, outcome=e.get("outcome") or (
            "skipped" if e["decision"] == "skip" else "planned")) for e in earlier + entries]
        return {"instances": planned, "totals": totals(planned)}

    def _plan(self, api, host, args, fenced_at):
        """Plan entries for the host's servers, and the ones moved earlier."""
        servers = api.servers_on_host(host)
        migrations = api.evacuations_from(host)
        options = plans.PlanOptions(args["exclude_key"], args["exclude_flavors"],
                                    args["exclude_images"], args["include_error"],
                                    args["instance_ids"])
        entries = plans.plan(host, servers, migrations, options, fenced_at)
        earlier = [self._earlier_entry(m, host) for m in plans.already_evacuated(
            migrations, servers, fenced_at, options.instance_ids)]
        missing = sorted(set(args["instance_ids"]) - {e["id"] for e in entries}
                         - {e["id"] for e in earlier})
        if missing:
            raise ActionFailure("invalid_input", f"instance_ids not on host '{host}': {missing}",
                                host=host)
        return entries, earlier

    def _plan_only(self, api, service, steps, args, context, result, started, report,
                   entry=None):
        host = service["host"]
        entries, earlier = self._plan(api, host, args, self._fenced_at(service))
        result["plan"] = self._plan_report(entries, earlier)
        changes = []
        if result["fencing_mode"] == "power":
            result["power"] = power.plan(entry, host)
            changes.append(change(f"power of {host}", "would_power_off",
                                  **result["power"]["bmc"]))
        elif result["fencing_mode"] == "workflow" and entry:
            result["power"] = {"bmc": inventory.public(entry),
                               "would": "check_off_after_fencing_workflow"}
        if args["fence"]:
            marker = fencing.fenced_marker(context, args["reason"],
                                           before=fencing.operator_reason(service))
            result["fencing"] = dict(fencing.carry_out(api, service, steps, marker,
                                                       dry_run=True), **report)
            changes += result["fencing"]["changes"]
        for entry in entries:
            entry["outcome"] = "skipped" if entry["decision"] == "skip" else "planned"
        instances = earlier + entries
        changes += [change(f"server {e['id']}", "would_evacuate")
                    for e in entries if e["outcome"] == "planned"]
        result.update(instances=instances, totals=totals(instances),
                      seconds=round(time.monotonic() - started, 2), changes=changes)
        if not service.get("forced_down") and not args["fence"]:
            result["note"] = (f"host '{host}' is not fenced yet: a real run refuses until "
                              "selfheal.fence_host has run (or with fence=true)")
        return result

    @staticmethod
    def _earlier_entry(migration, host):
        return {"id": migration["instance_uuid"], "name": None, "source": host,
                "destination": migration.get("dest_compute"), "decision": "none",
                "reason": "evacuated by an earlier run", "migration_id": migration["id"],
                "migration_status": migration.get("status"), "attempts": 0, "seconds": None,
                "outcome": "already_evacuated"}


class LocateInstancesAction(SelfhealAction):
    """Group instances by the compute host they are on, and say which hosts are healthy.

    For per-instance triggers: the workflow repairs the instances of a
    healthy host where they are (``selfheal.reboot_instances``) and sends
    only those of a dead host through the host flow (fence, evacuate).

    :param instance_ids: server UUIDs (list of strings, required).
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``hosts`` ({host: [ids]}), ``missing`` (ids Nova does not
        know), ``no_host`` (ids Nova knows on no host, e.g. never scheduled
        or shelved), ``host_list`` ([{host, instance_ids, healthy}] for
        with-items; ``healthy``: its nova-compute is up and not forced
        down). Error reasons: ``invalid_input``, ``instances_not_found``
        (none exist).
    """

    action_name = "selfheal.locate_instances"

    def __init__(self, instance_ids, microversion=None):
        self.instance_ids = instance_ids
        self.microversion = microversion

    def execute(self, context):
        ids = inputs.text_list("instance_ids", self.instance_ids)
        if not ids:
            raise ActionFailure("invalid_input", "input 'instance_ids' must list at least one "
                                "server UUID")
        version = inputs.microversion("microversion", self.microversion)
        api = compute.NovaApi(clients.nova(context, version))
        hosts, missing, no_host = {}, [], []
        for server_id in dict.fromkeys(ids):
            server = api.get_server(server_id)
            if server is None:
                missing.append(server_id)
            elif not server.get("OS-EXT-SRV-ATTR:host"):
                no_host.append(server_id)
            else:
                hosts.setdefault(server["OS-EXT-SRV-ATTR:host"], []).append(server_id)
        if not hosts and not no_host:
            raise ActionFailure("instances_not_found", f"none of {ids[:20]} exists in Nova",
                                missing=missing)
        services = {s["host"]: s for s in api.compute_services()} if hosts else {}
        host_list = [{"host": h, "instance_ids": v, "healthy": _healthy(services.get(h))}
                     for h, v in sorted(hosts.items())]
        return {"hosts": hosts, "missing": missing, "no_host": no_host, "changes": [],
                "host_list": host_list}


def _healthy(service):
    """Whether Nova sees the host's nova-compute up and nobody forced it down."""
    return bool(service) and service.get("state") == "up" and not service.get("forced_down")
