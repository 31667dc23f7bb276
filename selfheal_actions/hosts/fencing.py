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


def down_ratio_after_fencing(services, host):
    """Share of compute services that are down once ``host`` is down too."""
    down = {s["host"] for s in services if s["state"] == "down" or s.get("forced_down")}
    down.add(host)
    return len(down) / max(len(services), 1)


def fencing_steps(service, services, max_down_ratio, host_powered_off=False, force=False):
    """Decide what fencing ``service`` takes, or refuse.

    :param service: the failed host's nova-compute service dict.
    :param services: every nova-compute service dict.
    :param max_down_ratio: refuse above this share of down services.
    :param host_powered_off: the node was powered off out of band (a
        fencing hook ran), so an ``up`` service is safe to force down.
    :param force: fence a host under planned maintenance anyway.
    :returns: ``["force_down", "disable"]`` or a part of it ([] when fenced).
    :raises ActionFailure: ``host_in_maintenance``, ``too_many_hosts_down``,
        ``host_still_up``.
    """
    host = service["host"]
    if markers.kind_of(service.get("disabled_reason")) == markers.MAINTENANCE and not force:
        raise ActionFailure(
            "host_in_maintenance",
            f"host '{host}' is under planned maintenance ({service['disabled_reason']}); "
            "its instances are moved by the maintenance flow. Pass force=true only if the "
            "host really failed during the maintenance.", host=host)
    ratio = down_ratio_after_fencing(services, host)
    if ratio > max_down_ratio:
        down = sorted({s["host"] for s in services if s["state"] == "down"} | {host})
        raise ActionFailure(
            "too_many_hosts_down",
            f"{len(down)} of {len(services)} compute hosts would be down ({ratio:.0%} > "
            f"{max_down_ratio:.0%}): that looks like a network partition or a control-plane "
            "fault, not a host failure, so nothing was fenced or evacuated. Check the "
            "control plane; raise max_down_ratio only if the failures are real.",
            down_hosts=down, ratio=round(ratio, 3))
    steps = []
    if not service.get("forced_down"):
        if service["state"] == "up" and not host_powered_off:
            raise ActionFailure(
                "host_still_up",
                f"Nova still sees nova-compute on '{host}' as up, so its instances may still "
                "be running: evacuating now could run each one twice on shared storage. "
                "Wait until Nova reports it down, or power the node off (a fencing "
                "workflow) and pass host_powered_off=true.", host=host)
        steps.append("force_down")
    if service["status"] != "disabled" or markers.kind_of(
            service.get("disabled_reason")) not in (markers.FENCED, markers.MAINTENANCE):
        steps.append("disable")
    return steps


def fenced_marker(context, reason):
    """The disabled reason fencing writes: who fenced the host (the
    execution in ``context``), when, and ``reason``."""
    return markers.make(markers.FENCED, clients.execution_id(context), reason)


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
        except nova_exc.ClientException as error:
            raise_if_forbidden(error, changes)
            raise
    return {"host": service["host"], "service_id": service["id"],
            "fenced": not dry_run or not steps,
            "marker": marker if "disable" in steps else service.get("disabled_reason"),
            "changes": changes}


class FenceHostAction(SelfhealAction):
    """Fence a failed compute host: force its nova-compute down, then disable it.

    Refuses (and changes nothing) when the service still reports up (unless
    ``host_powered_off``), when more than ``max_down_ratio`` of compute hosts
    would be down, or when the host is under planned maintenance (unless
    ``force``). Running it on a fenced host changes nothing.

    :param host: nova-compute service host name (string, required).
    :param reason: why the host is fenced, written in the disabled reason.
    :param max_down_ratio: refuse when more than this share (0-1) of compute
        services would be down; default 0.5.
    :param host_powered_off: true when the node was powered off out of band.
    :param force: fence even a host under planned maintenance.
    :param dry_run: report what would change, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``fenced`` (true when the host is
        fenced after the call), ``marker``, ``changes``. Error reasons:
        ``invalid_input``, ``host_not_found``, ``host_still_up``,
        ``too_many_hosts_down``, ``host_in_maintenance``,
        ``configuration_error``, ``service_unreachable``,
        ``unsupported_microversion``, ``forbidden`` (the caller's roles lack
        a permission, named in details.missing_permission; the changes list
        what was done before the refusal).
    """

    action_name = "selfheal.fence_host"

    def __init__(self, host, reason="host failure", max_down_ratio=0.5, host_powered_off=False,
                 force=False, dry_run=False, microversion=None):
        self.host = host
        self.reason = reason
        self.max_down_ratio = max_down_ratio
        self.host_powered_off = host_powered_off
        self.force = force
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        reason = inputs.text("reason", self.reason, required=False) or "host failure"
        max_down_ratio = inputs.number("max_down_ratio", self.max_down_ratio, 0, 1)
        powered_off = inputs.boolean("host_powered_off", self.host_powered_off)
        force = inputs.boolean("force", self.force)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        nova = compute.NovaApi(clients.nova(context, version))
        services = nova.compute_services()
        service = compute.find_service(services, host)
        steps = fencing_steps(service, services, max_down_ratio, powered_off, force)

        return carry_out(nova, service, steps, fenced_marker(context, reason), dry_run)


class EnableHostAction(SelfhealAction):
    """Put a repaired, fenced host back: lift forced-down, then enable it.

    Only when the host is healthy again, as Nova itself judges it: Nova
    refuses to lift forced-down while finished evacuations still point at the
    host (its nova-compute has not restarted and cleaned up yet), and once
    lifted, the service must report ``up`` within ``wait_seconds``. If it does
    not, forced-down is put back and nothing else changes. Refuses a service
    disabled by someone else or for planned maintenance unless ``force``.
    Running it on an enabled host changes nothing.

    :param host: nova-compute service host name (string, required).
    :param wait_seconds: how long to wait for the service to report up
        after lifting forced-down (1-600, default 30).
    :param force: enable even a service disabled by someone else.
    :param dry_run: report what would change, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``enabled``, ``changes``. Error
        reasons: ``invalid_input``, ``host_not_found``, ``host_not_recovered``
        (Nova still holds its evacuations), ``host_not_reporting``,
        ``disabled_by_someone_else``, ``host_in_maintenance``, plus the
        client errors of fence_host.
    """

    action_name = "selfheal.enable_host"

    def __init__(self, host, wait_seconds=30, force=False, dry_run=False, microversion=None):
        self.host = host
        self.wait_seconds = wait_seconds
        self.force = force
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        wait_seconds = inputs.number("wait_seconds", self.wait_seconds, 1, 600)
        force = inputs.boolean("force", self.force)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        nova = compute.NovaApi(clients.nova(context, version))
        service = compute.find_service(nova.compute_services(), host)
        forced, disabled = bool(service.get("forced_down")), service["status"] == "disabled"
        result = {"host": host, "service_id": service["id"], "enabled": True, "changes": []}
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
            result["changes"].append(change(resource, "enabled"))
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
        if disabled:
            nova.enable(service["id"])
            result["changes"].append(change(resource, "enabled"))
        return result

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
