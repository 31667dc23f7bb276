#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: host failure recovery, selfheal's workflow versus Nova's floor.

On the lab's real Nova, for each N, two identical failed hosts with N
running instances each are healed, one after the other in the same run:

* **selfheal**: ``selfheal.host_failure.evacuate_host`` through Mistral, timed
  from execution-create to SUCCESS (input check, fencing, evacuation at
  microversion 2.94 so Nova keeps each power state, verification of every
  instance).
* **floor**: a bare script at microversion 2.94 (Nova keeps each power
  state) that forces the host down and evacuates with a sliding window of
  ``--floor-window`` evacuations in flight (10 by default: the best window
  of the peers benchmark's sweep at N=50), until every migration record is
  ``done`` (``floor.py``). The peers benchmark (``bench peers``) is the one
  that compares selfheal with a floor swept over windows, and with its peers.

Reported: both times, their ratio (target <= 1.2), and the Nova API requests
per instance of each, counted by the lab's Nova (target <= 4 for selfheal).
Ratios, not absolute times, are the result: the machine is shared.

With ``--power`` the lab runs its BMCs and selfheal's failed host has a
Redfish BMC: the run powers it off and waits for Off before fencing in Nova
(the floor does not), and the rows add the fence time, median and range
over the runs, measured twice:

* **action**: the flow's ``power.fence_seconds``, first power-off sent to
  Off confirmed, as the action saw it (its reads are ``power_poll_interval``
  apart, 1 s by default, so it is up to that much late);
* **BMC**: the BMC's own journal (``bmc.journal()``): the emulator received
  the ForceOff, then applied Off (the lab's sushy-emulator applies a reset
  1-11 s after it, at random, and only when the system is read).

Power runs write ``results/evacuation-power-latest.*`` (the other files keep
the runs without BMCs).

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
from selfheal_lab.tables import spread

try:  # imported as benchmarks.evacuation
    from benchmarks import floor as windowed
except ImportError:  # run as a script: this folder is sys.path[0]
    import floor as windowed

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WF = "selfheal.host_failure.evacuate_host"
FLOOR_POLL = 0.25
FLOOR_MICROVERSION = "2.94"


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


def moment(text):
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def bmc_fence_seconds(host):
    """Power-off received to Off applied, from the BMC's journal, or None."""
    journal = [e for e in bmc.journal(host) if e["power"] == "off"]
    asked = [moment(e["at"]) for e in journal if e["event"] == "requested"]
    applied = [moment(e["at"]) for e in journal if e["event"] == "applied"]
    if not asked or not applied:
        return None
    return (min(applied) - min(asked)).total_seconds()


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
    power = execution["output"].get("power") or {}
    return {"seconds": seconds, "requests": requests, "verified": verified,
            "fence_seconds": power.get("fence_seconds"),
            "switched": power.get("switched")}


def run_floor(cloud, host, servers, window):
    """The floor: force the host down, evacuate with a sliding window."""
    nova = cloud.nova(FLOOR_MICROVERSION)
    nova_box.reset_request_counts()
    started = time.monotonic()
    service = cloud.service(host)
    nova.services.force_down(service.id, True)

    def read():
        records = nova.migrations.list(source_compute=host, migration_type="evacuation")
        return ({m.instance_uuid for m in records if m.status == "done"},
                {m.instance_uuid for m in records if m.status in ("error", "failed")})

    used = windowed.run_window(servers, window, nova.servers.evacuate, read, poll=FLOOR_POLL,
                               timeout=900)["window"]
    seconds = time.monotonic() - started
    return {"seconds": seconds, "requests": nova_box.request_counts()["total"],
            "verified": 0, "window": used}


def measure(cloud, count, repeat, workflow_input, with_power=False, floor_window=10):
    rows = []
    run = uuid.uuid4().hex[:4]  # a kept lab remembers earlier runs' host names
    for i in range(repeat):
        ours_hosts, ours_servers = prepare(cloud, f"b{run}n{count}s{i}", count)
        if with_power:
            bmc.add_hosts([ours_hosts[0]])
        floor_hosts, floor_servers = prepare(cloud, f"b{run}n{count}f{i}", count)
        # alternate the order so neither always runs on a warmer Nova
        if i % 2:
            floor = run_floor(cloud, floor_hosts[0], floor_servers, floor_window)
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input)
        else:
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input)
            floor = run_floor(cloud, floor_hosts[0], floor_servers, floor_window)
        if with_power:
            ours["bmc_fence_seconds"] = bmc_fence_seconds(ours_hosts[0])
            if not ours["switched"]:
                raise RuntimeError(f"selfheal did not power {ours_hosts[0]} off: {ours}")
        cloud.remove_hosts(ours_hosts + floor_hosts)
        rows.append((ours, floor))
        fence = (f", fence {ours['fence_seconds']}s (BMC journal {ours['bmc_fence_seconds']}s)"
                 if with_power else "")
        print(f"  N={count} run {i + 1}: selfheal {ours['seconds']:.1f}s "
              f"({ours['requests']} requests{fence}), floor {floor['seconds']:.1f}s "
              f"({floor['requests']} requests)", file=sys.stderr, flush=True)
    ours_s = statistics.median(r[0]["seconds"] for r in rows)
    floor_s = statistics.median(r[1]["seconds"] for r in rows)
    return {
        "instances": count,
        "runs": repeat,
        "selfheal_seconds": round(ours_s, 2),
        "floor_seconds": round(floor_s, 2),
        "floor_window": rows[0][1]["window"],
        "ratio": round(ours_s / floor_s, 2),
        "selfheal_requests_per_instance": round(
            statistics.median(r[0]["requests"] for r in rows) / count, 2),
        "floor_requests_per_instance": round(
            statistics.median(r[1]["requests"] for r in rows) / count, 2),
        "selfheal_verified": min(r[0]["verified"] for r in rows),
        "selfheal_seconds_range": [round(min(r[0]["seconds"] for r in rows), 2),
                                   round(max(r[0]["seconds"] for r in rows), 2)],
        "selfheal_fence_seconds": (round(statistics.median(r[0]["fence_seconds"] for r in rows),
                                         2) if with_power else None),
        "fence_action": spread(r[0].get("fence_seconds") for r in rows) if with_power else None,
        "fence_bmc": (spread(r[0].get("bmc_fence_seconds") for r in rows) if with_power
                      else None),
    }


