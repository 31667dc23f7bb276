#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: host failure recovery, selfheal's workflow versus Nova's floor.

On the lab's real Nova, for each N, two identical failed hosts with N
running instances each are healed, one after the other in the same run:

* **selfheal**: ``selfheal.host_failure.evacuate_host`` through Mistral, timed
  from execution-create to SUCCESS (input check, fencing, evacuation at
  microversion 2.94 so Nova keeps each power state, verification of every
  instance).
* **floor**: a bare script that forces the host down, fires every
  evacuation at once and only waits until every migration record is
  ``done``. It is not a true floor: firing everything at once overloads the
  lab's one-process Nova, and a ratio below 1 says so (see the caveats in
  doc/source/benchmarks.rst; a true floor is open work).

Reported: both times, their ratio (target <= 1.2), and the Nova API requests
per instance of each, counted by the lab's Nova (target <= 4 for selfheal).
Ratios, not absolute times, are the result: the machine is shared.

With ``--power`` the lab runs its BMCs and selfheal's failed host has a
Redfish BMC: the run powers it off and waits for Off before fencing in Nova
(the floor does not), and the rows add the fence time (power-off sent to
Off confirmed; the emulator applies a reset 1-11 s after it, at random).

    python3 tools/dev.py bench [--sizes 20 50 100] [--repeat 1] [--power]
"""

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time
import uuid

from selfheal_lab import lab
from selfheal_lab import scenario
from selfheal_lab import tables
from selfheal_lab.services import bmc
from selfheal_lab.services import nova as nova_box

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WF = "selfheal.host_failure.evacuate_host"
FLOOR_POLL = 0.25


def prepare(cloud, tag, count, stopped=0):
    """Fresh hosts, ``count`` servers on the first one, which then fails.

    :param stopped: how many of the servers (the first ones) are stopped
        before the host fails; the others stay running.
    """
    hosts = cloud.add_hosts(f"{tag}-a", f"{tag}-b", f"{tag}-c")
    servers = cloud.boot_many(tag, hosts[0], count)
    if stopped:
        nova = cloud.nova()
        for server_id in servers[:stopped]:
            nova.servers.stop(server_id)
        cloud.wait_servers(servers[:stopped], "SHUTOFF", timeout=60 + 2 * stopped)
    cloud.fail_host(hosts[0])
    return hosts, servers


def run_selfheal(cloud, host, servers, workflow_input):
    nova_box.reset_request_counts()
    started = time.monotonic()
    # polled as often as the floor polls its migrations: the same clock for both
    execution = cloud.run_workflow(WF, dict(workflow_input, host=host), timeout=900,
                                   max_poll=FLOOR_POLL)
    seconds = time.monotonic() - started
    requests = nova_box.request_counts()["total"]
    if execution["state"] != "SUCCESS":
        raise RuntimeError(f"selfheal run failed: {json.dumps(execution.get('output'))[:2000]}")
    verified = execution["output"]["evacuation"]["totals"].get("evacuated", 0)
    fence = (execution["output"].get("power") or {}).get("fence_seconds")
    return {"seconds": seconds, "requests": requests, "verified": verified,
            "fence_seconds": fence}


def run_floor(cloud, host, servers):
    nova = cloud.nova()
    nova_box.reset_request_counts()
    started = time.monotonic()
    service = cloud.service(host)
    nova.services.force_down(service.id, True)
    for server_id in servers:
        nova.servers.evacuate(server_id)
    wanted = set(servers)
    while True:
        done = {m.instance_uuid for m in nova.migrations.list(
            source_compute=host, migration_type="evacuation") if m.status == "done"}
        if wanted <= done:
            break
        time.sleep(FLOOR_POLL)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "requests": nova_box.request_counts()["total"],
            "verified": 0}


def measure(cloud, count, repeat, workflow_input, with_power=False):
    rows = []
    run = uuid.uuid4().hex[:4]  # a kept lab remembers earlier runs' host names
    for i in range(repeat):
        ours_hosts, ours_servers = prepare(cloud, f"b{run}n{count}s{i}", count)
        if with_power:
            bmc.add_hosts([ours_hosts[0]])
        floor_hosts, floor_servers = prepare(cloud, f"b{run}n{count}f{i}", count)
        # alternate the order so neither always runs on a warmer Nova
        if i % 2:
            floor = run_floor(cloud, floor_hosts[0], floor_servers)
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input)
        else:
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input)
            floor = run_floor(cloud, floor_hosts[0], floor_servers)
        cloud.remove_hosts(ours_hosts + floor_hosts)
        rows.append((ours, floor))
        print(f"  N={count} run {i + 1}: selfheal {ours['seconds']:.1f}s "
              f"({ours['requests']} requests), floor {floor['seconds']:.1f}s "
              f"({floor['requests']} requests)", file=sys.stderr, flush=True)
    ours_s = statistics.median(r[0]["seconds"] for r in rows)
    floor_s = statistics.median(r[1]["seconds"] for r in rows)
    return {
        "instances": count,
        "runs": repeat,
        "selfheal_seconds": round(ours_s, 2),
        "floor_seconds": round(floor_s, 2),
        "ratio": round(ours_s / floor_s, 2),
        "selfheal_requests_per_instance": round(
            statistics.median(r[0]["requests"] for r in rows) / count, 2),
        "floor_requests_per_instance": round(
            statistics.median(r[1]["requests"] for r in rows) / count, 2),
        "selfheal_verified": min(r[0]["verified"] for r in rows),
        "selfheal_fence_seconds": (round(statistics.median(r[0]["fence_seconds"] for r in rows),
                                         2) if with_power else None),
    }


def table(results):
    head = ("N", "selfheal s", "fence s", "floor s", "ratio (<=1.2)",
            "selfheal req/inst (<=4)", "floor req/inst", "verified")
    rows = [head] + [(str(r["instances"]), f"{r['selfheal_seconds']:.1f}",
                      "-" if r.get("selfheal_fence_seconds") is None
                      else f"{r['selfheal_fence_seconds']:.1f}",
                      f"{r['floor_seconds']:.1f}", f"{r['ratio']:.2f}",
                      f"{r['selfheal_requests_per_instance']:.2f}",
                      f"{r['floor_requests_per_instance']:.2f}",
                      f"{r['selfheal_verified']}/{r['instances']}") for r in results]
    return tables.format_table(rows, markdown=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="selfheal's concurrency window (default: the workflow's)")
    parser.add_argument("--keep-lab", action="store_true")
    parser.add_argument("--power", action="store_true",
                        help="selfheal's failed host has a Redfish BMC: power fencing, and "
                             "the fence time in the rows")
    args = parser.parse_args(argv)
    workflow_input = {}
    if args.concurrency:
        workflow_input["concurrency"] = args.concurrency

    lab.up_with(["bmc"] if args.power else [])
    cloud = scenario.LabCloud()
    results = []
    try:
        for count in args.sizes:
            results.append(measure(cloud, count, args.repeat, workflow_input, args.power))
    finally:
        if not args.keep_lab:
            lab.down()
    text = table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python3 tools/dev.py bench " + " ".join(argv or sys.argv[1:])
    meta = {"when": stamp, "command": command.strip(),
            "workflow_input": workflow_input, "results": results}
    (RESULTS / "evacuation-latest.json").write_text(json.dumps(meta, indent=2))
    (RESULTS / "evacuation-latest.md").write_text(
        f"# Host failure recovery: selfheal vs Nova's floor\n\n{stamp}, "
        f"`{meta['command']}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
