# SPDX-License-Identifier: Apache-2.0
"""Fence a failed compute host, and put it back after repair.

Fencing means Nova will never schedule to the host again and accepts
evacuations from it: the nova-compute service is **forced down first, then
disabled** (disabling a service Nova still counts as up makes the API call the
dead host over RPC and hang). The disabled reason carries a marker saying who
fenced the host and when (:mod:`selfheal_actions.common.markers`).
"""

import time

from novaclient import exceptions as nova_exc

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common import markers
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import raise_if_forbidden
from selfheal_actions.common.results import unexpected

#: seconds between two reads of the services while waiting for Nova to see
#: a host down (Nova's report_interval is 10 s, service_down_time 60 s)
DOWN_POLL = 5.0


def _counted(service, host):
    """Whether a service counts for the partition guard: an enabled one, one
    selfheal fenced earlier (still forced down), and the host itself. A
    service an operator disabled (decommissioned, RMA) does not."""
    return (service.get("host") == host or service.get("status") == "enabled"
            or service.get("forced_down")
            or markers.kind_of(service.get("disabled_reason")) == markers.FENCED)


def partition_check(services, host, max_down_ratio, max_down_hosts=None):
    """Refuse to fence ``host`` when that looks like a partition, not a failure.

    :raises ActionFailure: ``service_state_unknown`` when Nova cannot tell
        some service's state (a down cell answers ``UNKNOWN``);
        ``too_many_hosts_down`` when, with ``host``, more than
        ``max_down_ratio`` of the counted services (:func:`_counted`) or more
        than ``max_down_hosts`` hosts would be down.
    """
    unknown = sorted(str(s.get("host")) for s in services
                     if s.get("state") not in ("up", "down")
                     or s.get("status") not in ("enabled", "disabled"))
    if unknown:
        raise ActionFailure(
            "service_state_unknown",
            f"Nova cannot tell the state of {len(unknown)} compute service(s) "
            f"({', '.join(unknown[:10])}): a cell or its database is down or unreachable, so "
            "how many hosts are really down is unknown and nothing was fenced. Repair the "
            "cell, then run again.", unknown_hosts=unknown[:50])
    counted = [s for s in services if _counted(s, host)]
    down = sorted({s["host"] for s in counted if s["state"] == "down" or s.get("forced_down")}
                  | {host})
    ratio = len(down) / max(len(counted), 1)
    too_many = max_down_hosts is not None and len(down) > max_down_hosts
    if ratio > max_down_ratio or too_many:
        limit = (f"more than max_down_hosts={max_down_hosts}" if too_many else
                 f"{ratio:.0%} > max_down_ratio {max_down_ratio:.0%}")
        raise ActionFailure(
            "too_many_hosts_down",
            f"{len(down)} of {len(counted)} enabled compute hosts would be down ({limit}): "
            "that looks like a network partition or a control-plane fault, not a host "
            "failure, so nothing was fenced or evacuated. Check the control plane; raise the "
            "limit only if the failures are real.", down_hosts=down[:50], ratio=round(ratio, 3))


def operator_reason(service):
    """The disabled reason an operator (not selfheal) set, or None."""
    if service.get("status") == "disabled" and markers.kind_of(
            service.get("disabled_reason")) is None:
        return service.get("disabled_reason") or "(disabled without a reason)"
    return None