def _median_range(cell):
    if not cell:
        return "-"
    return f"{cell['median']:.1f} ({cell['min']:.1f}-{cell['max']:.1f})"


def table(results):
    head = ("N", "runs", "selfheal s", "fence s, action (range)", "fence s, BMC (range)",
            "floor s", "ratio (<=1.2)", "selfheal req/inst (<=4)", "floor req/inst",
            "verified")
    rows = [head] + [(str(r["instances"]), str(r["runs"]), f"{r['selfheal_seconds']:.1f}",
                      _median_range(r.get("fence_action")), _median_range(r.get("fence_bmc")),
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
    parser.add_argument("--floor-window", type=int, default=10,
                        help="the floor's evacuations in flight (default 10: the peers "
                             "sweep's best at N=50)")
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
            results.append(measure(cloud, count, args.repeat, workflow_input, args.power,
                                   args.floor_window))
    finally:
        if not args.keep_lab:
            lab.down()
    text = table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python3 tools/dev.py bench " + " ".join(argv or sys.argv[1:])
    meta = {"when": stamp, "command": command.strip(), "workflow_input": workflow_input,
            "floor": {"window": args.floor_window, "microversion": FLOOR_MICROVERSION},
            "results": results}
    name, title = "evacuation", "Host failure recovery: selfheal vs Nova's floor"
    if args.power:
        name = "evacuation-power"
        title = ("Host failure recovery with power fencing: selfheal (Redfish power-off "
                 "confirmed first) vs Nova's floor (no fencing)")
    (RESULTS / f"{name}-latest.json").write_text(json.dumps(meta, indent=2))
    (RESULTS / f"{name}-latest.md").write_text(
        f"# {title}\n\n{stamp}, `{meta['command']}`; the floor at microversion "
        f"{FLOOR_MICROVERSION}, window {args.floor_window} (N if smaller)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
