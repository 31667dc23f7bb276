# SPDX-License-Identifier: Apache-2.0
"""Repair instances where they are, on a healthy host: ``selfheal.reboot_instances``.

A per-instance alarm ("instance unreachable") says nothing about its host.
When Nova sees that host up, fencing it would power off or strand every
other instance there for one sick guest: the instance is hard-rebooted in
place instead, and proven ACTIVE again. Only a dead host goes through the
host flow. What else an operator may want (rebuild from the image, a
restore from backup) changes data and is left to them.
"""

import time

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import raise_if_forbidden
from selfheal_actions.moves import records
from selfheal_actions.moves.windowed_run import totals

#: vm_states Nova hard-reboots (compute/api.py reboot, HARD)
REBOOTABLE = {"active", "stopped", "paused", "suspended", "error"}
POLL = 2.0


class RebootInstancesAction(SelfhealAction):
    """Hard-reboot instances on a healthy host and prove each one ACTIVE again.

    Refuses (changing nothing) when the host's nova-compute is down or
    forced down: a dead host is for ``selfheal.host_failure.evacuate_host``,
    never for a reboot. Instances no longer on that host, being deleted, or
    shelved are skipped with the reason.

    :param host: the host the instances are on (string, required).
    :param instance_ids: server UUIDs on that host (list, required).
    :param timeout: seconds to wait for every instance to be ACTIVE again
        (10-3600, default 300).
    :param dry_run: report what would be rebooted, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``instances`` (per instance: id, name, vm_state
        before, outcome: rebooted / skipped / failed / timed_out, reason),
        ``totals``, ``changes``. Error reasons: ``invalid_input``,
        ``host_not_found``, ``host_not_healthy``, ``repair_incomplete``
        (some instances did not come back ACTIVE; the details list them).
    """

    action_name = "selfheal.reboot_instances"

    def __init__(self, host, instance_ids, timeout=300, dry_run=False, microversion=None):
        self.host = host
        self.instance_ids = instance_ids
        self.timeout = timeout
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        ids = inputs.text_list("instance_ids", self.instance_ids)
        if not ids:
            raise ActionFailure("invalid_input", "input 'instance_ids' must list at least one "
                                "server UUID")
        timeout = inputs.number("timeout", self.timeout, 10, 3600)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)
        api = compute.NovaApi(clients.nova(context, version))
        service = compute.find_service(api.compute_services(), host)
        if service.get("state") != "up" or service.get("forced_down"):
            raise ActionFailure(
                "host_not_healthy",
                f"nova-compute on '{host}' is {service.get('state')}"
                f"{' and forced down' if service.get('forced_down') else ''}: its instances "
                "cannot be rebooted there. Heal the host with "
                "selfheal.host_failure.evacuate_host (which fences it first).", host=host)
        entries = [self._entry(api, host, server_id) for server_id in dict.fromkeys(ids)]
        changes = []
        self.changes_so_far = changes
        for entry in entries:
            if entry["outcome"] != "planned" or dry_run:
                continue
            try:
                api.reboot(entry["id"], hard=True)
            except Exception as error:
                raise_if_forbidden(error, changes)
                entry.update(outcome="failed", reason=f"reboot_refused: {error}"[:200])
                continue
            entry["outcome"] = "rebooting"
            changes.append(change(f"server {entry['id']}", "hard_rebooted"))
        if dry_run:
            changes = [change(f"server {e['id']}", "would_hard_reboot")
                       for e in entries if e["outcome"] == "planned"]
        else:
            self._wait_active(api, entries, timeout)
        result = {"host": host, "instances": entries, "totals": totals(entries),
                  "changes": changes}
        bad = [e for e in entries if e["outcome"] in ("failed", "timed_out")]
        if bad:
            raise ActionFailure(
                "repair_incomplete",
                f"{len(bad)} of {len(entries)} instances on '{host}' did not come back ACTIVE "
                "after a hard reboot: " + "; ".join(
                    f"{e['id']}: {e['outcome']} ({e.get('reason')})" for e in bad[:10]) +
                ". Look at their console logs; the host itself is healthy.",
                changes=changes, **{k: v for k, v in result.items() if k != "changes"})
        return result

    @staticmethod
    def _entry(api, host, server_id):
        server = api.get_server(server_id)
        entry = {"id": server_id, "name": (server or {}).get("name"), "outcome": "planned",
                 "reason": None, "vm_state_before": records.vm_state(server or {})}
        if server is None:
            entry.update(outcome="skipped", reason="not_found")
        elif server.get("OS-EXT-SRV-ATTR:host") != host:
            entry.update(outcome="skipped", reason=f"not on {host} any more")
        elif records.task_state(server) == "deleting":
            entry.update(outcome="skipped", reason="being_deleted")
        elif entry["vm_state_before"] not in REBOOTABLE:
            entry.update(outcome="skipped", reason=f"not rebootable in vm_state "
                         f"{entry['vm_state_before'] or 'unknown'}")
        return entry

    @staticmethod
    def _wait_active(api, entries, timeout):
        deadline = time.monotonic() + timeout
        waiting = [e for e in entries if e["outcome"] == "rebooting"]
        while waiting:
            for entry in list(waiting):
                server = api.get_server(entry["id"])
                if server is None:
                    entry.update(outcome="failed", reason="server_disappeared")
                elif records.task_state(server) is None and records.vm_state(server) == "active":
                    entry["outcome"] = "rebooted"
                elif records.task_state(server) is None and records.vm_state(server) == "error":
                    entry.update(outcome="failed", reason="error_after_reboot")
                else:
                    continue
                waiting.remove(entry)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                for entry in waiting:
                    entry.update(outcome="timed_out", reason=f"not ACTIVE after {timeout:.0f} s")
                return
            time.sleep(POLL)
