#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: time to heal k of N members, and how many stack updates it took,
selfheal against the heat-templates sample's flow, on the same lab Heat.

For each k (default 1, 5, 20 of N = 30), on a fresh stack (a ResourceGroup
of N ``OS::Heat::TestResource`` members), one Aodh-format event alarm per
dead member is posted to a Zaqar queue within 2 s; the queue's subscription
(shaped as OS::Zaqar::MistralTrigger makes it) starts:

* **selfheal**: ``selfheal.autoheal.heal_from_alarm`` (one claim per stack,
  coalescing, verification);
* **sample**: the flow of heat-templates' autohealing sample, one
  ``mark_unhealthy`` and one ``existing=true`` stack update per alarm with
  no coordination (two ``std.http`` calls to Heat's API here, as its
  ``heat.resources_mark_unhealthy`` and ``heat.stacks_update`` actions make).

Clock: from the first post until every dead member has a new physical id
and is complete (or ``--timeout``), until every execution ended, and until
the stack settled (no update in progress). Counted: stack updates (the root
stack's ``UPDATE_IN_PROGRESS`` events), executions in ERROR, dead members
not replaced, and the stack's status once settled. Medians of ``--runs``.

    .venv/bin/python benchmarks/autoheal_scale.py [--size 30] [--dead 1,5,20] [--runs 3]
"""

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time
import uuid

from selfheal_lab import autoheal_scenario
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import tables
from selfheal_lab import zaqar_client

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SAMPLE_WORKFLOW = "selfheal_bench_sample_autohealing"


def sample_workflow():
    """heat-templates' autohealing sample flow: mark the alarm's instance
    unhealthy in the member's stack, then update the root stack with
    existing=true; nothing else (std.http stands in for the heat.* actions)."""
    return f"""---
version: '2.0'
{SAMPLE_WORKFLOW}:
  description: heat-templates' autohealing sample (benchmark peer); no coordination.
  input:
    - stack_url
    - root_stack_url
  tasks:
    resources_mark_unhealthy:
      action: std.http
      input:
        url: >-
          <% $.stack_url %>/resources/<% env().notification.body.reason_data.event.traits
          .where($[0] = 'instance_id').select($[2]).first() %>
        method: PATCH
        json:
          mark_unhealthy: true
          resource_status_reason: marked by alarm
        headers:
          X-Auth-User: admin
          X-Auth-Project: admin
      on-success:
        - stacks_update
    stacks_update:
      action: std.http
      input:
        url: <% $.root_stack_url %>
        method: PATCH
        json: {{}}
        headers:
          X-Auth-User: admin
          X-Auth-Project: admin
"""


def subscribe_sample(heal_lab, queue, stack_id):
    heat = heal_lab.heat()
    root = heat.stacks.get(stack_id)
    nested = heat.stacks.get(heal_lab.nested_stack_id(stack_id))
    base = heal_lab.heat_url.rstrip("/")
    workflow_input = {
        "stack_url": f"{base}/stacks/{nested.stack_name}/{nested.id}",
        "root_stack_url": f"{base}/stacks/{root.stack_name}/{root.id}"}
    workflow_id = mistral_client.get_workflow(heal_lab.mistral_url, SAMPLE_WORKFLOW)["id"]
    post_data = autoheal_scenario.trigger_post_data(workflow_id, {"evaluate_env": False},
                                                    workflow_input)
    zaqar_client.create_queue(queue)
    zaqar_client.subscribe(queue, heal_lab.mistral_url.rstrip("/") + "/executions",
                           post_data=post_data)


def executions_of(heal_lab, flow, stack_id, started_after):
    if flow == "selfheal":
        return heal_lab.triggered_executions(stack_id)
    return [e for e in mistral_client.list_executions(heal_lab.mistral_url, SAMPLE_WORKFLOW)
            if stack_id in json.dumps(e.get("input") or {})]


def replaced(heal_lab, stack_id, before, victims):
    """The victims that have a new physical id and are complete."""
    found = {r.resource_name: r for r in heal_lab.heat().resources.list(stack_id, nested_depth=2)
             if r.resource_type == "OS::Heat::TestResource"}
    return [m for m in victims if m in found
            and found[m].physical_resource_id not in (None, "", before[m])
            and found[m].resource_status.endswith("_COMPLETE")]


def one_run(heal_lab, flow, size, dead, timeout):
    name = f"bench-{flow[:4]}-{uuid.uuid4().hex[:8]}"
    stack_id = heal_lab.create_group(name, size, timeout=600)
    queue = f"alarms-{name}"
    if flow == "selfheal":
        heal_lab.subscribe_trigger(queue, stack_id)
    else:
        subscribe_sample(heal_lab, queue, stack_id)
    before = heal_lab.members(stack_id)
    victims = [str(i) for i in range(dead)]
    try:
        t0 = time.monotonic()
        for index, member in enumerate(victims):
            heal_lab.post_alarm(queue, before[member])
            if index < len(victims) - 1:
                time.sleep(2.0 / len(victims))
        deadline = t0 + timeout
        healed = None
        while time.monotonic() < deadline:
            now = replaced(heal_lab, stack_id, before, victims)
            if len(now) == len(victims):
                healed = time.monotonic() - t0
                break
            time.sleep(0.5)
        # every execution ended (the sample's end at once or in ERROR)
        while time.monotonic() < deadline + 60:
            executions = executions_of(heal_lab, flow, stack_id, t0)
            if len(executions) >= dead and all(
                    e["state"] in mistral_client.TERMINAL_STATES for e in executions):
                break
            time.sleep(0.5)
        done = time.monotonic() - t0
        while (heal_lab.stack(stack_id).stack_status.endswith("IN_PROGRESS")
               and time.monotonic() < deadline + 120):
            time.sleep(0.5)
        settled = time.monotonic() - t0
        stack = heal_lab.stack(stack_id)
        now = replaced(heal_lab, stack_id, before, victims)
        updates = sum(1 for e in heal_lab.heat().events.list(stack_id)
                      if e.resource_name == stack.stack_name
                      and e.resource_status == "UPDATE_IN_PROGRESS")
        states = [e["state"] for e in executions_of(heal_lab, flow, stack_id, t0)]
        return {"healed_s": healed, "done_s": done, "settled_s": settled, "updates": updates,
                "errors": states.count("ERROR"), "executions": len(states),
                "not_replaced": len(victims) - len(now), "status": stack.stack_status}
    finally:
        zaqar_client.delete_queue(queue)
        heal_lab.delete(stack_id)


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def _shown(seconds):
    """A median of the runs that got there, or "-" when none did."""
    return "-" if seconds is None else str(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--dead", default="1,5,20", help="k values, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--flows", default="selfheal,sample")
    parser.add_argument("--keep-lab", action="store_true")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.dead.split(",")]
    flows = args.flows.split(",")
    lab.up_autoheal()
    heal_lab = autoheal_scenario.AutohealLab()
    mistral_client.create_workflows(heal_lab.mistral_url, sample_workflow())
    rows = []
    try:
        for k in ks:
            for flow in flows:
                runs = []
                for i in range(args.runs):
                    run = one_run(heal_lab, flow, args.size, k, args.timeout)
                    runs.append(run)
                    print(f"  {flow}, {k} of {args.size}, run {i + 1}: {run}", file=sys.stderr,
                          flush=True)
                rows.append({
                    "flow": flow, "dead": k, "size": args.size, "runs": len(runs),
                    "median_s_to_all_replaced": _median(r["healed_s"] for r in runs),
                    "runs_all_replaced": sum(r["healed_s"] is not None for r in runs),
                    "median_s_to_all_ended": _median(r["done_s"] for r in runs),
                    "median_s_to_settled": _median(r["settled_s"] for r in runs),
                    "median_stack_updates": statistics.median(r["updates"] for r in runs),
                    "executions_in_error": sum(r["errors"] for r in runs),
                    "members_not_replaced": sum(r["not_replaced"] for r in runs),
                    "final_status": sorted({r["status"] for r in runs}),
                })
    finally:
        mistral_client.delete_workflow(heal_lab.mistral_url, SAMPLE_WORKFLOW)
        if not args.keep_lab:
            lab.down()
    head = ("flow", "k of N", "runs", "to all replaced (s)", "runs all replaced",
            "to all ended (s)", "to stack settled (s)", "stack updates",
            "executions in ERROR (all runs)", "members not replaced (all runs)", "stack status")
    text = tables.format_table([head] + [
        (r["flow"], f"{r['dead']} of {r['size']}", str(r["runs"]),
         _shown(r["median_s_to_all_replaced"]), str(r["runs_all_replaced"]),
         str(r["median_s_to_all_ended"]), str(r["median_s_to_settled"]),
         str(r["median_stack_updates"]),
         str(r["executions_in_error"]), str(r["members_not_replaced"]),
         ", ".join(r["final_status"])) for r in rows], markdown=True)
    print(text)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python3 tools/dev.py bench autoheal-scale " + " ".join(argv or sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "autoheal-scale-latest.json").write_text(json.dumps(
        {"when": stamp, "command": command.strip(), "results": rows}, indent=2))
    (RESULTS / "autoheal-scale-latest.md").write_text(
        f"# Heat autohealing at scale: k of N members, selfheal and the sample's flow\n\n"
        f"{stamp}, `{command.strip()}` (medians)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