def fencing_steps(service, services, max_down_ratio, host_powered_off=False, force=False,
                  max_down_hosts=None):
    """Decide what fencing ``service`` takes, or refuse.

    :param service: the failed host's nova-compute service dict.
    :param services: every nova-compute service dict.
    :param max_down_ratio: refuse above this share of down services.
    :param host_powered_off: the node was powered off out of band (a
        fencing hook ran), so an ``up`` service is safe to force down.
    :param force: fence a host under planned maintenance anyway.
    :param max_down_hosts: refuse above this many down hosts (None: no cap).
    :returns: ``["force_down", "disable"]`` or a part of it ([] when fenced).
    :raises ActionFailure: ``host_in_maintenance``, ``too_many_hosts_down``,
        ``service_state_unknown``, ``host_still_up``.
    """
    host = service["host"]
    if markers.kind_of(service.get("disabled_reason")) == markers.MAINTENANCE and not force:
        raise ActionFailure(
            "host_in_maintenance",
            f"host '{host}' is under planned maintenance ({service['disabled_reason']}); "
            "its instances are moved by the maintenance flow. Pass force=true only if the "
            "host really failed during the maintenance.", host=host)
    partition_check(services, host, max_down_ratio, max_down_hosts)
    steps = []
    if not service.get("forced_down"):
        if service["state"] == "up" and not host_powered_off:
            raise ActionFailure(
                "host_still_up",
                f"Nova still sees nova-compute on '{host}' as up, so its instances may still "
                "be running: evacuating now could run each one twice on shared storage. "
                "Wait until Nova reports it down; if you know it is dead, run again with "
                "host_known_dead=true (power fencing switches it off first), or with "
                "host_powered_off=true once it is off.", host=host)
        steps.append("force_down")
    if service["status"] != "disabled" or markers.kind_of(
            service.get("disabled_reason")) not in (markers.FENCED, markers.MAINTENANCE):
        steps.append("disable")
    return steps


