#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: a host dies, the watch heals it on its own, with Nova's production timings.

On the lab's real Mistral (the watch run by its cron trigger, ``* * * * *``
as in production), Nova in a box started with Nova's production heartbeat
timings (``report_interval`` 10 s, ``service_down_time`` 60 s), Prometheus
scraping one exporter per host, and a Redfish BMC per dead host, each run
kills hosts like a kernel panic (:func:`selfheal_lab.faults.kill_host`:
nova-compute crashes, the exporter goes dark, the BMC stays On) and times,
from the death:

* **decision**: the heal execution the watch started exists (Mistral's
  ``created_at``, whole seconds: up to 1 s early);
* **power off**: the BMC applied Off (the BMC box's journal);
* **first evacuation**: the first evacuation migration record of the dead
  host(s) (Nova's ``created_at``);
* **all verified**: every heal execution ended SUCCESS (its ``updated_at``,
  whole seconds too) with every instance evacuated and verified.

Two cases: **host** (one host with N instances) and **rack** (3 hosts
with N instances each, killed together), each for two watch settings:
**production** (the watch's defaults when first measured) and **tuned**
(its defaults since); every interval is in the
output. Heals go to three spare hosts (``target_hosts``) that the whole run
keeps. The death is placed at a fixed **phase** of the cron minute (seconds
after the trigger fires; default 3, 25 and 45 s, one per repetition, taken in
the order that waits least), and each run reports its phase: what the cron
phase costs shows between them.

Target (issue 17): first evacuation within 45 s of the death.

    python3 tools/dev.py bench watch [--repeat 3] [--instances 20]
        [--rack-instances N] [--cases host rack] [--settings production tuned]
        [--phases 3 25 45 | --random-phases] [--keep-lab]

Writes ``results/watch-latest.md`` and ``.json``.
"""

import argparse
import datetime
import json
import pathlib
import random
import sys
import time
import uuid

from selfheal_lab import faults
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import scenario
from selfheal_lab import tables
from selfheal_lab.services import bmc
from selfheal_lab.tables import spread
from selfheal_tools import install_watch

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WATCH = "selfheal.host_failure.watch"
HEAL = "selfheal.host_failure.evacuate_host"
PATTERN = "* * * * *"
TRIGGER_PERIOD = 60
#: Nova's production defaults (nova.conf [DEFAULT])
NOVA_TIMINGS = {"report_interval": 10, "service_down_time": 60}
#: the watch settings compared: "production" were the workflow's defaults
#: when first measured (2026-12-01); "tuned" has been the defaults since
SETTINGS = {
    "production": {"interval": 10, "period": 50, "samples": 3, "stale_after": 30},
    "tuned": {"interval": 5, "period": 55, "samples": 2, "stale_after": 25},
}
CASES = {"host": 1, "rack": 3}
SPARES = 3
TARGET_SECONDS = 45
#: the least time between choosing when to kill and the kill
MARGIN = 4.0
RUN_TIMEOUT = 360


# -- pure parts (tests/unit/test_bench_watch.py) ------------------------------

def moment(text):
    """A UTC datetime from Mistral's (``2026-12-01 22:25:03``), Nova's or an
    ISO timestamp; None for None."""
    if text is None:
        return None
    if isinstance(text, datetime.datetime):
        value = text
    else:
        value = datetime.datetime.fromisoformat(
            str(text).strip().replace("Z", "+00:00").replace(" ", "T"))
    if not value.tzinfo:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def seconds_after(start, then):
    return None if then is None else round((then - start).total_seconds(), 2)


def timeline(died, heals, journals, migrations, expected_hosts):
    """The run's milestones, in seconds after ``died``.

    :param died: when the first host was killed (datetime, UTC).
    :param heals: the heal executions of the dead hosts (Mistral's:
        ``input.host``, ``created_at``, ``updated_at``, ``state``).
    :param journals: ``{host: [BMC journal entries]}`` (``at``, ``event``,
        ``power``).
    :param migrations: ``{host: [evacuation migration created_at, ...]}``.
    :param expected_hosts: the hosts that died.
    :returns: ``decision_s`` (first heal created), ``last_decision_s``,
        ``power_off_s`` (first Off applied), ``last_power_off_s``,
        ``first_evacuation_s``, ``all_verified_s`` (the last heal's end, only
        when every dead host has a SUCCESS heal, else None), ``healed``
        (hosts with a SUCCESS heal), ``per_host``.
    """
    per_host = {}
    for host in expected_hosts:
        mine = sorted((h for h in heals if (h.get("input") or {}).get("host") == host),
                      key=lambda h: moment(h["created_at"]))
        heal = mine[0] if mine else None
        offs = [moment(e["at"]) for e in journals.get(host, [])
                if e.get("event") == "applied" and e.get("power") == "off"
                and moment(e["at"]) >= died]
        moves = [moment(m) for m in migrations.get(host, []) if m]
        per_host[host] = {
            "heals": len(mine),
            "state": heal and heal.get("state"),
            "decision_s": heal and seconds_after(died, moment(heal["created_at"])),
            "power_off_s": seconds_after(died, min(offs)) if offs else None,
            "first_evacuation_s": seconds_after(died, min(moves)) if moves else None,
            "ended_s": (seconds_after(died, moment(heal.get("updated_at")))
                        if heal and heal.get("state") != "RUNNING" else None),
        }

    def pick(key, choose):
        values = [v[key] for v in per_host.values() if v[key] is not None]
        return choose(values) if values else None

    healed = sorted(h for h, v in per_host.items() if v["state"] == "SUCCESS")
    return {
        "decision_s": pick("decision_s", min),
        "last_decision_s": pick("decision_s", max),
        "power_off_s": pick("power_off_s", min),
        "last_power_off_s": pick("power_off_s", max),
        "first_evacuation_s": pick("first_evacuation_s", min),
        "all_verified_s": (pick("ended_s", max) if len(healed) == len(per_host) else None),
        "healed": healed,
        "per_host": per_host,
    }


def cycle_offsets(interval, period):
    """When a watch execution observes, in seconds after it starts: every
    ``interval`` while another cycle still fits strictly inside ``period``
    (the action stops once ``elapsed + interval > period``, and a cycle
    takes a little time)."""
    offsets, at = [0], interval
    while at < period:
        offsets.append(at)
        at += interval
    return offsets


def blind_gap(interval, period, trigger_period=TRIGGER_PERIOD):
    """Seconds from a watch execution's last observation to the next
    execution's first (before the trigger's and Mistral's own latency)."""
    return trigger_period - cycle_offsets(interval, period)[-1]


def next_kill_at(now, phase, not_before=None, margin=MARGIN, period=TRIGGER_PERIOD):
    """The first time at ``phase`` seconds after a cron minute that is at
    least ``margin`` after ``now`` and in a minute that starts at or after
    ``not_before`` (the trigger's input changed then)."""
    minute = now.replace(second=0, microsecond=0)
    if not_before is not None:
        start = not_before.replace(second=0, microsecond=0)
        if start < not_before:
            start += datetime.timedelta(seconds=period)
        minute = max(minute, start)
    at = minute + datetime.timedelta(seconds=phase)
    while (at - now).total_seconds() < margin:
        at += datetime.timedelta(seconds=period)
    return at


def pick_phase(now, phases, not_before=None, margin=MARGIN):
    """``(phase, when)``: of the ``phases`` still to run, the one that comes first."""
    return min(((p, next_kill_at(now, p, not_before, margin)) for p in phases),
               key=lambda pair: (pair[1], pair[0]))


def cycle_wait(decision_s, last_report_s, settings):
    """Seconds the decision came after the earliest the watch could make it:
    Nova calls the host stale ``stale_after`` after its last report, and
    ``samples - 1`` more observations ``interval`` apart confirm it. What is
    left is the wait for a cycle (the cron phase, the blind gap between two
    executions, the trigger's latency) and starting the heal; None when a
    figure is missing."""
    if decision_s is None or last_report_s is None:
        return None
    earliest = last_report_s + settings["stale_after"] + (
        settings["samples"] - 1) * settings["interval"]
    return round(decision_s - earliest, 2)


def summarize(case, setting, runs):
    """One table row (dict) from the runs of one case and setting."""
    ok = [r for r in runs if not r.get("error")]
    firsts = [r["timeline"]["first_evacuation_s"] for r in ok]
    met = [f for f in firsts if f is not None and f <= TARGET_SECONDS]
    first = spread(firsts)
    return {
        "case": case, "setting": setting, "runs": len(runs), "failed_runs": len(runs) - len(ok),
        "instances": runs[0]["instances"] if runs else None,
        "hosts": runs[0]["hosts"] if runs else None,
        "phase_s": spread(r["phase_s"] for r in runs),
        "cycle_wait_s": spread(r.get("cycle_wait_s") for r in ok),
        "decision_s": spread(r["timeline"]["decision_s"] for r in ok),
        "last_decision_s": spread(r["timeline"]["last_decision_s"] for r in ok),
        "power_off_s": spread(r["timeline"]["power_off_s"] for r in ok),
        "first_evacuation_s": first,
        "all_verified_s": spread(r["timeline"]["all_verified_s"] for r in ok),
        "verified": sum(r.get("verified", 0) for r in ok),
        "expected": sum(r["instances"] * r["hosts"] for r in ok),
        "target_met_runs": len(met),
        "target_met_median": bool(first and first["median"] <= TARGET_SECONDS),
    }


def _cell(value):
    if not value:
        return "-"
    if value["min"] == value["max"]:
        return f"{value['median']:.1f}"
    return f"{value['median']:.1f} ({value['min']:.1f}-{value['max']:.1f})"


def watch_label(name, settings):
    return (f"{name} (interval {settings['interval']:g} s, period {settings['period']:g} s, "
            f"samples {settings['samples']}, stale_after {settings['stale_after']:g} s)")


def table(rows):
    """The summary, Markdown: medians with (min-max) over the runs."""
    head = ("case", "watch", "runs", "death phase s", "decision s", "last decision s",
            "power off s", "first evacuation s", "all verified s", "verified",
            f"first evacuation <= {TARGET_SECONDS} s")
    lines = [head]
    for r in rows:
        case = f"{r['case']} ({r['hosts']} x {r['instances']})"
        runs = str(r["runs"]) + (f" ({r['failed_runs']} failed)" if r["failed_runs"] else "")
        target = (f"{'yes' if r['target_met_median'] else 'no'} "
                  f"({r['target_met_runs']}/{r['runs']} runs)")
        lines.append((case, r["setting"], runs, _cell(r["phase_s"]), _cell(r["decision_s"]),
                      _cell(r["last_decision_s"]), _cell(r["power_off_s"]),
                      _cell(r["first_evacuation_s"]), _cell(r["all_verified_s"]),
                      f"{r['verified']}/{r['expected']}", target))
    return tables.format_table(lines, markdown=True)


def runs_table(runs):
    """Every run, Markdown: its phase and milestones."""
    head = ("case", "watch", "run", "phase s", "watch started s", "last report s",
            "decision s", "waited for a cycle s", "power off s", "first evacuation s",
            "all verified s", "signals at the decision")

    def fmt(value):
        return "-" if value is None else f"{value:.1f}"

    lines = [head]
    for r in runs:
        t = r.get("timeline") or {}
        lines.append((r["case"], r["setting"], str(r["run"]), fmt(r["phase_s"]),
                      fmt(r.get("watch_started_s")), fmt(r.get("last_report_s")),
                      fmt(t.get("decision_s")), fmt(r.get("cycle_wait_s")),
                      fmt(t.get("power_off_s")), fmt(t.get("first_evacuation_s")),
                      fmt(t.get("all_verified_s")),
                      r.get("error") or "; ".join(r.get("signals") or []) or "-"))
    return tables.format_table(lines, markdown=True)


# -- on the lab ---------------------------------------------------------------

def now():
    return datetime.datetime.now(datetime.timezone.utc)


def log(text):
    print(f"[{now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, cloud, spares, url):
        self.cloud, self.spares, self.url = cloud, spares, url

    def install(self, name):
        given = dict(SETTINGS[name], heal_input={"target_hosts": self.spares})
        result = install_watch.install_watch(self.url, pattern=PATTERN, watch_input=given)
        log(f"watch trigger {result['trigger']}: {PATTERN}, {watch_label(name, SETTINGS[name])}")
        return now()

    def heals(self, hosts):
        return [e for e in mistral_client.list_executions(self.url, HEAL)
                if (e.get("input") or {}).get("host") in hosts]

    def watch_at(self, moment_):
        """The newest watch execution created at or before ``moment_`` (with
        its output when it ended), or None."""
        before = [e for e in mistral_client.list_executions(self.url, WATCH)
                  if moment(e["created_at"]) <= moment_ + datetime.timedelta(seconds=1)]
        if not before:
            return None
        newest = max(before, key=lambda e: moment(e["created_at"]))
        return mistral_client.get_execution(self.url, newest["id"])

    def prepare(self, dead, count):
        self.cloud.add_hosts(*dead)
        return {h: self.cloud.boot_many(f"{h}-", h, count) for h in dead}

    def run(self, case, setting, index, dead, count, phases, not_before):
        """One death and its heal; the phase is the one of ``phases`` that
        comes first once the hosts are ready."""
        started = time.monotonic()
        self.prepare(dead, count)
        phase, kill_at = pick_phase(now(), phases, not_before)
        log(f"{case}/{setting} run {index}: {len(dead)} x {count} instances ready in "
            f"{time.monotonic() - started:.0f} s; kill at {kill_at:%H:%M:%S.%f} "
            f"(phase {phase} s)")
        time.sleep(max(0.0, (kill_at - now()).total_seconds()))
        died = now()
        for host in dead:
            faults.kill_host(host)
        record = {"case": case, "setting": setting, "run": index, "hosts": len(dead),
                  "instances": count, "dead": dead, "died": died.isoformat(),
                  "phase_target_s": phase, "phase_s": round(died.second + died.microsecond / 1e6,
                                                            2)}
        nova = self.cloud.nova()
        reports = [moment(s.updated_at) for s in nova.services.list(binary="nova-compute")
                   if s.host in dead and s.updated_at]
        record["last_report_s"] = seconds_after(died, max(reports)) if reports else None
        seen, ended = {}, None
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            heals = self.heals(dead)
            for h in heals:
                seen.setdefault(h["input"]["host"], seconds_after(died, now()))
            hosts_done = {h["input"]["host"] for h in heals if h["state"] != "RUNNING"}
            if hosts_done >= set(dead):
                ended = seconds_after(died, now())
                break
            if time.monotonic() > deadline:
                record["error"] = (f"not healed in {RUN_TIMEOUT} s: heals "
                                   f"{[(h['input']['host'], h['state']) for h in heals]}")
                break
            time.sleep(0.5)
        watch = self.watch_at(died)
        record["watch_started_s"] = watch and seconds_after(died, moment(watch["created_at"]))
        if watch and watch.get("state") != "RUNNING":
            cycles = (watch.get("output") or {}).get("cycles") or []
            record["watch_execution"] = {
                "id": watch["id"], "state": watch["state"], "cycles": len(cycles),
                "created_at": watch["created_at"], "updated_at": watch["updated_at"],
                "last_cycle_at": (watch.get("output") or {}).get("last_cycle_at")}
        record["seen_s"], record["ended_seen_s"] = seen, ended
        journals = {h: bmc.journal(h) for h in dead}
        migrations = {h: [m.created_at for m in nova.migrations.list(
            source_compute=h, migration_type="evacuation")] for h in dead}
        record["timeline"] = timeline(died, heals, journals, migrations, dead)
        record["cycle_wait_s"] = cycle_wait(record["timeline"]["decision_s"],
                                            record["last_report_s"], SETTINGS[setting])
        record["signals"] = [f"{(h.get('input') or {}).get('host')}: "
                             f"{(h.get('input') or {}).get('reason')}" for h in heals]
        record["heals"] = [{"id": h["id"], "host": h["input"]["host"], "state": h["state"],
                            "created_at": h["created_at"], "updated_at": h["updated_at"],
                            "concurrency": h["input"].get("concurrency")} for h in heals]
        verified = 0
        for h in heals:
            if h["state"] != "SUCCESS":
                full = mistral_client.get_execution(self.url, h["id"])
                record.setdefault("heal_errors", []).append(
                    json.dumps(full.get("output"))[:1500])
                continue
            full = mistral_client.get_execution(self.url, h["id"])
            verified += ((full.get("output") or {}).get("evacuation") or {}).get(
                "totals", {}).get("evacuated", 0)
        record["verified"] = verified
        if not record.get("error") and record["timeline"]["all_verified_s"] is None:
            record["error"] = f"heals not all SUCCESS: {record['heals']}"
        t = record["timeline"]
        log(f"  phase {record['phase_s']:.1f} s: decision {t['decision_s']} s, power off "
            f"{t['power_off_s']} s, first evacuation {t['first_evacuation_s']} s, all "
            f"verified {t['all_verified_s']} s ({verified}/{len(dead) * count} verified)"
            + (f"; ERROR {record['error']}" if record.get("error") else ""))
        self.clean(dead)
        return record

    def clean(self, dead):
        """Remove the dead hosts; delete what landed on the spares."""
        nova = self.cloud.nova()
        for server in nova.servers.list(search_opts={"all_tenants": True}):
            if getattr(server, "OS-EXT-SRV-ATTR:host", None) in self.spares:
                nova.servers.delete(server.id)
        self.cloud.remove_hosts(dead)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = [s for s in nova.servers.list(search_opts={"all_tenants": True})
                    if getattr(s, "OS-EXT-SRV-ATTR:host", None) in self.spares]
            if not left:
                break
            time.sleep(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instances", type=int, default=20,
                        help="instances per dead host (default 20)")
    parser.add_argument("--rack-instances", type=int, default=None,
                        help="instances per dead host in the rack case (default --instances)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["host", "rack"])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS),
                        default=["production", "tuned"])
    parser.add_argument("--phases", type=float, nargs="+", default=[3, 25, 45],
                        help="seconds after the cron minute at which the hosts die, one per "
                             "repetition (cycled)")
    parser.add_argument("--random-phases", action="store_true",
                        help="a random phase (0-59 s) per repetition instead")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep-lab", action="store_true")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    began = now()
    command = ("python3 tools/dev.py bench watch " + " ".join(
        sys.argv[1:] if argv is None else argv)).strip()
    log(f"lab up: Nova with report_interval {NOVA_TIMINGS['report_interval']} s, "
        f"service_down_time {NOVA_TIMINGS['service_down_time']} s; Prometheus; BMCs")
    info = lab.up_with(["prometheus", "bmc"], **NOVA_TIMINGS)
    nova_info = info["nova"]
    timings = {k: nova_info[k] for k in NOVA_TIMINGS}
    if timings != NOVA_TIMINGS:
        raise RuntimeError(f"the lab's Nova runs {timings}, not {NOVA_TIMINGS}")
    cloud = scenario.LabCloud()
    run_id = uuid.uuid4().hex[:3]
    spares = cloud.add_hosts(*[f"wb{run_id}-spare{i + 1}" for i in range(SPARES)])
    plan = []  # (setting, case, index, dead hosts, instances per host)
    for setting in args.settings:
        for case in args.cases:
            count = (args.rack_instances or args.instances) if case == "rack" \
                else args.instances
            for index in range(1, args.repeat + 1):
                tag = f"wb{run_id}{setting[0]}{case[0]}{index}"
                plan.append((setting, case, index,
                             [f"{tag}-{chr(ord('a') + i)}" for i in range(CASES[case])], count))
    bmc.add_hosts([h for step in plan for h in step[3]])  # one restart of the BMCs
    bench = Bench(cloud, spares, cloud.mistral_url)
    runs = []
    try:
        for setting in args.settings:
            not_before = bench.install(setting)
            for case in args.cases:
                phases = ([rng.uniform(0, 59) for _ in range(args.repeat)]
                          if args.random_phases else
                          [args.phases[i % len(args.phases)] for i in range(args.repeat)])
                phases = [round(p, 1) for p in phases]
                for s_, c_, index, dead, count in plan:
                    if (s_, c_) != (setting, case):
                        continue
                    try:
                        record = bench.run(case, setting, index, dead, count, phases,
                                           not_before)
                    except Exception as error:  # reported in the results, the next runs go on
                        log(f"{case}/{setting} run {index} failed: {error!r}")
                        record = {"case": case, "setting": setting, "run": index,
                                  "hosts": len(dead), "instances": count, "dead": dead,
                                  "phase_target_s": None, "phase_s": None,
                                  "error": f"{type(error).__name__}: {str(error)[:300]}"}
                        try:
                            bench.clean(dead)
                        except Exception as again:
                            log(f"  and its clean-up failed: {again!r}")
                    if record["phase_target_s"] in phases:
                        phases.remove(record["phase_target_s"])
                    runs.append(record)
                    report(began, command, args, runs)  # what ran so far, if stopped
    finally:
        try:
            mistral_client._request("DELETE", f"{cloud.mistral_url}/cron_triggers/"
                                              "selfheal-watch")
        except mistral_client.MistralAPIError:
            pass
        if not args.keep_lab:
            lab.down()
    summary, detail = report(began, command, args, runs)
    print(summary)
    print()
    print(detail)
    return 0 if runs and not any(r.get("error") for r in runs) else 1


def report(began, command, args, runs):
    """Write the results files from ``runs``; returns both tables."""
    rows = [summarize(case, setting, [r for r in runs
                                      if r["case"] == case and r["setting"] == setting])
            for setting in args.settings for case in args.cases]
    return write(began, command, args, [r for r in rows if r["runs"]], runs)


def legend(args):
    lines = [f"Nova: report_interval {NOVA_TIMINGS['report_interval']} s, service_down_time "
             f"{NOVA_TIMINGS['service_down_time']} s (production defaults). Cron trigger "
             f"`{PATTERN}`. Prometheus scrapes every 1 s (the lab's). Power fencing through "
             "the lab's Redfish emulator (it applies a reset 1-11 s after it, at random)."]
    for name in args.settings:
        s = SETTINGS[name]
        offsets = cycle_offsets(s["interval"], s["period"])
        lines.append(f"Watch {watch_label(name, s)}: observes at {offsets[0]}-{offsets[-1]} "
                     f"s of each execution, blind {blind_gap(s['interval'], s['period'])} s "
                     "per minute (plus the trigger's latency); other inputs the workflow's "
                     "defaults (max_starts 2, budget 20, per_host_concurrency 10), "
                     "target_hosts: 3 spare hosts")
    lines.append("Times in seconds after the death (Mistral keeps whole seconds: decision "
                 "and all verified are up to 1 s early; the JSON has when the benchmark saw "
                 "them, seen_s and ended_seen_s); "
                 "median (min-max). Phase: seconds after the cron minute at the death. "
                 "Watch started: the watch execution running at the death (or the last "
                 "before it), created that long before. Last report: the dead host's last "
                 "heartbeat in Nova. Waited for a cycle: the decision minus the earliest "
                 "possible one (last report + stale_after + (samples - 1) x interval): "
                 "what the cron phase, the gap between executions and starting the heal "
                 "cost.")
    return "\n\n".join(lines)


def write(began, command, args, rows, runs):
    summary, detail = table(rows), runs_table(runs)
    RESULTS.mkdir(exist_ok=True)
    stamp = began.strftime("%Y%m%dT%H%M%SZ")
    meta = {"when": stamp, "finished": now().strftime("%Y%m%dT%H%M%SZ"), "command": command,
            "nova": NOVA_TIMINGS, "pattern": PATTERN,
            "watch": {name: SETTINGS[name] for name in args.settings},
            "instances": args.instances, "rack_instances": args.rack_instances or args.instances,
            "repeat": args.repeat, "phases": None if args.random_phases else args.phases,
            "target_seconds": TARGET_SECONDS, "results": rows, "runs": runs}
    (RESULTS / "watch-latest.json").write_text(json.dumps(meta, indent=2, default=str))
    (RESULTS / "watch-latest.md").write_text(
        "# The watch on its own: host death to healed, Nova's production timings\n\n"
        f"{stamp}, `{command}`\n\n{legend(args)}\n\n{summary}\n\nEvery run:\n\n{detail}\n")
    return summary, detail


if __name__ == "__main__":
    sys.exit(main())
