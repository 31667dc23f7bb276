# SPDX-License-Identifier: Apache-2.0
"""The peers selfheal is measured against, run on the lab's real Nova.

* :func:`run_masakari`: Masakari 22's own host-failure recovery flow
  (``benchmarks/masakari_runner.py`` in the ``masakari`` venv), with only its
  Keystone-login client factory pointed at the lab's Nova.
* :func:`run_naive`: what users write today from mistral-extra's generated
  actions, as a Mistral workflow on the lab's Mistral: find the service,
  force it down, list the host's servers, evacuate them with-items. No
  verification. mistral-extra is not in the lab, so each action is a
  ``std.http`` call with what its generated action would send (the
  microversion mistral-extra discovers: the newest both novaclient 18.13 and
  Nova 34 know, 2.96).
* :func:`correctness`: what Nova's own records say afterwards.

Every function takes a :class:`selfheal_lab.scenario.LabCloud`, a failed
host and the ids of the servers that were on it. Stdlib and lab modules only
(matplotlib, the ``bench`` extra, only for the plot).

Run as a script, :func:`main` is the peers benchmark: every contender
(selfheal, Masakari defaults and tuned, the naive workflow, Nova's floor) on
its own fresh hosts with identically booted servers, optionally with faults
(failed evacuations plus a duplicate trigger); it writes
``results/peers-latest.{md,json,png}``::

    python benchmarks/peers.py --sizes 10 50 100 --stopped-share 0.2 \
        --masakari-defaults-sizes 10 --faults
Requests are counted by the lab's Nova for the whole box: nothing else should
use the lab's Nova during a measurement.
"""

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import threading
import time
import uuid

from selfheal_lab import lab
from selfheal_lab import mistral_client as mistral
from selfheal_lab import scenario
from selfheal_lab import state
from selfheal_lab import tables
from selfheal_lab import venvs
from selfheal_lab.services import nova as nova_box

try:  # imported as benchmarks.peers
    from benchmarks import evacuation
except ImportError:  # run as a script: this folder is sys.path[0]
    import evacuation

RUNNER = pathlib.Path(__file__).resolve().parent / "masakari_runner.py"
NAIVE_WORKBOOK = "peers_naive"
NAIVE_WF = f"{NAIVE_WORKBOOK}.evacuate_host"
# mistral-extra's NovaAction discovers "2.latest": min(novaclient 18.13 max,
# Nova 34 max) = 2.96.
NAIVE_MICROVERSION = "2.96"
POLL = 0.25
POLL_ROUTE = "GET /os-migrations"


def _counts():
    return nova_box.request_counts()


# --- Masakari -----------------------------------------------------------------

