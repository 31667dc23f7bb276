#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: from a monitor's alarm to the healing execution in Mistral.

On the lab, a host fails, a NIC-down Doctor event for it is posted through
Vitrage's event API (``POST /v1/event`` with the body python-vitrageclient's
``event.post`` sends, on the lab's Vitrage box: vitrage-graph's
``EventApis.post`` path to the Doctor datasource and Vitrage's real
evaluator), and the clock runs until the execution of
``selfheal.host_failure.evacuate_host`` for that host exists in Mistral
(polled every 10 ms over Mistral's API). The target is under 1 s: the OPNFV
Doctor requirement from fault detection to notification of the consumer.
Median of several runs, each on fresh hosts.

    .venv/bin/python benchmarks/alarm_latency.py [--runs 5]
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
from selfheal_lab import mistral_client
from selfheal_lab import scenario
from selfheal_lab.services import vitrage

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WF = "selfheal.host_failure.evacuate_host"


def one_run(cloud, tag):
    hosts = cloud.add_hosts(f"{tag}-a", f"{tag}-b")
    cloud.boot(f"{tag}-vm", hosts[0])
    cloud.fail_host(hosts[0])
    vitrage.refresh()
    started = time.monotonic()
    vitrage.post_api_event("nic.down", hosts[0])
    while True:
        found = [e for e in mistral_client.list_executions(cloud.mistral_url, WF)
                 if (e.get("input") or {}).get("host") == hosts[0]]
        if found:
            latency = time.monotonic() - started
            break
        if time.monotonic() - started > 30:
            raise RuntimeError(f"no execution for {hosts[0]} after 30 s: "
                               f"{vitrage.notifications()}")
        time.sleep(0.01)
    cloud.wait_workflow(found[0]["id"], timeout=300)
    cloud.remove_hosts(hosts)
    return latency


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep-lab", action="store_true")
    args = parser.parse_args(argv)
    lab.up()
    lab.up_vitrage()
    cloud = scenario.LabCloud()
    run = uuid.uuid4().hex[:4]
    try:
        latencies = [one_run(cloud, f"lat{run}{i}") for i in range(args.runs)]
    finally:
        if not args.keep_lab:
            lab.down()
    median = statistics.median(latencies)
    line = (f"alarm -> Mistral execution: median {median * 1000:.0f} ms over {args.runs} runs "
            f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f}); "
            f"target < 1000 ms")
    print(line)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / "alarm-latency-latest.json").write_text(json.dumps(
        {"when": stamp, "runs": args.runs, "median_seconds": round(median, 3),
         "latencies_seconds": [round(x, 3) for x in latencies]}, indent=2))
    (RESULTS / "alarm-latency-latest.md").write_text(
        f"# Vitrage alarm to Mistral execution\n\n{stamp}: {line}\n\n"
        "The event posted through the Vitrage box's ``POST /v1/event`` (python-vitrageclient's "
        f"body); {os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.2f} at "
        "the end.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
