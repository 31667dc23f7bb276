#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: draining a host for maintenance, selfheal's workflow versus Nova's floor.

On the lab's real Nova, for each N, two identical hosts with N running
instances each are emptied, one after the other in the same run:

* **selfheal**: ``selfheal.maintenance.start_maintenance`` through Mistral,
  timed from execution-create to SUCCESS (plan, monitoring, disabling the
  service with its marker, live migrations through a concurrency window,
  verification of every instance).
* **floor**: a bare script that live-migrates with a sliding window of
  ``--floor-window`` migrations in flight (5 by default) and only waits until
  every ``live-migration`` record is ``completed`` (``floor.py``). Firing
  every migration at once, as it did before, overloads the lab's
  one-process Nova: selfheal then beat that "floor", which proved it was not
  one.

Reported: both times, their ratio (target <= 1.2), and the Nova API requests
per instance of each, counted by the lab's Nova. Ratios, not absolute times,
are the result: the machine is shared, and the lab's fake driver
(``fake.FakeLiveMigrateDriver``) takes about 5 s per live migration, which
Nova runs one at a time per source host (``max_concurrent_live_migrations``
defaults to 1) whoever asks.

    .venv/bin/python benchmarks/drain.py [--sizes 20 50] [--repeat 1]

With ``--rolling H``: a rolling maintenance of H hosts with N instances each
(``selfheal.maintenance.rolling_maintenance``, k = 1, a no-op work workflow
per host, every instance sent to one spare host), timed from execution-create
to SUCCESS, against the sum of H floors (the same bare script, host after
host), and the Nova API requests per instance of each:

    .venv/bin/python benchmarks/drain.py --rolling 3 --sizes 10
"""

import argparse
import datetime
import json
import os
import pathlib
import statistics
import sys
import time
import uuid

from selfheal_lab import lab
from selfheal_lab import scenario
from selfheal_lab import tables
from selfheal_lab.services import nova as nova_box

try:  # imported as benchmarks.drain
    from benchmarks import floor as windowed
except ImportError:  # run as a script: this folder is sys.path[0]
    import floor as windowed

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WF = "selfheal.maintenance.start_maintenance"
ROLLING = "selfheal.maintenance.rolling_maintenance"
NOOP_WORK = """---
version: '2.0'
bench_rolling_work:
  input:
    - host
  tasks:
    work:
      action: std.noop
