# SPDX-License-Identifier: Apache-2.0
"""Start again what the drain stopped on a host (policy ``stop_start``).

The drain marks each server it stops with ``selfheal:stopped_for_maintenance
= <host>`` (:data:`drain_plan.STOPPED_KEY`) before stopping it; this action,
run by ``finish_maintenance`` once the host is healthy, starts those servers
on the same host, waits until each is ACTIVE and only then removes the mark
(so a rerun after a failure starts what is left, and never starts a server
its owner stopped: it carries no mark).
"""

import time

from novaclient import exceptions as nova_exc

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.moves import records


class StartStoppedAction(SelfhealAction):
    """Start the instances the drain stopped on ``host``, and prove they run.

    :param host: the host back from maintenance (healthy).
    :param timeout: seconds to wait for them to be ACTIVE (1-3600, default 300).
    :param poll_interval: seconds between two reads (0.1-60, default 2).
    :param dry_run: list what would be started; change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``instances`` (id, name, outcome: started /
        already_running / would_start / failed / timed_out, reason),
        ``changes``. Error reasons: ``invalid_input``, ``instances_not_started``
        (the details list each one and why).
    """

    action_name = "selfheal.start_stopped_instances"

    def __init__(self, host, timeout=300, poll_interval=2, dry_run=False, microversion=None):
        self.host = host
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context, clock=time.monotonic, sleep=time.sleep):
        host = inputs.text("host", self.host)
        timeout = inputs.number("timeout", self.timeout, 1, 3600)
        interval = inputs.number("poll_interval", self.poll_interval, 0.1, 60)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        api = compute.NovaApi(clients.nova(context, inputs.microversion(
            "microversion", self.microversion)))
        marked = [s for s in api.servers_on_host(host) if plans.stopped_by_us(s, host)]
        entries = {s["id"]: {"id": s["id"], "name": s.get("name"), "outcome": None,
                             "reason": None} for s in marked}
        changes = []
        self.changes_so_far = changes
        for server in marked:
            entry = entries[server["id"]]
            if dry_run:
                entry["outcome"] = "would_start" if records.vm_state(server) == "stopped" \
                    else "already_running"
                continue
            if records.vm_state(server) == "stopped" and records.task_state(server) is None:
                try:
                    api.start(server["id"])
                except nova_exc.ClientException as error:
                    entry["outcome"], entry["reason"] = "failed", \
                        f"start_refused: {compute.client_error(error)[1]}"
                    continue
                entry["asked"] = True
                changes.append(change(f"server {server['id']}", "started", host=host))
        deadline = clock() + timeout
        while not dry_run:
            waiting = [e for e in entries.values() if e["outcome"] is None]
            if not waiting:
                break
            for entry in waiting:
                server = api.get_server(entry["id"])
                if server is None:
                    entry["outcome"], entry["reason"] = "failed", "server_disappeared"
                elif records.vm_state(server) == "active" and records.task_state(server) is None:
                    api.delete_server_metadata(entry["id"], plans.STOPPED_KEY)
                    entry["outcome"] = "started" if entry.get("asked") else "already_running"
                elif records.vm_state(server) == "error":
                    entry["outcome"], entry["reason"] = "failed", "in ERROR after the start"
            if clock() >= deadline:
                for entry in entries.values():
                    if entry["outcome"] is None:
                        entry["outcome"] = "timed_out"
                        entry["reason"] = f"not ACTIVE after {timeout:g} s"
                break
            if any(e["outcome"] is None for e in entries.values()):
                sleep(interval)
        instances = [{k: v for k, v in e.items() if k != "asked"} for e in entries.values()]
        bad = [e for e in instances if e["outcome"] in ("failed", "timed_out")]
        if bad:
            raise ActionFailure(
                "instances_not_started",
                f"{len(bad)} of {len(instances)} instances stopped for the maintenance of "
                f"'{host}' are not running again: " + "; ".join(
                    f"{e['name']} ({e['id']}): {e['reason']}" for e in bad)
                + ". They keep their mark; run finish_maintenance again once fixed.",
                changes=changes, host=host, instances=instances)
        return {"host": host, "instances": instances, "changes": changes}