def wait_until_down(api, host, wait_for_down, sleep=None, clock=None):
    """Read the services until Nova sees ``host`` down (or forced down), for
    at most ``wait_for_down`` seconds: a monitor alarms within seconds, Nova
    only after ``service_down_time``.

    :returns: ``(services, service, seconds waited)``.
    :raises ActionFailure: ``host_still_up`` when Nova still sees it up then.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    started = clock()
    while True:
        services = api.compute_services()
        service = compute.find_service(services, host)
        waited = clock() - started
        if service.get("forced_down") or service.get("state") != "up" or (
                waited >= wait_for_down):
            break
        sleep(min(DOWN_POLL, max(wait_for_down - waited, 0.1)))
    if service.get("state") == "up" and not service.get("forced_down") and wait_for_down:
        raise ActionFailure(
            "host_still_up",
            f"Nova still sees nova-compute on '{host}' as up after waiting {wait_for_down:.0f} "
            "s, so its instances may still be running: nothing was fenced or evacuated. If "
            "the host really failed, check Nova's service_down_time, or power the node off "
            "and pass host_powered_off=true.", host=host, waited=round(waited, 1))
    return services, service, round(waited, 1)


def settled_steps(api, host, checks, settle_seconds, sleep=None):
    """Pause ``settle_seconds``, read the services again and decide again: a
    partition in progress shows hosts going down one after another.

    :param checks: the keyword arguments of :func:`fencing_steps`.
    :returns: ``(services, service, steps)``.
    """
    (sleep or time.sleep)(settle_seconds)
    services = api.compute_services()
    service = compute.find_service(services, host)
    return services, service, fencing_steps(service, services, **checks)


def fenced_marker(context, reason, before=None):
    """The disabled reason fencing writes: who fenced the host (the
    execution in ``context``), when, ``reason``, and the operator's earlier
    disabled reason ``before`` (kept whole)."""
    return markers.make(markers.FENCED, clients.execution_id(context), reason, before=before)


def carry_out(api, service, steps, marker, dry_run=False):
    """Fence ``service`` with ``steps`` (from :func:`fencing_steps`).

    :param api: a :class:`selfheal_actions.common.compute.NovaApi`.
    :param marker: the disabled reason to write (:func:`markers.make`).
    :param dry_run: only report what would change.
    :returns: the fencing report: ``host``, ``service_id``, ``fenced``,
        ``marker`` (the disabled reason the service carries afterwards) and
        ``changes``.
    :raises ActionFailure: ``forbidden`` (with the changes made before)
        when Nova refuses a step for lack of a permission.
    """
    changes = []
    resource = f"nova-compute service on {service['host']}"
    for step in steps:
        try:
            if step == "force_down":
                if not dry_run:
                    api.force_down(service["id"])
                changes.append(change(resource, "forced_down"))
            else:
                if not dry_run:
                    api.disable(service["id"], marker)
                changes.append(change(resource, "disabled", disabled_reason=marker))
        except Exception as error:
            raise_if_forbidden(error, changes)
            raise unexpected(error, changes) from None
    return {"host": service["host"], "service_id": service["id"],
            "fenced": not dry_run or not steps,
            "marker": marker if "disable" in steps else service.get("disabled_reason"),
            "changes": changes}


def fencing_inputs(action):
    """The validated fencing inputs of ``action`` (a fence or evacuate action)."""
    return {
        "max_down_ratio": inputs.number("max_down_ratio", action.max_down_ratio, 0, 1),
        "max_down_hosts": None if action.max_down_hosts in (None, "") else inputs.number(
            "max_down_hosts", action.max_down_hosts, 1, 10000, integer=True),
        "host_powered_off": inputs.boolean("host_powered_off", action.host_powered_off),
        "force": inputs.boolean("force", action.force),
        "wait_for_down": inputs.number("wait_for_down", action.wait_for_down, 0, 600),
        "settle_seconds": inputs.number("settle_seconds", action.settle_seconds, 0, 60),
    }


def decide(api, host, args, dry_run, plan_waits=False):
    """Read the host, wait (bounded) for Nova to see it down, check every
    guard, settle and check again: what fencing will do, before doing it.

    :param args: :func:`fencing_inputs`.
    :param plan_waits: a dry run waits for Nova to see the host down and
        refuses a host still up, as a real run does (the plan made before an
        operator's fencing workflow powers the node off).
    :returns: ``(services, service, steps, report)``; ``report`` has
        ``waited_for_down`` (seconds) and, in a dry run of a host Nova still
        sees up, ``note``.
    :raises ActionFailure: every refusal of :func:`fencing_steps`.
    """
    checks = {k: args[k] for k in ("max_down_ratio", "host_powered_off", "force",
                                   "max_down_hosts")}
    services = api.compute_services()
    service = compute.find_service(services, host)
    partition_check(services, host, args["max_down_ratio"], args["max_down_hosts"])
    report = {"waited_for_down": 0}
    up = service.get("state") == "up" and not service.get("forced_down")
    if up and not args["host_powered_off"] and args["wait_for_down"]:
        if dry_run and not plan_waits:
            report["note"] = (f"Nova still sees '{host}' up: a real run waits up to "
                              f"{args['wait_for_down']:.0f} s for it to be seen down, then "
                              "fences; it refuses if it is still up")
            checks = dict(checks, host_powered_off=True)
        else:
            services, service, report["waited_for_down"] = wait_until_down(
                api, host, args["wait_for_down"], sleep=time.sleep, clock=time.monotonic)
    steps = fencing_steps(service, services, **checks)
    if steps and not dry_run and args["settle_seconds"]:
        services, service, steps = settled_steps(api, host, checks, args["settle_seconds"],
                                                 sleep=time.sleep)
    return services, service, steps, report


class FenceHostAction(SelfhealAction):
    """Fence a failed compute host: force its nova-compute down, then disable it.

    This is Nova's part of fencing only: it does not power the host off
    and never contacts a BMC, whatever the fencing inventory holds;
    ``host_powered_off`` is the caller's word, not checked. On its own, on a
    host whose guests may still run, it tells Nova the host is fenced when
    it is not (an evacuation after it can run every instance twice on shared
    storage). To fence for real use ``selfheal.evacuate_and_verify`` with
    ``fence`` (or the ``selfheal.host_failure.evacuate_host`` workflow): it
    powers the host off through its BMC and confirms Off before this part;
    or run ``selfheal.power_off`` first.

    Waits up to ``wait_for_down`` seconds for Nova to see the host down (a
    monitor alarms within seconds, Nova after ``service_down_time``), then
    refuses (and changes nothing) when the service still reports up (unless
    ``host_powered_off``), when Nova cannot tell some service's state (a down
    cell), when more than ``max_down_ratio`` of the enabled compute hosts or
    more than ``max_down_hosts`` would be down (checked again after
    ``settle_seconds``), or when the host is under planned maintenance
    (unless ``force``). A disabled reason an operator had set is kept in the
    marker, and put back by ``selfheal.enable_host``. Running it on a fenced
    host changes nothing.

    :param host: nova-compute service host name (string, required).
    :param reason: why the host is fenced, written in the disabled reason.
    :param max_down_ratio: refuse when more than this share (0-1) of the
        enabled compute services would be down; default 0.5.
    :param max_down_hosts: refuse when more than this many hosts would be
        down (1-10000; null: no cap).
    :param host_powered_off: true when the node was powered off out of band.
    :param force: fence even a host under planned maintenance.
    :param wait_for_down: seconds to wait for Nova to see the host down
        (0-600, default 0: refuse at once).
    :param settle_seconds: pause before checking the partition guard again
        (0-60, default 2).
    :param dry_run: report what would change, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``fenced`` (true when the host is
        fenced after the call), ``marker``, ``waited_for_down``,
        ``changes``. Error reasons: ``invalid_input``, ``host_not_found``,
        ``host_still_up``, ``too_many_hosts_down``, ``service_state_unknown``,
        ``host_in_maintenance``, ``configuration_error``,
        ``service_unreachable``, ``unsupported_microversion``, ``api_error``,
        ``forbidden`` (the caller's roles lack a permission, named in
        details.missing_permission; the changes list what was done before
        the refusal).
    """

    action_name = "selfheal.fence_host"

    def __init__(self, host, reason="host failure", max_down_ratio=0.5, max_down_hosts=None,
                 host_powered_off=False, force=False, wait_for_down=0, settle_seconds=2,
                 dry_run=False, microversion=None):
        self.host = host
        self.reason = reason
        self.max_down_ratio = max_down_ratio
        self.max_down_hosts = max_down_hosts
        self.host_powered_off = host_powered_off
        self.force = force
        self.wait_for_down = wait_for_down
        self.settle_seconds = settle_seconds
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        reason = inputs.text("reason", self.reason, required=False) or "host failure"
        args = fencing_inputs(self)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        nova = compute.NovaApi(clients.nova(context, version))
        _, service, steps, report = decide(nova, host, args, dry_run)
        marker = fenced_marker(context, reason, before=operator_reason(service))
        result = carry_out(nova, service, steps, marker, dry_run)
        result.update(report)
        return result


class EnableHostAction(SelfhealAction):
    """Put a repaired, fenced host back: lift forced-down, then enable it.

    Only when the host is healthy again, as Nova itself judges it: Nova
    refuses to lift forced-down while finished evacuations still point at the
    host (its nova-compute has not restarted and cleaned up yet), and once
    lifted, the service must report ``up`` within ``wait_seconds``. If it does
    not, forced-down is put back and nothing else changes. Refuses a service
    disabled by someone else or for planned maintenance unless ``force``.
    Running it on an enabled host changes nothing. A host an operator had
    disabled before it failed (the fencing marker keeps their reason) is not
    enabled: forced-down is lifted and their disabled reason is put back.

    :param host: nova-compute service host name (string, required).
    :param wait_seconds: how long to wait for the service to report up
        after lifting forced-down (1-600, default 30).
    :param force: enable even a service disabled by someone else.
    :param power_on: first power the host on through its BMC (fencing
        inventory) and confirm On; then wait for nova-compute as usual.
    :param power_timeout: with ``power_on``: seconds per attempt for the BMC
        to report On (1-600, default 30).
    :param dry_run: report what would change, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``enabled``, ``power`` (with
        ``power_on``: the BMC, states, attempts), ``changes``. Error
        reasons: ``invalid_input``, ``host_not_found``, ``host_not_recovered``
        (Nova still holds its evacuations), ``host_not_reporting``,
        ``disabled_by_someone_else``, ``host_in_maintenance``, with
        ``power_on`` the reasons of ``selfheal.power_on``, plus the
        client errors of fence_host.
    """

    action_name = "selfheal.enable_host"

    def __init__(self, host, wait_seconds=30, force=False, dry_run=False, microversion=None,
                 power_on=False, power_timeout=30):
        self.host = host
        self.wait_seconds = wait_seconds
        self.force = force
        self.power_on = power_on
        self.power_timeout = power_timeout
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        wait_seconds = inputs.number("wait_seconds", self.wait_seconds, 1, 600)
        force = inputs.boolean("force", self.force)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)
        power_on = inputs.boolean("power_on", self.power_on)
        power_timeout = inputs.number("power_timeout", self.power_timeout, 1, 600)

        nova = compute.NovaApi(clients.nova(context, version))
        service = compute.find_service(nova.compute_services(), host)
        forced, disabled = bool(service.get("forced_down")), service["status"] == "disabled"
        result = {"host": host, "service_id": service["id"], "enabled": True, "changes": [],
                  "power": None}
        if power_on:
            result["power"], power_changes = self._power_on(host, context, power_timeout,
                                                            dry_run)
            result["changes"].extend(power_changes)
            self.changes_so_far = result["changes"]
        if not forced and not disabled:
            return result
        kind = markers.kind_of(service.get("disabled_reason")) if disabled else markers.FENCED
        if kind == markers.MAINTENANCE and not force:
            raise ActionFailure(
                "host_in_maintenance",
                f"host '{host}' is under planned maintenance; finish it with the "
                "selfheal.maintenance.finish_maintenance workflow.", host=host)
        if kind != markers.FENCED and not force:
            raise ActionFailure(
                "disabled_by_someone_else",
                f"host '{host}' was disabled by someone else (reason: "
                f"{service.get('disabled_reason')!r}); selfheal leaves it alone. Pass "
                "force=true to enable it anyway.", host=host)
        resource = f"nova-compute service on {host}"
        if dry_run:
            if forced:
                result["changes"].append(change(resource, "forced_down_lifted"))
            restores = (markers.parse(service.get("disabled_reason")) or {}).get("before")
            result["changes"].append(change(resource, "disabled_reason_restored"
                                            if restores and not force else "enabled"))
            result.update(enabled=False, note="a real run first checks that the host "
                          "reports up; it changes nothing if it does not")
            return result
        if forced:
            self._lift_forced_down(nova, service, wait_seconds)
            result["changes"].append(change(resource, "forced_down_lifted"))
        elif service["state"] != "up":
            raise ActionFailure("host_not_reporting", f"nova-compute on '{host}' is down: the "
                                "host is not healthy yet. Repair it, check that nova-compute "
                                "runs, then try again.", host=host)
        before = (markers.parse(service.get("disabled_reason")) or {}).get("before")
        if disabled and before and not force:
            # an operator had disabled the host before it failed: put their
            # reason back rather than enable what they took out
            nova.disable(service["id"], before)
            result["changes"].append(change(resource, "disabled_reason_restored",
                                            disabled_reason=before))
            result.update(enabled=False, note=f"the host was disabled before it failed "
                          f"({before!r}); that reason is back and the host stays disabled. "
                          "Enable it yourself when that work is done (or force=true).")
        elif disabled:
            nova.enable(service["id"])
            result["changes"].append(change(resource, "enabled"))
        return result

    @staticmethod
    def _power_on(host, context, timeout, dry_run):
        """Power the repaired host on and confirm On (before lifting anything)."""
        from selfheal_actions.hosts import bmc
        from selfheal_actions.hosts import inventory
        from selfheal_actions.hosts import power

        entry = power.bmc_entry(host, context)
        shown = inventory.public(entry)
        if dry_run:
            return {"bmc": shown, "would": "power_on"}, [
                change(f"power of {host}", "would_power_on", **shown)]
        try:
            report = power.switch(bmc.driver_for(entry), bmc.ON, attempts=3, timeout=timeout)
        except ActionFailure as failure:
            raise power.fail_with_advice(failure, host, entry, bmc.ON) from None
        report["bmc"] = shown
        return report, ([change(f"power of {host}", "powered_on", **shown)]
                        if report["switched"] else [])

    def _lift_forced_down(self, nova, service, wait_seconds):
        host = service["host"]
        try:
            nova.force_down(service["id"], False)
        except nova_exc.BadRequest as error:
            raise ActionFailure(
                "host_not_recovered",
                f"Nova will not lift forced-down on '{host}' yet: {compute.client_error(error)[1]} "
                "Restart nova-compute on the repaired host (it cleans up the evacuated "
                "instances), then try again.", host=host) from None
        deadline = time.monotonic() + wait_seconds
        while True:
            current = compute.find_service(nova.compute_services(), host)
            if current["state"] == "up":
                return
            if time.monotonic() >= deadline:
                nova.force_down(service["id"], True)
                raise ActionFailure(
                    "host_not_reporting",
                    f"nova-compute on '{host}' did not report up within {wait_seconds:.0f} s, "
                    "so it was forced down again and stays fenced. Repair the host, check that "
                    "nova-compute runs, then try again.", host=host)
            time.sleep(1)
