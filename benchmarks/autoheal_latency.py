#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: from an Aodh alarm posted to Zaqar to the member replaced in Heat.

On the lab's real Heat, Zaqar and Mistral, an Aodh-format event alarm for
one member of a 3-member group is posted to the queue whose subscription
starts ``selfheal.autoheal.heal_from_alarm`` (as OS::Zaqar::MistralTrigger
does). Three clocks from the post: the execution exists in Mistral (polled
every 10 ms), Heat shows the new member, and the execution ended SUCCESS.
Then the same with a burst of 5 alarms for one member (one replacement
expected). Medians of several runs, each on a fresh stack.

Then the production chain in the authenticated lab (every service behind
Keystone, as the non-admin member user): an instance event published on the
bus as Ceilometer does, Aodh's event alarm, ``trust+zaqar`` into the queue,
the ``trust+http`` subscription to Mistral. Clocks from the moment the
notification was sent: the execution exists, Heat shows the new member, the
execution ended (``--no-auth`` skips this part).

    .venv/bin/python benchmarks/autoheal_latency.py [--runs 5] [--keep-lab] [--no-auth]
"""

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time
import uuid

from selfheal_lab import alarm_chain
from selfheal_lab import autoheal_scenario
from selfheal_lab import lab
from selfheal_lab import tables
from selfheal_lab import zaqar_client

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
POLL = 0.01


def clocks(heal_lab, stack_id, old, count, started, now):
    """Seconds from ``started`` (a ``now()`` reading) until the first execution
    exists, member "1" (``old``) is replaced and ``count`` executions ended.

    :returns: ``({"to_execution", "to_replaced", "to_done"}, executions)``.
    """
    while not heal_lab.triggered_executions(stack_id):
        time.sleep(POLL)
    to_execution = now() - started
    while heal_lab.members(stack_id)["1"] == old:
        time.sleep(POLL * 10)
    to_replaced = now() - started
    executions = heal_lab.wait_triggered(stack_id, count, timeout=300)
    return ({"to_execution": to_execution, "to_replaced": to_replaced,
             "to_done": now() - started}, executions)


def one_run(heal_lab, alarms):
    """Post ``alarms`` alarms for one member; return the three latencies."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    stack_id = heal_lab.create_group(name, 3)
    queue = f"alarms-{name}"
    heal_lab.subscribe_trigger(queue, stack_id)
    old = heal_lab.members(stack_id)["1"]
    try:
        started = time.monotonic()
        for _ in range(alarms):
            heal_lab.post_alarm(queue, old)
        latencies, executions = clocks(heal_lab, stack_id, old, alarms, started, time.monotonic)
        states = sorted(e["state"] for e in executions)
        replacements = len({e["output"]["result"]["member"]["new_physical_id"]
                            for e in executions if e["state"] == "SUCCESS"})
    finally:
        zaqar_client.delete_queue(queue)
        heal_lab.delete(stack_id)
    return dict(latencies, states=states, replacements=replacements)