def run_masakari(cloud, host, servers, tuned, threads, mode="auto", reserved_hosts=(),
                 timeout=1800):
    """Heal ``host`` with Masakari's real host-failure flow.

    Starts only once Nova reports the host down (Masakari never forces it
    down; disabling a service Nova still counts up blocks on RPC).

    :param tuned: waits cut to what Nova needs (no 180 s sleep after the
        disable) and ``threads`` recovery threads; False: Masakari's defaults
        (180 s sleep, 3 threads, 1 s verify interval, 90 s evacuation timeout).
    :param mode: ``auto`` or ``reserved_host`` (then ``reserved_hosts``).
    :returns: ``{"seconds", "requests", "ok", "error"}`` plus ``wall_seconds``
        (with the runner's start-up: interpreter, imports, sqlite schema),
        ``by_route``, ``vmoves`` (Masakari's own per-instance records) and
        ``log``. ``seconds`` is the flow alone, as a running masakari-engine
        would spend it.
    """
    python = venvs.ensure("masakari")
    cloud.wait_services([host], "down", timeout=120)
    run_dir = state.service_dir("masakari") / "runs" / f"{host}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    argv = [str(python), str(RUNNER),
            "--compute-url", cloud.nova_info["compute_url"],
            "--headers", json.dumps(cloud.nova_info["headers"]),
            "--host", host, "--mode", mode,
            "--reserved-hosts", ",".join(reserved_hosts),
            "--threads", str(threads), "--state-dir", str(run_dir)]
    if tuned:
        argv.append("--tuned")
    nova_box.reset_request_counts()
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              cwd=str(run_dir))
    except subprocess.TimeoutExpired:
        counts = _counts()
        return {"seconds": None, "wall_seconds": time.monotonic() - started,
                "requests": counts["total"], "by_route": counts["by_route"], "ok": False,
                "error": f"masakari runner still running after {timeout} s (killed)",
                "log": str(run_dir / "masakari.log")}
    wall = time.monotonic() - started
    counts = _counts()
    (run_dir / "runner.stderr").write_text(proc.stderr)
    result = None
    for line in reversed(proc.stdout.splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if not isinstance(result, dict):
        result = {"seconds": None, "ok": False,
                  "error": f"runner exited {proc.returncode} without a result: "
                           f"{(proc.stderr or proc.stdout)[-1500:]}"}
    result.update(wall_seconds=round(wall, 3), requests=counts["total"],
                  by_route=counts["by_route"], log=str(run_dir / "masakari.log"))
    return result


# --- naive Mistral workflow ----------------------------------------------------

def naive_workbook():
    """The workflow a user writes from mistral-extra's generated actions.

    One task per action: ``nova.services_list`` (force-down needs the
    service id), ``nova.services_force_down``, ``nova.servers_list``,
    ``nova.servers_evacuate`` with-items. Each is a ``std.http`` call here.
    """
    return f"""---
version: '2.0'
name: {NAIVE_WORKBOOK}
description: >
  Host evacuation as written from mistral-extra's generated Nova actions
  (benchmark peer; std.http stands in for the actions). No verification.
workflows:
  evacuate_host:
    input:
      - host
      - compute_url
      - headers
    vars:
      h: >-
        <% $.headers + {{"X-OpenStack-Nova-API-Version" => "{NAIVE_MICROVERSION}",
        "Content-Type" => "application/json"}} %>
    tasks:
      services_list:
        action: std.http
        input:
          url: <% $.compute_url %>/os-services
          params:
            binary: nova-compute
            host: <% $.host %>
          headers: <% $.h %>
        publish:
          service_id: <% task().result.content.services[0].id %>
        on-success: services_force_down
      services_force_down:
        action: std.http
        input:
          url: <% $.compute_url %>/os-services/<% $.service_id %>
          method: PUT
          json:
            forced_down: true
          headers: <% $.h %>
        on-success: servers_list
      servers_list:
        action: std.http
        input:
          url: <% $.compute_url %>/servers/detail
          params:
            all_tenants: "True"
            host: <% $.host %>
          headers: <% $.h %>
        publish:
          server_ids: <% task().result.content.servers.select($.id) %>
        on-success: servers_evacuate
      servers_evacuate:
        with-items: server_id in <% $.server_ids %>
        action: std.http
        input:
          url: <% $.compute_url %>/servers/<% $.server_id %>/action
          method: POST
          json:
            evacuate: {{}}
          headers: <% $.h %>
"""


def _evacuations_done(nova, host, wanted):
    """(done ids, error ids) of evacuations from ``host`` among ``wanted``."""
    done, failed = set(), set()
    for m in nova.migrations.list(source_compute=host, migration_type="evacuation"):
        if m.instance_uuid in wanted:
            if m.status == "done":
                done.add(m.instance_uuid)
            elif m.status in ("error", "failed"):
                failed.add(m.instance_uuid)
    return done, failed


def run_naive(cloud, host, servers, timeout=600):
    """Heal ``host`` with the naive workflow; time it until Nova has finished.

    The workflow ends when the last evacuate call is accepted; Nova works on
    in the background. The clock stops when every server has a ``done``
    evacuation migration (or one ended in error), polled from here every
    0.25 s; those polls (``GET /os-migrations``) are not counted.

    :returns: ``{"seconds", "requests", "ok", "error"}`` plus
        ``workflow_seconds`` (until Mistral said SUCCESS), ``by_route``,
        ``poll_requests`` and ``discovery_requests``: the version-discovery
        GET mistral-extra's Nova actions make per action execution, not
        sent by std.http (add it for the real actions' cost).
    """
    mistral.create_or_update_workbook(cloud.mistral_url, naive_workbook())
    nova = cloud.nova()
    wanted = set(servers)
    nova_box.reset_request_counts()
    started = time.monotonic()
    execution = mistral.create_execution(cloud.mistral_url, NAIVE_WF, {
        "host": host, "compute_url": cloud.nova_info["compute_url"],
        "headers": cloud.nova_info["headers"]})
    workflow_seconds = None
    wf_state, error = None, None
    done = failed = set()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if workflow_seconds is None:
            ex = mistral.get_execution(cloud.mistral_url, execution["id"])
            if ex["state"] in ("SUCCESS", "ERROR", "CANCELLED"):
                workflow_seconds = time.monotonic() - started
                wf_state = ex["state"]
                if wf_state != "SUCCESS":
                    error = f"workflow {wf_state}: {ex.get('state_info')}"
                    break
        done, failed = _evacuations_done(nova, host, wanted)
        if done | failed >= wanted and workflow_seconds is not None:
            break
        time.sleep(POLL)
    else:
        error = f"not finished after {timeout} s: {len(done)}/{len(wanted)} done"
    seconds = time.monotonic() - started
    counts = _counts()
    polls = counts["by_route"].get(POLL_ROUTE, 0)
    if failed and not error:
        error = f"{len(failed)} evacuation(s) ended in error"
    return {"seconds": round(seconds, 3),
            "workflow_seconds": None if workflow_seconds is None else round(workflow_seconds, 3),
            "requests": counts["total"] - polls, "poll_requests": polls,
            "discovery_requests": 3 + len(servers),
            "by_route": {k: v for k, v in counts["by_route"].items() if k != POLL_ROUTE},
            "ok": error is None and done >= wanted, "error": error,
            "execution_id": execution["id"]}


# --- correctness ---------------------------------------------------------------

def correctness(cloud, host, servers, expected_power):
    """What Nova's records say about ``servers`` after a recovery of ``host``.

    :param expected_power: the status each server should have now
        (``"ACTIVE"``, ``"SHUTOFF"``), one for all or a ``{id: status}`` dict.
    :returns: ``{"left_on_dead_host", "wrong_power_state", "evacuated_twice"}``
        as counts, and ``details`` with the server ids of each (a server
        that is gone counts as wrong power state).
    """
    nova = cloud.nova()
    left, wrong, twice = [], [], []
    for server_id in servers:
        want = expected_power.get(server_id) if isinstance(expected_power, dict) \
            else expected_power
        try:
            server = nova.servers.get(server_id)
        except Exception:  # novaclient NotFound; keep this module client-agnostic
            wrong.append(server_id)
            continue
        if getattr(server, "OS-EXT-SRV-ATTR:host", None) == host:
            left.append(server_id)
        if want and server.status != want:
            wrong.append(server_id)
        records = cloud.evacuations(server_id)
        if len(records) > 1:
            twice.append(server_id)
    return {"left_on_dead_host": len(left), "wrong_power_state": len(wrong),
            "evacuated_twice": len(twice),
            "details": {"left_on_dead_host": left, "wrong_power_state": wrong,
                        "evacuated_twice": twice}}


# --- the benchmark --------------------------------------------------------------

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# run in this order: the slow Masakari defaults last
CONTENDERS = ("floor", "selfheal", "masakari-tuned", "naive", "masakari-defaults")
SETTLED = ("done", "error", "failed")
FAULT_SHARE = 0.1
# selfheal's own ceiling (default 600 s), cut so that an evacuation the
# shared lab loses cannot hold the benchmark for 10 minutes
SELFHEAL_TIMEOUT = 300


def _log(message):
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _records(cloud, servers):
    """Every evacuation record of each server, oldest first: ``{id: [(status, dest)]}``."""
    return {s: [(m.status, m.dest_compute) for m in _sorted_records(cloud, s)] for s in servers}


def _sorted_records(cloud, server_id):
    return sorted(cloud.evacuations(server_id), key=lambda m: (m.created_at, m.id))


def _evacuated_twice(migrations):
    """A later evacuation was asked while an earlier one had not failed.

    A retry after a failure that had already ended is not a double
    evacuation; a second request while the first was still running is, even
    when Nova then fails the first one.
    """
    for earlier, later in zip(migrations, migrations[1:], strict=False):
        if earlier.status not in ("error", "failed") or earlier.updated_at > later.created_at:
            return True
    return False


def _wait_settled(cloud, servers, timeout):
    """Until each server has an evacuation record and none is still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        records = _records(cloud, servers)
        if all(r and all(st in SETTLED for st, _ in r) for r in records.values()):
            return records
        if time.monotonic() > deadline:
            return records
        time.sleep(1)


def truth(cloud, hosts, servers, expected):
    """What Nova's records say, after every evacuation in flight has ended.

    ``evacuated_twice``: see :func:`_evacuated_twice`;
    ``failed_attempts``: evacuation records in error. ``recovered``: off the
    dead host, in the power state it had before, not in ERROR. ``elsewhere``:
    servers that ended on a host not among this run's fresh hosts (the lab
    is shared; its scheduler may pick any host that is up).
    """
    host = hosts[0]
    records = _wait_settled(cloud, servers, timeout=20)
    by_id = {s.id: s for s in cloud.nova().servers.list(search_opts={"all_tenants": True})}
    left, wrong, twice, recovered, in_flight, elsewhere = [], [], [], [], [], []
    for server_id in servers:
        server = by_id.get(server_id)
        on_host = getattr(server, "OS-EXT-SRV-ATTR:host", None) if server else None
        status = server.status if server else "MISSING"
        if on_host == host:
            left.append(server_id)
        elif on_host not in hosts:
            elsewhere.append(server_id)
        if status != expected[server_id]:
            wrong.append(server_id)
        if on_host != host and status == expected[server_id]:
            recovered.append(server_id)
        if _evacuated_twice(_sorted_records(cloud, server_id)):
            twice.append(server_id)
        if any(st not in SETTLED for st, _ in records[server_id]):
            in_flight.append(server_id)
    failed_attempts = sum(1 for r in records.values() for st, _ in r if st in ("error", "failed"))
    return {"recovered": len(recovered), "left_on_dead_host": len(left),
            "wrong_power_state": len(wrong), "evacuated_twice": len(twice),
            "real_failures": len(servers) - len(recovered),
            "failed_attempts": failed_attempts, "still_in_flight": len(in_flight),
            "elsewhere": len(elsewhere),
            "record_statuses": {st: sum(1 for r in records.values() for s, _ in r if s == st)
                                for st in {s for r in records.values() for s, _ in r}},
            "details": {"elsewhere": elsewhere, "left_on_dead_host": left,
                        "wrong_power_state": wrong, "evacuated_twice": twice,
                        "still_in_flight": in_flight}}


# what each contender says when it ends: ok (None: says nothing),
# reported_failures (None: no count given), said (a short quote)

def _selfheal_report(execution):
    output = execution.get("output") or {}
    if execution["state"] == "SUCCESS":
        totals = (output.get("evacuation") or {}).get("totals")
        return {"ok": True, "reported_failures": 0, "said": f"SUCCESS {totals}"}
    error = output.get("error") or {}
    totals = (error.get("details") or {}).get("totals")
    failures = None if totals is None else totals.get("failed", 0) + totals.get("timed_out", 0)
    return {"ok": False, "reported_failures": failures,
            "said": f"{execution['state']} at {output.get('failed_step')}: "
                    f"{error.get('reason')} {totals or ''}".strip()}


def _masakari_report(result):
    vmoves = result.get("vmoves") or {}
    if result.get("ok"):
        return {"ok": True, "reported_failures": 0, "said": f"ok, vmoves {vmoves}"}
    return {"ok": False, "reported_failures": vmoves.get("failed") if vmoves else None,
            "said": f"error, vmoves {vmoves}: {str(result.get('error'))[:160]}"}


def _naive_report(cloud, execution_id):
    ex = mistral.get_execution(cloud.mistral_url, execution_id)
    ok = ex["state"] == "SUCCESS"
    return {"ok": ok, "reported_failures": 0 if ok else None,
            "said": ex["state"] + ("" if ok else f": {str(ex.get('state_info'))[:160]}")}


def _floor_fire(cloud, host, servers):
    """The floor script's requests, tolerating Nova's refusals (duplicates)."""
    nova = cloud.nova()
    try:
        nova.services.force_down(cloud.service(host).id, True)
    except Exception:  # novaclient errors; the other script may have done it
        pass
    refused = 0
    for server_id in servers:
        try:
            nova.servers.evacuate(server_id)
        except Exception:
            refused += 1
    return {"ok": None, "reported_failures": None,
            "said": f"says nothing ({refused} evacuate call(s) refused by Nova)"}


def _wait_migrations(cloud, host, servers, timeout=90):
    """Until each server has a done or failed evacuation from ``host`` and
    none from ``host`` is still in flight (what the floor script waits for)."""
    nova = cloud.nova()
    wanted = set(servers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = [m for m in nova.migrations.list(source_compute=host, migration_type="evacuation")
              if m.instance_uuid in wanted]
        ended = {m.instance_uuid for m in ms if m.status in SETTLED}
        if ended >= wanted and all(m.status in SETTLED for m in ms):
            return True
        time.sleep(POLL)
    return False


def _expected(servers, stopped):
    return {s: ("SHUTOFF" if i < stopped else "ACTIVE") for i, s in enumerate(servers)}


def run_clean(cloud, name, count, stopped, args):
    """One contender, no faults, on fresh hosts: the timing row."""
    tag = f"p{uuid.uuid4().hex[:5]}{name[:2]}{count}"
    hosts, servers = evacuation.prepare(cloud, tag, count, stopped)
    host = hosts[0]
    wf_input = {"concurrency": args.concurrency, "timeout": SELFHEAL_TIMEOUT}
    row = {"scenario": "clean", "contender": name, "instances": count, "stopped": stopped}
    if name == "selfheal":
        try:
            r = evacuation.run_selfheal(cloud, host, servers, wf_input)
            report = {"ok": True, "reported_failures": 0, "said": "SUCCESS"}
        except RuntimeError as e:
            r = {"seconds": None, "requests": nova_box.request_counts()["total"]}
            report = {"ok": False, "reported_failures": None, "said": str(e)[:200]}
    elif name.startswith("masakari"):
        tuned = name == "masakari-tuned"
        r = run_masakari(cloud, host, servers, tuned=tuned, threads=args.concurrency)
        report = _masakari_report(r)
        row["masakari_wall_seconds"] = r.get("wall_seconds")
    elif name == "naive":
        r = run_naive(cloud, host, servers, timeout=120)
        report = _naive_report(cloud, r["execution_id"])
        row["naive_workflow_seconds"] = r.get("workflow_seconds")
    else:
        # evacuation.run_floor's requests, but its wait is bounded: an
        # evacuation the shared lab loses (its target host torn down by
        # another user) must not hang the benchmark
        nova_box.reset_request_counts()
        started = time.monotonic()
        report = _floor_fire(cloud, host, servers)
        settled = _wait_migrations(cloud, host, servers)
        r = {"seconds": time.monotonic() - started,
             "requests": nova_box.request_counts()["total"]}
        if not settled:
            report["said"] += "; NOT settled after 90 s"
    row.update(seconds=None if r.get("seconds") is None else round(r["seconds"], 2),
               requests=r["requests"], reports=[report])
    row.update(truth(cloud, hosts, servers, _expected(servers, stopped)))
    cloud.remove_hosts(hosts)
    return row


def run_faulty(cloud, name, count, stopped, args):
    """One contender with ~10 % of its evacuations failing and a duplicate trigger.

    The failures are spawn failures injected on the two destination hosts
    right before the run (split between them); nothing else spawns there
    (the servers were booted on the failed host), so each one hits an
    evacuation rebuild, whose migration then ends in error.
    """
    tag = f"p{uuid.uuid4().hex[:5]}{name[:2]}{count}x"
    hosts, servers = evacuation.prepare(cloud, tag, count, stopped)
    host = hosts[0]
    n_fail = max(1, round(FAULT_SHARE * count))
    injected = {}
    for i in range(n_fail):
        dest = hosts[1 + i % 2]
        injected[dest] = injected.get(dest, 0) + 1
    for dest, n in injected.items():
        nova_box.inject_spawn_failures(dest, n)
    if name == "naive":
        mistral.create_or_update_workbook(cloud.mistral_url, naive_workbook())
    reports, flow_seconds = [None, None], [None, None]

    def trigger(i):
        try:
            if name == "selfheal":
                ex = cloud.run_workflow(evacuation.WF, {
                    "host": host, "concurrency": args.concurrency,
                    "timeout": SELFHEAL_TIMEOUT}, timeout=900, max_poll=POLL)
                reports[i] = _selfheal_report(ex)
            elif name.startswith("masakari"):
                r = run_masakari(cloud, host, servers, tuned=name == "masakari-tuned",
                                 threads=args.concurrency)
                flow_seconds[i] = r.get("seconds")
                reports[i] = _masakari_report(r)
            elif name == "naive":
                ex = mistral.create_execution(cloud.mistral_url, NAIVE_WF, {
                    "host": host, "compute_url": cloud.nova_info["compute_url"],
                    "headers": cloud.nova_info["headers"]})
                mistral.wait_execution(cloud.mistral_url, ex["id"], timeout=600)
                reports[i] = _naive_report(cloud, ex["id"])
            else:
                reports[i] = _floor_fire(cloud, host, servers)
        except Exception as e:  # a contender blowing up is a result too
            reports[i] = {"ok": False, "reported_failures": None,
                          "said": f"harness: {type(e).__name__}: {str(e)[:160]}"}

    nova_finished = True
    nova_box.reset_request_counts()
    started = time.monotonic()
    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    counts = nova_box.request_counts()
    requests = counts["total"]
    if name in ("naive", "floor"):  # measured until Nova has finished
        nova_finished = _wait_migrations(cloud, host, servers)
        seconds = time.monotonic() - started
        counts = nova_box.request_counts()
        polls = counts["by_route"].get(POLL_ROUTE, 0) if name == "naive" else 0
        requests = counts["total"] - polls
    elif name.startswith("masakari") and all(flow_seconds):
        seconds = max(flow_seconds)  # the flows alone, as in the clean rows
    row = {"scenario": "faults", "contender": name, "instances": count, "stopped": stopped,
           "injected_spawn_failures": injected, "seconds": round(seconds, 2),
           "requests": requests, "reports": reports}
    if name in ("naive", "floor") and not nova_finished:
        row["note"] = "Nova had not finished every evacuation 90 s after the triggers"
    row.update(truth(cloud, hosts, servers, _expected(servers, stopped)))
    cloud.remove_hosts(hosts)
    return row


def verdict(row):
    """Did the contender report the truth? (each of its reports, for duplicates)"""
    real = row["real_failures"]
    words = []
    for report in row["reports"]:
        if report is None or report["ok"] is None:
            words.append("silent")
        elif report["ok"]:
            words.append("true" if real == 0 else f"FALSE: ok, {real} failed")
        elif report["reported_failures"] is None:
            words.append("true (error, no count)" if real else "FALSE: error, none failed")
        elif report["reported_failures"] == real:
            words.append(f"true ({real} failed)")
        else:
            words.append(f"FALSE: says {report['reported_failures']} failed, {real} did")
    return " / ".join(words)


def _fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def table(rows, markdown=True):
    head = ("scenario", "N", "contender", "seconds", "x floor", "req/inst", "recovered",
            "left on dead", "wrong power", "evac. twice", "failed attempts",
            "elsewhere", "reported (per trigger)", "truthful")
    body = [head]
    for r in rows:
        body.append((r["scenario"], str(r["instances"]), r["contender"], _fmt(r["seconds"]),
                     _fmt(r.get("ratio"), ".2f"), _fmt(r["requests"] / r["instances"], ".2f"),
                     f"{r['recovered']}/{r['instances']}", str(r["left_on_dead_host"]),
                     str(r["wrong_power_state"]), str(r["evacuated_twice"]),
                     str(r["failed_attempts"]), str(r["elsewhere"]),
                     " / ".join((rep or {}).get("said", "?")[:70] for rep in r["reports"]),
                     r["verdict"]))
    return tables.format_table(body, markdown=markdown)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, ax = pyplot.subplots(figsize=(7, 4.5))
    clean = [r for r in rows if r["scenario"] == "clean" and r["seconds"] is not None]
    for name in CONTENDERS:
        points = sorted((r["instances"], r["seconds"]) for r in clean if r["contender"] == name)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    values = [r["seconds"] for r in clean]
    if values and max(values) / max(min(values), 0.1) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("instances on the failed host (N)")
    ax.set_ylabel("seconds to every instance recovered")
    ax.set_title("Host failure recovery on the lab's Nova (no faults)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Host failure recovery: selfheal vs its peers.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--stopped-share", type=float, default=0.2)
    parser.add_argument("--masakari-defaults-sizes", type=int, nargs="*", default=[10],
                        help="sizes at which Masakari's defaults run (180 s+ each)")
    parser.add_argument("--faults", action="store_true",
                        help="also ~10 %% failed evacuations plus a duplicate trigger")
    parser.add_argument("--skip", action="append", default=[], choices=CONTENDERS)
    parser.add_argument("--concurrency", type=int, default=25,
                        help="selfheal's concurrency and Masakari tuned's threads "
                             "(default: the workflow's own default, 25)")
    args = parser.parse_args(argv)

    lab.up()
    cloud = scenario.LabCloud()
    rows = []
    # every size without faults first: the timings vs N come before the faults
    for faults in (False, True) if args.faults else (False,):
        for count in args.sizes:
            stopped = round(args.stopped_share * count)
            for name in CONTENDERS:
                if name in args.skip or (name == "masakari-defaults"
                                         and count not in args.masakari_defaults_sizes):
                    continue
                _log(f"N={count} {'faults' if faults else 'clean'} {name}")
                measure = run_faulty if faults else run_clean
                try:
                    row = measure(cloud, name, count, stopped, args)
                except Exception as error:
                    # A row the lab breaks is measured again once, after
                    # lab.up restarts what is broken. (The Nova box used to
                    # lose its in-memory databases after an hour of running:
                    # HTTP 500 "no such table"; see keep_memory_databases in
                    # selfheal_lab/services/nova_box.py.)
                    _log(f"  the lab failed ({type(error).__name__}: {str(error)[:200]}); "
                         "restarting what is broken and measuring this row again")
                    lab.up()
                    cloud = scenario.LabCloud()
                    row = measure(cloud, name, count, stopped, args)
                    row["note"] = (row.get("note", "") + " measured again after the lab's "
                                   f"Nova failed ({type(error).__name__})").strip()
                row["verdict"] = verdict(row)
                rows.append(row)
                write_results(rows, args, argv, name="peers-partial")
                _log(f"  {row['seconds']} s, {row['requests']} requests, "
                     f"{row['recovered']}/{count} recovered, {row['verdict']}")
    text = write_results(rows, args, argv)
    print(text)
    return 0


def write_results(rows, args, argv, name="peers-latest"):
    """Table, JSON and plot of ``rows`` as ``results/<name>.{md,json,png}``.

    During a run the rows so far go to ``peers-partial``; ``peers-latest``
    is written only by a run that completed.
    """
    for row in rows:
        floor = next((r for r in rows if r["contender"] == "floor" and r["scenario"] ==
                      row["scenario"] and r["instances"] == row["instances"]), None)
        row["ratio"] = (round(row["seconds"] / floor["seconds"], 2)
                        if floor and floor["seconds"] and row["seconds"] else None)
    text = table(rows)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    command = "python benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"when": stamp, "command": command, "args": vars(args), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(meta, indent=2))
    plot(rows, RESULTS / f"{name}.png")
    (RESULTS / f"{name}.md").write_text(
        f"# Host failure recovery: selfheal vs its peers\n\n{stamp}, `{command}`\n\n"
        "Each row: its own fresh hosts, N servers booted identically on the failed one "
        f"({args.stopped_share:.0%} stopped before the failure). `seconds`: start to every "
        "instance verified (selfheal: execution SUCCESS; Masakari: its flow; naive and "
        "floor: until every evacuation migration in Nova has ended). `x floor`: ratio to "
        "Nova's floor in the same scenario. `req/inst`: Nova API requests counted at the "
        "lab's Nova per instance (naive: without the harness's migration polls). Truth from "
        "Nova's records afterwards: `recovered` = off the dead host and in its previous "
        "power state; `evac. twice` = evacuated again while or after an earlier "
        "evacuation that had not failed (done or in flight); "
        "`failed attempts` = evacuation records in error; `elsewhere` = servers the "
        "scheduler put on a lab host outside the row's own fresh hosts.\n\n"
        f"`faults`: {FAULT_SHARE:.0%} of N spawn failures injected on the two destination "
        "hosts right before the run (only evacuations spawn there, so each one fails an "
        "evacuation), and the contender started twice at once for the host.\n\n"
        f"{text}\n\n![recovery time vs N]({name}.png)\n")
    return text


if __name__ == "__main__":
    sys.exit(main())