"""
FLOOR_POLL = 0.25
FLOOR_WINDOW = 5


def prepare(cloud, tag, count):
    """Fresh hosts, ``count`` running servers on the first one."""
    hosts = cloud.add_hosts(f"{tag}-a", f"{tag}-b", f"{tag}-c")
    servers = cloud.boot_many(tag, hosts[0], count)
    return hosts, servers


def run_selfheal(cloud, host, servers, workflow_input, timeout):
    nova_box.reset_request_counts()
    started = time.monotonic()
    execution = cloud.run_workflow(WF, dict(workflow_input, host=host), timeout=timeout)
    seconds = time.monotonic() - started
    requests = nova_box.request_counts()["total"]
    if execution["state"] != "SUCCESS":
        raise RuntimeError(f"selfheal run failed: {json.dumps(execution.get('output'))[:2000]}")
    verified = execution["output"]["drain"]["totals"].get("migrated", 0)
    return {"seconds": seconds, "requests": requests, "verified": verified}


def run_floor(cloud, host, servers, timeout, window=FLOOR_WINDOW):
    """The floor: live migrations with a sliding window, until all completed."""
    nova = cloud.nova()
    nova_box.reset_request_counts()
    started = time.monotonic()

    def read():
        records = nova.migrations.list(source_compute=host, migration_type="live-migration")
        return ({m.instance_uuid for m in records if m.status == "completed"},
                {m.instance_uuid for m in records if m.status in ("error", "failed")})

    used = windowed.run_window(
        servers, window, lambda server_id: nova.servers.live_migrate(server_id, None, "auto"),
        read, poll=FLOOR_POLL, timeout=timeout)["window"]
    seconds = time.monotonic() - started
    return {"seconds": seconds, "requests": nova_box.request_counts()["total"],
            "verified": 0, "window": used}


def measure(cloud, count, repeat, workflow_input, floor_window=FLOOR_WINDOW):
    rows = []
    run = uuid.uuid4().hex[:4]  # a kept lab remembers earlier runs' host names
    timeout = 120 + 15 * count
    for i in range(repeat):
        ours_hosts, ours_servers = prepare(cloud, f"d{run}n{count}s{i}", count)
        floor_hosts, floor_servers = prepare(cloud, f"d{run}n{count}f{i}", count)
        # alternate the order so neither always runs on a warmer Nova
        if i % 2:
            floor = run_floor(cloud, floor_hosts[0], floor_servers, timeout, floor_window)
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input, timeout)
        else:
            ours = run_selfheal(cloud, ours_hosts[0], ours_servers, workflow_input, timeout)
            floor = run_floor(cloud, floor_hosts[0], floor_servers, timeout, floor_window)
        cloud.remove_hosts(ours_hosts + floor_hosts)
        rows.append((ours, floor))
        print(f"  N={count} run {i + 1}: selfheal {ours['seconds']:.1f}s "
              f"({ours['requests']} requests), floor {floor['seconds']:.1f}s "
              f"({floor['requests']} requests)", file=sys.stderr, flush=True)
    ours_s = statistics.median(r[0]["seconds"] for r in rows)
    ours_spread = tables.spread(r[0]["seconds"] for r in rows)
    floor_spread = tables.spread(r[1]["seconds"] for r in rows)
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
        "selfheal_seconds_spread": ours_spread,
        "floor_seconds_spread": floor_spread,
        "ratios": [round(o["seconds"] / f["seconds"], 2) for o, f in rows],
    }


def measure_rolling(cloud, hosts_count, count, workflow_input, floor_window=FLOOR_WINDOW):
    """One rolling maintenance of ``hosts_count`` hosts x ``count`` instances
    against the sum of as many floors, on identical fresh hosts."""
    from selfheal_lab import mistral_client

    try:
        mistral_client.create_workflows(cloud.mistral_url, NOOP_WORK)
    except mistral_client.MistralAPIError as error:
        if error.status != 409:
            raise
    run = uuid.uuid4().hex[:4]
    timeout = 300 + 20 * count * hosts_count
    names = [f"r{run}h{i}" for i in range(hosts_count)]
    hosts = cloud.add_hosts(*names, f"r{run}spare")
    servers = {h: cloud.boot_many(f"{h}v", h, count) for h in names}
    floor_names = [f"r{run}f{i}" for i in range(hosts_count)]
    floor_hosts = cloud.add_hosts(*floor_names, f"r{run}fspare")
    floor_servers = {h: cloud.boot_many(f"{h}v", h, count) for h in floor_names}
    try:
        nova_box.reset_request_counts()
        started = time.monotonic()
        execution = cloud.run_workflow(ROLLING, dict(
            workflow_input, hosts=names, name=f"bench-{run}", work_workflow="bench_rolling_work",
            target_hosts=[hosts[-1]]), timeout=timeout)
        ours_s = time.monotonic() - started
        ours_requests = nova_box.request_counts()["total"]
        if execution["state"] != "SUCCESS":
            raise RuntimeError(f"rolling run failed: {json.dumps(execution.get('output'))[:2000]}")
        verified = sum(1 for ids in servers.values() for sid in ids
                       if getattr(cloud.server(sid), "OS-EXT-SRV-ATTR:host") == hosts[-1]
                       and cloud.server(sid).status == "ACTIVE")
        floors = [run_floor(cloud, h, floor_servers[h], timeout, floor_window)
                  for h in floor_names]
    finally:
        cloud.remove_hosts(hosts + floor_hosts)
    total = hosts_count * count
    floor_s = sum(f["seconds"] for f in floors)
    print(f"  rolling {hosts_count}x{count}: selfheal {ours_s:.1f}s ({ours_requests} requests),"
          f" floors {floor_s:.1f}s", file=sys.stderr, flush=True)
    return {"hosts": hosts_count, "instances_per_host": count, "selfheal_seconds": round(ours_s, 2),
            "floor_seconds": round(floor_s, 2), "ratio": round(ours_s / floor_s, 2),
            "selfheal_requests_per_instance": round(ours_requests / total, 2),
            "floor_requests_per_instance": round(sum(f["requests"] for f in floors) / total, 2),
            "hosts_done": len(execution["output"]["status"]["done"]), "verified": verified}


def rolling_table(results):
    head = ("hosts x N", "selfheal s", "sum of floors s", "ratio", "selfheal req/inst",
            "floor req/inst", "hosts done", "on the spare, ACTIVE")
    rows = [head] + [(f"{r['hosts']} x {r['instances_per_host']}",
                      f"{r['selfheal_seconds']:.1f}", f"{r['floor_seconds']:.1f}",
                      f"{r['ratio']:.2f}", f"{r['selfheal_requests_per_instance']:.2f}",
                      f"{r['floor_requests_per_instance']:.2f}",
                      f"{r['hosts_done']}/{r['hosts']}",
                      f"{r['verified']}/{r['hosts'] * r['instances_per_host']}")
                     for r in results]
    return tables.format_table(rows, markdown=True)


def _median_range(cell):
    if not cell:
        return "-"
    return f"{cell['median']:.1f} ({cell['min']:.1f}-{cell['max']:.1f})"


def table(results):
    head = ("N", "runs", "selfheal s (min-max)", "floor s (min-max)", "ratio (<=1.2)",
            "ratio per run", "selfheal req/inst", "floor req/inst", "verified")
    rows = [head] + [(str(r["instances"]), str(r["runs"]),
                      _median_range(r.get("selfheal_seconds_spread")),
                      _median_range(r.get("floor_seconds_spread")), f"{r['ratio']:.2f}",
                      " ".join(f"{x:.2f}" for x in r.get("ratios", [])),
                      f"{r['selfheal_requests_per_instance']:.2f}",
                      f"{r['floor_requests_per_instance']:.2f}",
                      f"{r['selfheal_verified']}/{r['instances']}") for r in results]
    return tables.format_table(rows, markdown=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="selfheal's concurrency window (default: the workflow's)")
    parser.add_argument("--rolling", type=int, default=0, metavar="HOSTS",
                        help="measure a rolling maintenance of HOSTS hosts (N instances each)")
    parser.add_argument("--floor-window", type=int, default=FLOOR_WINDOW,
                        help="the floor's live migrations in flight")
    parser.add_argument("--keep-lab", action="store_true")
    parser.add_argument("--label", default="",
                        help="prefix of the result files and title (e.g. 'noisy-' for a "
                             "run on a loaded machine)")
    args = parser.parse_args(argv)
    workflow_input = {}
    if args.concurrency:
        workflow_input["concurrency"] = args.concurrency

    info = lab.up(driver="fake.FakeLiveMigrateDriver")
    if info["nova"]["driver"] != "fake.FakeLiveMigrateDriver":
        sys.exit(f"the running lab's Nova uses {info['nova']['driver']}, which cannot "
                 "live-migrate cleanly; stop the lab first")
    cloud = scenario.LabCloud()
    results = []
    load_before = round(os.getloadavg()[0], 2)
    try:
        for count in args.sizes:
            if args.rolling:
                results.append(measure_rolling(cloud, args.rolling, count, workflow_input,
                                               args.floor_window))
            else:
                results.append(measure(cloud, count, args.repeat, workflow_input,
                                       args.floor_window))
    finally:
        if not args.keep_lab:
            lab.down()
    text = rolling_table(results) if args.rolling else table(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python3 tools/dev.py bench drain " + " ".join(argv or sys.argv[1:])
    load = f"1-minute load average {load_before} at the start, {os.getloadavg()[0]:.2f} at the end"
    meta = {"when": stamp, "command": command.strip(), "load": load,
            "workflow_input": workflow_input, "floor": {"window": args.floor_window},
            "results": results}
    stem, title = (("drain-rolling", "Rolling maintenance: selfheal vs the sum of the "
                    "drains' floors") if args.rolling
                   else ("drain", "Drain for maintenance: selfheal vs Nova's floor"))
    if args.label:
        title += f" ({args.label.strip('-')} run)"
    (RESULTS / f"{stem}-{args.label}latest.json").write_text(json.dumps(meta, indent=2))
    (RESULTS / f"{stem}-{args.label}latest.md").write_text(
        f"# {title}\n\n{stamp}, `{meta['command']}`; {os.cpu_count()} cores, {load}; the "
        f"floor's window {args.floor_window} (N if smaller)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