def chain_run(chain):
    """One event on the bus for one member of a fresh stack (authenticated
    lab); return the three latencies from the moment it was sent."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    stack_id = chain.create_group(name, 3)
    queue = f"alarms-{name}"
    chain.subscribe_trigger(queue, stack_id)
    old = chain.members(stack_id)["1"]
    alarm_id = chain.create_event_alarm(queue, old)
    try:
        chain.wait_alarm_visible()
        sent = chain.publish_instance_event(old)  # a wall-clock time: another process's
        latencies, executions = clocks(chain, stack_id, old, 1, sent, time.time)
    finally:
        chain.delete_alarm(alarm_id)
        zaqar_client.delete_queue(queue, token=chain.token)
        chain.delete(stack_id)
    return dict(latencies, states=[e["state"] for e in executions])


def authenticated_rows(runs):
    """``runs`` runs of :func:`chain_run`, printed as they end."""
    lab.up_authenticated(with_alarms=True)
    chain = alarm_chain.AlarmChainLab()
    results = []
    for i in range(runs):
        run = chain_run(chain)
        results.append(run)
        print(f"  authenticated, run {i + 1}: execution after {run['to_execution']:.2f} s, "
              f"replaced after {run['to_replaced']:.2f} s, ended after {run['to_done']:.2f} s "
              f"({run['states'][0]})", file=sys.stderr, flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep-lab", action="store_true")
    parser.add_argument("--no-auth", action="store_true",
                        help="skip the chain in the authenticated lab")
    args = parser.parse_args(argv)
    lab.up_autoheal()
    heal_lab = autoheal_scenario.AutohealLab()
    rows = {}
    chain_runs = []
    try:
        for alarms in (1, 5):
            runs = []
            for i in range(args.runs):
                run = one_run(heal_lab, alarms)
                runs.append(run)
                print(f"  {alarms} alarm(s), run {i + 1}: execution after "
                      f"{run['to_execution'] * 1000:.0f} ms, replaced after "
                      f"{run['to_replaced']:.2f} s, all ended after {run['to_done']:.2f} s "
                      f"({', '.join(run['states'])})", file=sys.stderr, flush=True)
            rows[alarms] = runs
        if not args.no_auth:
            chain_runs = authenticated_rows(args.runs)
    finally:
        if not args.keep_lab:
            lab.down()
    results = []
    for alarms, runs in rows.items():
        results.append({
            "alarms": alarms, "runs": len(runs),
            "median_ms_to_execution": round(
                statistics.median(r["to_execution"] for r in runs) * 1000),
            "median_s_to_replaced": round(statistics.median(r["to_replaced"] for r in runs), 2),
            "median_s_to_all_done": round(statistics.median(r["to_done"] for r in runs), 2),
            "executions_in_error": sum(r["states"].count("ERROR") for r in runs),
            "max_replacements_per_run": max(r["replacements"] for r in runs),
        })
    head = ("alarms", "runs", "post -> execution (ms)", "post -> replaced (s)",
            "post -> all ended (s)", "executions in ERROR", "replacements per run")
    text = tables.format_table([head] + [
        (str(r["alarms"]), str(r["runs"]), str(r["median_ms_to_execution"]),
         f"{r['median_s_to_replaced']:.2f}", f"{r['median_s_to_all_done']:.2f}",
         str(r["executions_in_error"]), str(r["max_replacements_per_run"]))
        for r in results], markdown=True)
    chain = None
    if chain_runs:
        chain = {
            "runs": len(chain_runs),
            "median_s_to_execution": round(
                statistics.median(r["to_execution"] for r in chain_runs), 2),
            "median_s_to_replaced": round(
                statistics.median(r["to_replaced"] for r in chain_runs), 2),
            "median_s_to_done": round(statistics.median(r["to_done"] for r in chain_runs), 2),
            "executions_in_error": sum(r["states"].count("ERROR") for r in chain_runs),
        }
        text += "\n\nAuthenticated lab (Keystone everywhere, as the member user), from the " \
                "event on the bus:\n\n" + tables.format_table([
                    ("runs", "event -> execution (s)", "event -> replaced (s)",
                     "event -> ended (s)", "executions in ERROR"),
                    (str(chain["runs"]), f"{chain['median_s_to_execution']:.2f}",
                     f"{chain['median_s_to_replaced']:.2f}", f"{chain['median_s_to_done']:.2f}",
                     str(chain["executions_in_error"]))], markdown=True)
    print(text)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python3 tools/dev.py bench autoheal " + " ".join(argv or sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "autoheal-latency-latest.json").write_text(json.dumps(
        {"when": stamp, "command": command.strip(), "results": results,
         "authenticated_chain": chain}, indent=2))
    (RESULTS / "autoheal-latency-latest.md").write_text(
        f"# Heat autohealing: alarm in Zaqar to member replaced\n\n{stamp}, "
        f"`{command.strip()}` (medians)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
