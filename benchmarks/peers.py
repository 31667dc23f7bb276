# SPDX-License-Identifier: Apache-2.0
"""Host failure recovery: selfheal, its peers and a true floor, on the lab.

Every run has its own fresh hosts: N servers booted on the first one (20 %
of them stopped), which then fails; Nova reports its service ``down``
(``service_down_time``) before the clock starts. Then one contender heals
it while **one observer** (a thread of this harness, the same for every
contender) lists the run's servers every ``--observe`` seconds and decides
when they are truly recovered: off the dead host, no task in progress, in
the power state each had before, not in ERROR (``peers_logic``). The
observer also records when the contender said it was done and whether what
it said was true. Afterwards every server the run created is deleted
wherever it landed, and its hosts are removed.

Contenders (each through its production entry point, each at its own
microversion):

* ``floor-wW``: a bare script at microversion 2.94 (Nova keeps each power
  state) with a sliding window of W evacuations in flight, polling the
  host's migrations; it stops when every instance is off the dead host, in
  its previous power state, not ERROR. floor(N) = the window with the best
  median (W in 5, 10, 25, 50 below N, and N).
* ``selfheal`` (the workflow's defaults) and ``selfheal-wW`` (its
  ``concurrency`` window): ``selfheal.host_failure.evacuate_host``, one
  Mistral execution.
* ``naive-2.94`` / ``naive-latest``: the std.http workflow a user writes
  from mistral-extra's generated Nova actions (services list, force down,
  servers list, evacuate with-items), at 2.94 and at the latest microversion
  (2.96: what mistral-extra discovers and sends today; at 2.95+ Nova stops
  every evacuated server). mistral-extra's actions would also send a
  version-discovery request per action execution: counted as
  ``discovery_requests`` beside the requests std.http really sent.
* ``masakari`` (defaults) and ``masakari-tT`` (T recovery threads, the
  service wait at 0): ``POST /v1/notifications`` (COMPUTE_HOST, STOPPED,
  NORMAL) to the lab's real masakari-api and masakari-engine, when the lab
  runs them (``selfheal-lab up --with masakari``).

Requests are attributed per contender: the lab's Nova counts per client
(the ``X-Bench-Client`` header; the harness and its observer name
themselves ``harness``), and a run's requests are the difference of two
snapshots of every other client's counters around it; per route. The Nova
box's CPU seconds (``/proc/<pid>/stat``) over the run are beside the wall
time.

Parts (``--only``): ``sweep`` (N=50, 3 repetitions: floor windows,
selfheal windows, Masakari threads), ``main`` (N=10, 50, 100, 5
repetitions, 3 at N=100: the floor's windows, defaults and each
contender's best setting from the sweep) and ``faults`` (F1 10 % spawn
failures, F2 a duplicate trigger, F3 the engine killed mid-run). Each part
writes ``results/peers-<part>.json`` (raw runs with every configuration;
the main table one file per N, ``peers-main-n<N>.json``, so ``--sizes``
can split it across sittings);
``--merge`` (also after each part) writes ``results/peers-latest.{json,md,png}``
from every part present::

    python3 tools/dev.py bench peers --with-masakari --only sweep
    python3 tools/dev.py bench peers --with-masakari --only main
    python3 tools/dev.py bench peers --with-masakari --only faults
    python3 tools/dev.py bench peers --merge

Masakari runs only behind Keystone: ``--with-masakari`` runs the
authenticated lab, and every contender then reaches Nova through the Nova
box's Keystone door with a token (``--auth`` does so without Masakari).
"""

import argparse
import datetime
import json
import os
import pathlib
import random
import re
import signal
import sys
import threading
import time
import uuid

from selfheal_lab import lab
from selfheal_lab import mistral_client as mistral
from selfheal_lab import scenario
from selfheal_lab import state
from selfheal_lab import tables
from selfheal_lab.services import nova as nova_box

try:  # imported as benchmarks.peers
    from benchmarks import peers_logic as logic
except ImportError:  # run as a script: this folder is sys.path[0]
    import peers_logic as logic

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WF = "selfheal.host_failure.evacuate_host"
NAIVE_WORKBOOK = "peers_naive"
#: mistral-extra's NovaAction discovers "2.latest": min(novaclient 18.13's
#: maximum, Nova 34's maximum) = 2.96
LATEST = "2.96"
FLOOR_MICROVERSION = "2.94"
HARNESS = "harness"
POLL = 0.25
STOPPED_SHARE = 0.2
FAULT_SHARE = 0.1
CLEAN_HORIZON = 600
FAULT_HORIZON = 300
PARTS = ("sweep", "main", "faults")
SWEEP = {"floor": (5, 10, 25, 50), "selfheal": (5, 10, 25, 50), "masakari": (3, 5, 10, 25)}


def _log(message):
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the lab, as the harness sees it ---------------------------------------------

class Bench:
    """The lab's cloud with the harness's own Nova client (``X-Bench-Client:
    harness``), the Nova box's counters and CPU.

    :param auth: the authenticated lab (Keystone; needed by Masakari): every
        contender then reaches Nova through the box's Keystone door with the
        lab admin's token (selfheal through the authenticated Mistral, which
        passes it on), so Keystone is handled the same way for all of them.
        The harness keeps the stub door: it is not measured.
    """

    def __init__(self, auth=False):
        self.auth = auth
        self.cloud = scenario.LabCloud(mistral_key="mistral_auth" if auth else "mistral")
        self.headers = dict(self.cloud.nova_info["headers"])
        self.cloud.nova_info = dict(self.cloud.nova_info,
                                    headers=dict(self.headers, **{"X-Bench-Client": HARNESS}))
        self.compute_url = (self.cloud.nova_info["keystone_compute_url"] if auth
                            else self.cloud.nova_info["compute_url"])

    @property
    def mistral_url(self):
        return self.cloud.mistral_url

    def token(self):
        """The lab admin's Keystone token (None outside the authenticated lab)."""
        if not self.auth:
            return None
        from selfheal_lab.services import keystone

        return keystone.token()[0]

    def contender_headers(self, name, token=None):
        """The headers a contender's own Nova calls carry: its name and, in
        the authenticated lab, the token (else the stub door's identity)."""
        if self.auth:
            return {"X-Auth-Token": token or self.token(), "X-Bench-Client": name}
        return dict(self.headers, **{"X-Bench-Client": name})

    def nova(self, microversion="2.96"):
        return self.cloud.nova(microversion)

    def contender_client(self, name, microversion):
        """A novaclient naming itself ``name`` to the lab's Nova (through the
        Keystone door with a token in the authenticated lab)."""
        from keystoneauth1 import session
        from keystoneauth1 import token_endpoint
        from novaclient import client

        token = self.token() or "lab"
        headers = {} if self.auth else dict(self.headers)
        headers["X-Bench-Client"] = name
        sess = session.Session(auth=token_endpoint.Token(self.compute_url, token),
                               additional_headers=headers)
        return client.Client(microversion, session=sess, endpoint_override=self.compute_url)

    @staticmethod
    def counters():
        return nova_box.request_counts().get("by_client", {})

    @staticmethod
    def nova_cpu():
        """CPU seconds the Nova box has used so far, or None."""
        return Bench._cpu_of(nova_box.status().get("pid"))

    @staticmethod
    def keystone_cpu():
        """CPU seconds the lab's Keystone has used so far, or None (no
        Keystone): a client that logs in per call spends it."""
        pids = (state.read_endpoints().get("keystone") or {}).get("pids") or {}
        return Bench._cpu_of(pids.get("server"))

    @staticmethod
    def _cpu_of(pid):
        try:
            text = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except (OSError, TypeError):
            return None
        return logic.cpu_seconds(text, os.sysconf("SC_CLK_TCK"))

    def servers(self, tag, changes_since=None):
        """The run's servers as dicts (one ``GET /servers/detail``), only
        those changed since ``changes_since`` (ISO 8601) when given."""
        opts = {"all_tenants": True, "name": f"^{tag}-"}
        if changes_since:
            opts["changes-since"] = changes_since
        return [s.to_dict() for s in self.nova().servers.list(search_opts=opts)]

    def migrations(self, host):
        """``{server id: [record dicts]}`` of every evacuation from ``host``."""
        out = {}
        for m in self.nova().migrations.list(source_compute=host,
                                             migration_type="evacuation"):
            out.setdefault(m.instance_uuid, []).append(m.to_dict())
        return out


class Observer(threading.Thread):
    """Samples the run's servers every ``interval`` s from ``t0`` on.

    One full listing before t0 (:meth:`prime`), then each sample asks Nova
    only for the run's servers changed since shortly before the previous
    sample (``changes-since``): a full list costs the lab's Nova about
    10 ms per server, which would load it as much as a contender at N=100.
    The verdicts are on the servers as last seen (``peers_logic``).
    """

    def __init__(self, bench, tag, host, expected, t0, interval):
        super().__init__(daemon=True)
        self.bench, self.tag, self.host, self.expected = bench, tag, host, expected
        self.t0, self.interval = t0, interval
        self.samples, self.errors = [], 0
        self.seen = {}
        self.since = None
        self.stop_event = threading.Event()

    def prime(self):
        self.since = _utc_now()
        self.seen = {s["id"]: s for s in self.bench.servers(self.tag)}

    def sample(self, full=False):
        started = _utc_now()
        if full or self.since is None:
            self.seen = {s["id"]: s for s in self.bench.servers(self.tag)}
        else:
            # 2 s back: Nova's updated_at has whole seconds
            since = (self.since - datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for s in self.bench.servers(self.tag, changes_since=since):
                self.seen[s["id"]] = s
            self.seen = {k: v for k, v in self.seen.items() if v.get("status") != "DELETED"}
        self.since = started
        verdicts = logic.snapshot(list(self.seen.values()), self.host, self.expected)
        self.samples.append((round(time.monotonic() - self.t0, 3), verdicts))
        return verdicts

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.sample()
            except Exception:  # a poll the busy lab drops: the next one counts
                self.errors += 1
            self.stop_event.wait(self.interval)

    def recovered_at(self):
        return logic.recovered_at(self.samples)

    def last(self):
        return self.samples[-1][1] if self.samples else {}


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


# --- contenders ---------------------------------------------------------------------

class Contender:
    """What a contender is: ``name``, ``kind`` and its ``config``.

    :meth:`trigger` starts it (non-blocking where the entry point is);
    :meth:`wait` returns what it said: ``{"ok", "failures", "said"}``.
    """

    def __init__(self, name, kind, config):
        self.name, self.kind, self.config = name, kind, dict(config)

    def describe(self):
        return {"contender": self.name, "kind": self.kind, "config": self.config}


class Floor(Contender):
    def __init__(self, window):
        super().__init__(f"floor-w{window}", "floor",
                         {"window": window, "microversion": FLOOR_MICROVERSION,
                          "poll": POLL})

    def run(self, bench, host, horizon):
        """The floor script, start to its own stop condition."""
        nova = bench.contender_client("floor", FLOOR_MICROVERSION)
        window = self.config["window"]
        servers = [s for s in nova.servers.list(search_opts={"all_tenants": True,
                                                             "host": host})]
        expected = {s.id: ("SHUTOFF" if s.status == "SHUTOFF" else "ACTIVE") for s in servers}
        pending, in_flight, settled = [s.id for s in servers], [], set()
        deadline = time.monotonic() + horizon
        while time.monotonic() < deadline:
            fire, pending, in_flight = logic.window_step(pending, in_flight, settled, window)
            for sid in fire:
                nova.servers.evacuate(sid)
            if not pending and not in_flight:
                listed = [s.to_dict() for s in nova.servers.list(
                    search_opts={"all_tenants": True}) if s.id in expected]
                verdicts = logic.snapshot(listed, host, expected)
                if all(v == "recovered" for v in verdicts.values()):
                    return {"ok": True, "failures": 0, "said": "all recovered"}
                if not [v for v in verdicts.values() if v == "busy"]:
                    bad = sum(v != "recovered" for v in verdicts.values())
                    return {"ok": False, "failures": bad, "said": f"{bad} not recovered"}
            time.sleep(POLL)
            settled = {m.instance_uuid for m in nova.migrations.list(
                source_compute=host, migration_type="evacuation")
                if m.status in logic.SETTLED_MIGRATION}
        return {"ok": False, "failures": None, "said": f"not finished within {horizon} s"}


def _selfheal_said(execution):
    output = execution.get("output") or {}
    if execution["state"] == "SUCCESS":
        totals = (output.get("evacuation") or {}).get("totals")
        return {"ok": True, "failures": 0, "said": f"SUCCESS {totals}"}
    error = output.get("error") or {}
    totals = (error.get("details") or {}).get("totals")
    failures = None if totals is None else sum(
        v for k, v in totals.items() if k not in ("evacuated", "already_evacuated"))
    return {"ok": False, "failures": failures,
            "said": f"{execution['state']}: {error.get('reason')} {totals or ''}".strip()}


class Selfheal(Contender):
    def __init__(self, window=None):
        name = "selfheal" if window is None else f"selfheal-w{window}"
        config = {} if window is None else {"concurrency": window}
        super().__init__(name, "selfheal", config)

    def start(self, bench, host):
        return mistral.create_execution(bench.mistral_url, WF, dict(self.config, host=host),
                                        token=bench.token())["id"]

    def wait(self, bench, execution_id, horizon):
        try:
            ex = mistral.wait_execution(bench.mistral_url, execution_id, timeout=horizon,
                                        max_interval=POLL, token=bench.token())
        except TimeoutError as e:
            return {"ok": None, "failures": None, "said": f"no answer: {str(e)[:120]}"}
        return _selfheal_said(ex)

    def run(self, bench, host, horizon):
        return self.wait(bench, self.start(bench, host), horizon)


def naive_workbook(label, microversion):
    """The workflow a user writes from mistral-extra's generated actions.

    One task per action: ``nova.services_list`` (force-down needs the
    service id), ``nova.services_force_down``, ``nova.servers_list``,
    ``nova.servers_evacuate`` with-items; each a ``std.http`` call here.
    """
    return f"""---
version: '2.0'
name: peers_naive_{label}
description: >
  Host evacuation as written from mistral-extra's generated Nova actions
  (benchmark peer; std.http stands in for the actions, microversion
  {microversion}). No verification.
workflows:
  evacuate_host:
    input:
      - host
      - compute_url
      - headers
    vars:
      h: >-
        <% $.headers + {{"X-OpenStack-Nova-API-Version" => "{microversion}",
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


class Naive(Contender):
    def __init__(self, label):
        microversion = {"2.94": "2.94", "latest": LATEST}[label]
        super().__init__(f"naive-{label}", "naive",
                         {"microversion": microversion,
                          "discovery": label == "latest"})
        self.workbook = f"peers_naive_{label.replace('.', '')}"

    def prepare(self, bench, hosts=None, tag=None):
        text = naive_workbook(self.workbook.rsplit("_", 1)[1], self.config["microversion"])
        mistral.create_or_update_workbook(bench.mistral_url, text, token=bench.token())

    def start(self, bench, host):
        token = bench.token()
        return mistral.create_execution(bench.mistral_url, f"{self.workbook}.evacuate_host", {
            "host": host, "compute_url": bench.compute_url,
            "headers": bench.contender_headers(self.name, token)}, token=token)["id"]

    def wait(self, bench, execution_id, horizon):
        try:
            ex = mistral.wait_execution(bench.mistral_url, execution_id, timeout=horizon,
                                        max_interval=POLL, token=bench.token())
        except TimeoutError as e:
            return {"ok": None, "failures": None, "said": f"no answer: {str(e)[:120]}"}
        ok = ex["state"] == "SUCCESS"
        return {"ok": ok, "failures": 0 if ok else None,
                "said": ex["state"] + ("" if ok else f": {str(ex.get('state_info'))[:120]}")}

    def run(self, bench, host, horizon):
        """Start and wait (:meth:`prepare` loaded the workbook before t0)."""
        return self.wait(bench, self.start(bench, host), horizon)

    def discovery_requests(self, servers):
        """The version-discovery GETs mistral-extra's actions would add: one
        per action execution (3 tasks + one per server), at ``latest`` only."""
        return 3 + servers if self.config["discovery"] else 0


class Masakari(Contender):
    """Masakari through its real API (``POST /v1/notifications``, what
    masakari-hostmonitor sends: COMPUTE_HOST, STOPPED, NORMAL) and engine.

    Before t0: the engine (re)started with this configuration's options
    (the others Masakari's defaults), and a failover segment
    (``recovery_method: auto``) holding the run's hosts.
    """

    def __init__(self, threads=None):
        name = "masakari" if threads is None else f"masakari-t{threads}"
        config = ({} if threads is None else
                  {"host_failure_recovery_threads": threads,
                   "wait_period_after_service_update": 0,
                   # no random pause before each notification: production
                   # at its best has a coordination backend, which skips it
                   "notification_delay_max": 0})
        super().__init__(name, "masakari", config)
        self.segment = None

    def prepare(self, bench, hosts=None, tag=None):
        from selfheal_lab import masakari_client
        from selfheal_lab.services import masakari

        masakari.up(**self.config)
        self.segment = masakari_client.create_segment(f"{tag}-segment", hosts)["segment"]["uuid"]

    def start(self, bench, host):
        from selfheal_lab import masakari_client

        return masakari_client.notify_host_stopped(host)["notification_uuid"]

    def wait(self, bench, notification_uuid, horizon):
        from selfheal_lab import masakari_client

        try:
            found = masakari_client.wait_notification(notification_uuid, timeout=horizon)
        except TimeoutError as e:
            return {"ok": None, "failures": None, "said": f"no answer: {str(e)[:120]}"}
        moves = {}
        try:
            for move in masakari_client.vmoves(notification_uuid):
                moves[move.get("status")] = moves.get(move.get("status"), 0) + 1
        except Exception as e:  # the API's answer is the report; the moves are detail
            moves = {"unreadable": f"{type(e).__name__}"}
        status = found["status"]
        if status == "finished":
            return {"ok": True, "failures": 0, "said": f"finished, vmoves {moves}"}
        failed = moves.get("failed") if isinstance(moves.get("failed"), int) else None
        return {"ok": False, "failures": failed, "said": f"{status}, vmoves {moves}"}

    def run(self, bench, host, horizon):
        return self.wait(bench, self.start(bench, host), horizon)

    def cleanup(self):
        from selfheal_lab import masakari_client

        if self.segment:
            try:
                masakari_client.delete_segment(self.segment)
            except Exception:  # refused while a notification runs: the lab goes anyway
                pass
            self.segment = None


def selfheal_default_window():
    """The ``concurrency`` default of the workflow (read from the workbook)."""
    import yaml

    text = (pathlib.Path(__file__).resolve().parents[1] / "workbooks" / "host_failure.yaml")
    wf = yaml.safe_load(text.read_text())["workflows"]["evacuate_host"]
    for item in wf["input"]:
        if isinstance(item, dict) and "concurrency" in item:
            return item["concurrency"]
    return None


def contenders_for(part, n, choices, masakari_available, selfheal_default=None):
    """The contenders of one cell of ``part`` at N (floor windows first).

    The sweep: every floor window, selfheal window and Masakari thread
    count. The main table (the issue's cost rule): the defaults, each
    contender's best setting from the sweep (not again when it is the
    default), and the floor at its best sweep window and all at once (every
    window when there was no sweep).

    :param choices: each kind's best setting from the sweep
        (``{"selfheal": window, "masakari": threads, "floor": window}``;
        missing or None: not swept).
    """
    if part == "sweep" or not choices.get("floor"):
        windows = logic.floor_windows(n, SWEEP["floor"])
    else:
        windows = sorted({min(choices["floor"], n), n})
    out = [Floor(w) for w in windows]
    if part == "sweep":
        out += [Selfheal(w) for w in SWEEP["selfheal"]]
        if masakari_available:
            out += [Masakari(t) for t in SWEEP["masakari"]]
        return out
    out += [Selfheal(), Naive("2.94"), Naive("latest")]
    if choices.get("selfheal") and choices["selfheal"] != selfheal_default:
        out.append(Selfheal(choices["selfheal"]))
    if masakari_available:
        out.append(Masakari())
        if choices.get("masakari"):
            out.append(Masakari(choices["masakari"]))
    return out


# --- one run --------------------------------------------------------------------------

def prepare(bench, tag, count, stopped):
    """Fresh hosts (the failed one and two destinations), ``count`` servers
    on the first (the first ``stopped`` stopped), then the host fails and
    Nova reports it down. Returns ``(hosts, server ids, expected status)``."""
    cloud = bench.cloud
    hosts = cloud.add_hosts(f"{tag}-a", f"{tag}-b", f"{tag}-c")
    servers = cloud.boot_many(tag, hosts[0], count)
    nova = bench.nova()
    for sid in servers[:stopped]:
        nova.servers.stop(sid)
    if stopped:
        cloud.wait_servers(servers[:stopped], "SHUTOFF", timeout=60 + 2 * stopped)
    cloud.fail_host(hosts[0])  # waits until Nova's API reports it down
    expected = {s: ("SHUTOFF" if i < stopped else "ACTIVE") for i, s in enumerate(servers)}
    return hosts, servers, expected


def cleanup(bench, tag, hosts):
    """Delete every server the run created, wherever it landed; remove its hosts."""
    nova = bench.nova()
    ids = [s["id"] for s in bench.servers(tag)]
    for sid in ids:
        try:
            nova.servers.delete(sid)
        except Exception:  # already gone
            pass
    deadline = time.monotonic() + 120
    while ids and time.monotonic() < deadline:
        time.sleep(0.5)
        ids = [s["id"] for s in bench.servers(tag)]
    bench.cloud.remove_hosts(hosts)
    return len(ids)


def measure(bench, contender, scenario_name, count, rep, fault=None, horizon=CLEAN_HORIZON,
            interval=0.5):
    """One run: prepare, trigger, observe, judge, clean up. Returns its record."""
    tag = f"q{uuid.uuid4().hex[:5]}"
    stopped = round(STOPPED_SHARE * count)
    hosts, servers, expected = prepare(bench, tag, count, stopped)
    host = hosts[0]
    setup = {}
    if fault == "F1":
        n_fail = max(1, round(FAULT_SHARE * count))
        for i in range(n_fail):
            dest = hosts[1 + i % 2]
            setup[dest] = setup.get(dest, 0) + 1
        for dest, n in setup.items():
            nova_box.inject_spawn_failures(dest, n)
    if hasattr(contender, "prepare"):
        contender.prepare(bench, hosts, tag)
    load = round(os.getloadavg()[0], 2)
    observer = Observer(bench, tag, host, expected, None, interval)
    observer.prime()
    before, cpu_before = bench.counters(), bench.nova_cpu()
    keystone_before = bench.keystone_cpu()
    t0 = observer.t0 = time.monotonic()
    observer.start()
    said, extra = _trigger(bench, contender, host, fault, horizon, t0)
    said_seconds = round(time.monotonic() - t0, 3)
    # Nova may still work after the contender's answer (the naive workflow
    # ends when the last evacuate is accepted): observe until recovered or
    # settled, or the horizon
    while time.monotonic() - t0 < horizon:
        last = observer.last()
        if observer.recovered_at() is not None or (
                last and "busy" not in last.values() and said_seconds < time.monotonic() - t0 - 3
                and _settled(bench, host)):
            break
        time.sleep(interval)
    observer.stop_event.set()
    observer.join()
    wall = round(time.monotonic() - t0, 3)
    after, cpu_after = bench.counters(), bench.nova_cpu()
    keystone_after = bench.keystone_cpu()
    final = observer.sample(full=True)
    migrations = bench.migrations(host)
    requests = logic.attributed(before, after, exclude=(HARNESS,))
    judged = [logic.truthful(s, final) for s in said]
    outcome = logic.outcome(final, {s: migrations.get(s, []) for s in servers})
    at = observer.recovered_at()
    record = dict(contender.describe(), run_id=tag, scenario=scenario_name, fault=fault,
                  repetition=rep, instances=count, stopped=stopped, hosts=hosts,
                  when=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  seconds=at, said_seconds=said_seconds, wall_seconds=wall,
                  recovered=outcome["recovered"], outcome=outcome,
                  said=said, truthful=_all_true(judged), verdicts=[j["verdict"] for j in judged],
                  requests=requests["total"], by_route=requests["by_route"],
                  by_client=requests["by_client"],
                  nova_cpu_seconds=(None if cpu_before is None or cpu_after is None
                                    else round(cpu_after - cpu_before, 2)),
                  keystone_cpu_seconds=(None if keystone_before is None
                                        or keystone_after is None
                                        else round(keystone_after - keystone_before, 2)),
                  load_average=load,
                  observer={"interval": interval, "samples": len(observer.samples),
                            "errors": observer.errors},
                  injected_spawn_failures=setup or None, **extra)
    if isinstance(contender, Naive):
        record["discovery_requests"] = contender.discovery_requests(count) * (
            2 if fault == "F2" else 1)
    for dest in setup:
        nova_box.inject_spawn_failures(dest, 0)
    if hasattr(contender, "cleanup"):
        contender.cleanup()
    record["leaked"] = cleanup(bench, tag, hosts)
    return record


def _all_true(judged):
    values = [j["truthful"] for j in judged]
    if any(v is False for v in values):
        return False
    if all(v is None for v in values):
        return None
    return True


def _settled(bench, host):
    return all(m["status"] in logic.SETTLED_MIGRATION
               for ms in bench.migrations(host).values() for m in ms)


def _trigger(bench, contender, host, fault, horizon, t0):
    """Run the contender (twice at once for F2; killed and recovered for F3).

    :returns: ``(what it said per trigger, extra record fields)``.
    """
    extra = {}
    if fault == "F2":
        said = [None, None]

        def one(i):
            try:
                said[i] = contender.run(bench, host, horizon)
            except Exception as e:  # an API refusing the duplicate is a result
                said[i] = {"ok": None, "failures": None,
                           "said": f"refused: {type(e).__name__}: {str(e)[:160]}"}

        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return said, extra
    if fault == "F3":
        return _killed_mid_run(bench, contender, host, horizon, t0)
    try:
        return [contender.run(bench, host, horizon)], extra
    except Exception as e:
        return [{"ok": None, "failures": None,
                 "said": f"harness: {type(e).__name__}: {str(e)[:160]}"}], extra


def _kill_group(pid, what):
    """SIGKILL a lab process's group (by the PID the lab recorded), as a
    crash of its node would, and wait until it is gone."""
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} {pid} still alive")


def _killed_mid_run(bench, contender, host, horizon, t0):
    """F3: the engine killed once the first evacuations were asked; then the
    contender's own recovery: selfheal and the naive workflow are started
    again once Mistral is back (what the watch or an operator does);
    Masakari's engine is restarted and its own periodic retry runs."""
    if isinstance(contender, Masakari):
        from selfheal_lab.services import masakari

        first = contender.start(bench, host)
        _wait_first_evacuations(bench, host, horizon)
        masakari.kill_engine()  # the API keeps running, as in a crash of the engine's node
        killed = round(time.monotonic() - t0, 3)
        masakari.start_engine()  # what a service supervisor does
        restarted = round(time.monotonic() - t0, 3)
        said = contender.wait(bench, first, _left(horizon, t0))
        return [said], {"killed_at": killed, "engine_back_at": restarted,
                        "recovery": "masakari-engine restarted; its own periodic retry"}
    execution_id = contender.start(bench, host)
    _wait_first_evacuations(bench, host, horizon)
    key = "mistral_auth" if bench.auth else "mistral"
    _kill_group(state.read_endpoints()[key]["pids"][0], "Mistral")
    killed = round(time.monotonic() - t0, 3)
    _lab_up(bench.auth, masakari=False)
    if isinstance(contender, Naive):
        contender.prepare(bench)
    restarted = round(time.monotonic() - t0, 3)
    time.sleep(lab.LAB_CLOCK_MARGIN + 1)  # selfheal adopts records older than its margin
    rerun = contender.start(bench, host)
    said = contender.wait(bench, rerun, _left(horizon, t0))
    return [said], {"killed_at": killed, "mistral_back_at": restarted,
                    "recovery": "started again after Mistral came back",
                    "dead_execution": execution_id}


def _left(horizon, t0):
    """What is left of the horizon (counted from t0), at least 1 s."""
    return max(1.0, horizon - (time.monotonic() - t0))


def _wait_first_evacuations(bench, host, horizon):
    deadline = time.monotonic() + horizon
    while not bench.migrations(host):
        if time.monotonic() > deadline:
            raise TimeoutError("no evacuation was ever asked")
        time.sleep(0.1)


# --- parts ------------------------------------------------------------------------------

def run_part(bench, part, args, choices, masakari_available):
    runs = []
    if part in ("sweep", "main"):
        sizes = [args.sweep_size] if part == "sweep" else args.sizes
        for n in sizes:
            reps = args.sweep_repetitions if part == "sweep" else (
                args.repetitions_100 if n >= 100 else args.repetitions)
            contenders = contenders_for(part, n, choices, masakari_available,
                                        selfheal_default_window())
            contenders = [c for c in contenders if _wanted(c, args)]
            for rep in range(reps):
                order = contenders[:]
                args.rng.shuffle(order)  # randomised per repetition
                for c in order:
                    runs.append(_one(bench, c, "clean", n, rep, None, CLEAN_HORIZON, args))
                    _save(part_name(part, n), [r for r in runs if r["instances"] == n], args)
    else:
        n = args.fault_size
        for fault in args.faults:
            contenders = [Selfheal(), Naive("2.94"), Naive("latest")]
            if fault == "F1":
                contenders.insert(0, Floor(choices.get("floor") or 25))
            if masakari_available:
                contenders.append(Masakari())
            contenders = [c for c in contenders if _wanted(c, args)]
            for rep in range(args.fault_repetitions):
                order = contenders[:]
                args.rng.shuffle(order)
                for c in order:
                    runs.append(_one(bench, c, fault, n, rep, fault, FAULT_HORIZON, args))
                    _save(part, runs, args)
    return runs


def plan(args, masakari_available, choices=None):
    """``{part: number of runs}`` the arguments ask for (each run boots its
    own N servers: the cost is mostly the runs at the larger N)."""
    choices = choices or {"selfheal": 10, "masakari": 10, "floor": 25}  # the count only
    out = {}
    for part in args.only:
        if part == "sweep":
            cs = [c for c in contenders_for("sweep", args.sweep_size, {}, masakari_available)
                  if _wanted(c, args)]
            out[part] = {args.sweep_size: len(cs) * args.sweep_repetitions}
        elif part == "main":
            out[part] = {n: len([c for c in contenders_for("main", n, choices,
                                                           masakari_available, 25)
                                 if _wanted(c, args)])
                         * (args.repetitions_100 if n >= 100 else args.repetitions)
                         for n in args.sizes}
        else:
            per = {"F1": 4, "F2": 3, "F3": 3}
            out[part] = {args.fault_size: sum(per[f] + int(masakari_available)
                                              for f in args.faults) * args.fault_repetitions}
    return out


def _wanted(contender, args):
    return _wanted_name(contender.name, args)


def _wanted_name(name, args):
    return not args.contenders or any(name.startswith(p) for p in args.contenders)


def _one(bench, contender, scenario_name, n, rep, fault, horizon, args):
    _log(f"{scenario_name} N={n} rep {rep + 1} {contender.name}")
    try:
        record = measure(bench, contender, scenario_name, n, rep, fault, horizon, args.observe)
    except Exception as error:
        # a run the shared lab breaks (a service gone) is measured again
        # once, after the lab restarts what is broken; the record says so
        _log(f"  the lab failed ({type(error).__name__}: {str(error)[:200]}); restarting "
             "what is broken and measuring this run again")
        _lab_up(bench.auth, args.with_masakari)
        record = measure(bench, contender, scenario_name, n, rep, fault, horizon, args.observe)
        record["note"] = f"measured again after {type(error).__name__}: {str(error)[:200]}"
    _log(f"  recovered {record['recovered']}/{n} at {record['seconds']} s (said "
         f"{record['said_seconds']} s: {[s['said'][:60] for s in record['said']]}, "
         f"{record['verdicts']}), {record['requests']} requests, "
         f"Nova CPU {record['nova_cpu_seconds']} s, Keystone CPU "
         f"{record['keystone_cpu_seconds']} s")
    return record


def part_name(part, n):
    """The name a part's raw runs are saved under: the main table per N
    (``main-n100``), so its sizes can run in separate sittings and merge."""
    return f"{part}-n{n}" if part == "main" else part


def part_files(results, label=""):
    """The raw part files of ``label`` in ``results`` (sorted): ``sweep``,
    ``main-n<N>`` (and ``main``, as written before the split), ``faults``."""
    pattern = re.compile(re.escape(f"peers-{label}") + r"(sweep|faults|main(-n\d+)?)")
    return sorted(p for p in results.glob(f"peers-{label}*.json") if pattern.fullmatch(p.stem))


def _kept(part, args):
    """The runs of ``part``'s file this run keeps: with ``--contenders``, the
    other contenders' runs as they were before this run began (read once),
    and that file's meta; else none. Returns ``{"runs": [...], "meta": ...}``."""
    kept = args.__dict__.setdefault("kept", {})
    if part not in kept:
        path = RESULTS / f"peers-{args.label}{part}.json"
        earlier = json.loads(path.read_text()) if args.contenders and path.exists() else {}
        kept[part] = {"runs": [r for r in earlier.get("runs", [])
                               if not _wanted_name(r["contender"], args)],
                      "meta": earlier.get("meta")}
    return kept[part]


def _save(part, runs, args):
    RESULTS.mkdir(exist_ok=True)
    kept = _kept(part, args)
    meta = {"part": part, "command": "python3 tools/dev.py bench peers "
            + " ".join(args.argv), "seed": args.seed, "label": args.label,
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "settings": {"stopped_share": STOPPED_SHARE, "fault_share": FAULT_SHARE,
                         "clean_horizon": CLEAN_HORIZON, "fault_horizon": FAULT_HORIZON,
                         "observer_interval": args.observe, "poll": POLL,
                         "nova": _nova_timings()}}
    if kept["runs"]:
        meta["kept"] = {"runs": len(kept["runs"]), "meta": kept["meta"]}
    (RESULTS / f"peers-{args.label}{part}.json").write_text(
        json.dumps({"meta": meta, "runs": kept["runs"] + runs}, indent=1))


def _kept_chain(meta):
    """A part's meta, then the metas of the runs it kept, oldest last."""
    while meta:
        yield meta
        meta = (meta.get("kept") or {}).get("meta")


def _nova_timings():
    info = nova_box.status()
    return {k: info.get(k) for k in ("report_interval", "service_down_time", "driver")}


def choices_from(runs):
    """Each kind's best setting from the sweep's runs (smallest median to
    truly recovered among configurations that recovered everything)."""
    out = {}
    for kind, key in (("selfheal", "concurrency"), ("masakari", "host_failure_recovery_threads"),
                      ("floor", "window")):
        medians = {}
        for rs in logic.cells([r for r in runs if r["kind"] == kind
                                     and r["scenario"] == "clean"]).values():
            s = logic.cell_summary(rs)
            if s["all_recovered"] and s["seconds"] and rs[0]["config"].get(key):
                medians[rs[0]["config"][key]] = s["seconds"]["median"]
        out[kind] = logic.best(medians)[0]
    return out


# --- publishing -----------------------------------------------------------------------

def summarise(runs):
    """Per cell: the summary, and against the floor at the same N."""
    rows = []
    floors = {}
    for (scenario_name, n, name), rs in logic.cells(runs).items():
        if scenario_name != "clean":
            continue
        if n not in floors:
            floors[n] = logic.floor_of(runs, n)
        s = logic.cell_summary(rs)
        floor_name, floor_times, _ = floors[n]
        over = None
        if s["all_recovered"]:
            over = logic.overhead([r["seconds"] for r in rs], floor_times)
        rows.append(dict(s, scenario=scenario_name, instances=n, contender=name,
                         config=rs[0]["config"], floor=floor_name, overhead=over,
                         discovery_requests=rs[0].get("discovery_requests")))
    return rows


def fault_rows(runs):
    rows = []
    for (scenario_name, n, name), rs in logic.cells(runs).items():
        if scenario_name == "clean":
            continue
        keys = ("recovered", "wrong_power", "error", "on_dead_host", "evacuated_twice",
                "failed_attempts")
        rows.append({"scenario": scenario_name, "instances": n, "contender": name,
                     "repetitions": len(rs),
                     **{k: [r["outcome"][k] for r in rs] for k in keys},
                     "truthful": [r["truthful"] for r in rs],
                     "said": [[s["said"][:80] for s in r["said"]] for r in rs]})
    return rows


def _mm(cell, spec=".1f"):
    if not cell:
        return "-"
    return (f"{format(cell['median'], spec)} ({format(cell['min'], spec)}-"
            f"{format(cell['max'], spec)})")


def table(rows):
    head = ("N", "contender", "reps", "recovered", "seconds (min-max)", "T - floor s",
            "x floor (spread)", "said done s", "req/inst", "+ discovery/inst", "Nova CPU s",
            "Keystone CPU s", "truthful", "floor")
    body = [head]
    for r in rows:
        over = r["overhead"] or {}
        body.append((str(r["instances"]), r["contender"], str(r["repetitions"]),
                     f"{r['recovered_fraction']:.0%}", _mm(r["seconds"]),
                     _mm(over.get("seconds")), _mm(over.get("ratio"), ".2f"),
                     _mm(r["said_seconds"]), _mm(r["requests_per_instance"], ".2f"),
                     "-" if not r.get("discovery_requests") else
                     f"{r['discovery_requests'] / r['instances']:.2f}",
                     _mm(r["nova_cpu_seconds"]), _mm(r.get("keystone_cpu_seconds")),
                     "/".join(r["truthful"]), r["floor"] or "-"))
    return tables.format_table(body, markdown=True)


def faults_table(rows):
    head = ("fault", "N", "contender", "reps", "recovered", "wrong power", "ERROR",
            "evacuated twice", "failed attempts", "truthful", "said")
    body = [head]
    for r in rows:
        body.append((r["scenario"], str(r["instances"]), r["contender"], str(r["repetitions"]),
                     " ".join(f"{x}/{r['instances']}" for x in r["recovered"]),
                     " ".join(map(str, r["wrong_power"])), " ".join(map(str, r["error"])),
                     " ".join(map(str, r["evacuated_twice"])),
                     " ".join(map(str, r["failed_attempts"])),
                     " ".join(map(str, r["truthful"])),
                     " | ".join(" / ".join(s) for s in r["said"])[:160]))
    return tables.format_table(body, markdown=True)


def plot(rows, path):
    """Seconds to truly recovered vs N, linear axes, median with min-max
    error bars, only for contenders that recovered everything in every
    run; the others are listed with their recovered fractions."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, ax = pyplot.subplots(figsize=(8, 5))
    by_name = {}
    for r in rows:
        if r["contender"].startswith("floor-"):
            # one floor line: at each N its best window (named in the tables)
            if r["contender"] == r["floor"]:
                by_name.setdefault("floor (best window)", []).append(r)
            continue
        by_name.setdefault(r["contender"], []).append(r)
    partial = []
    for name, rs in sorted(by_name.items()):
        if not all(r["all_recovered"] for r in rs):
            partial.append(f"{name}: " + ", ".join(
                f"N={r['instances']} {r['recovered_fraction']:.0%}" for r in rs))
            continue
        rs = sorted(rs, key=lambda r: r["instances"])
        xs = [r["instances"] for r in rs]
        med = [r["seconds"]["median"] for r in rs]
        err = [[m - r["seconds"]["min"] for m, r in zip(med, rs, strict=True)],
               [r["seconds"]["max"] - m for m, r in zip(med, rs, strict=True)]]
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel("instances on the failed host (N)")
    ax.set_ylabel("seconds until truly recovered (median, min-max)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title("Host failure recovery on the lab's Nova (linear axes)")
    ax.grid(True, alpha=0.3)
    if by_name:
        ax.legend(fontsize=8)
    if partial:
        fig.text(0.01, 0.01, "not every server recovered (not plotted): " + "; ".join(partial),
                 fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if partial else 0, 1, 1))
    fig.savefig(path, dpi=120)
    pyplot.close(fig)


def publish(label=""):
    """Merge every part present into ``results/peers-<label>latest.*``."""
    parts = [json.loads(p.read_text()) for p in part_files(RESULTS, label)]
    merged = logic.merge(parts)
    rows = summarise(logic.main_table_runs(merged["runs"]))
    frows = fault_rows(merged["runs"])
    sweep = [r for r in merged["runs"] if r.get("part") == "sweep"]
    text = table(rows)
    if sweep and len(sweep) < len(merged["runs"]):
        text += "\n\n## The sweep (it chose the settings above)\n\n" + table(summarise(sweep))
    ftext = faults_table(frows) if frows else "(no fault runs)"
    out = RESULTS / f"peers-{label}latest"
    out.with_suffix(".json").write_text(json.dumps(dict(merged, cells=rows, faults=frows),
                                                   indent=1))
    plot(rows, out.with_suffix(".png"))
    metas = [m for part in merged["parts"] for m in _kept_chain(part)]
    commands = "\n".join(f"* `{m.get('command')}` ({m.get('part')}, {m.get('when')})"
                         for m in metas)
    reps = {}
    for r in rows:
        reps.setdefault(r["instances"], set()).add(r["repetitions"])
    reps = "; ".join(f"N={n}: {'/'.join(map(str, sorted(v)))}" for n, v in sorted(reps.items()))
    loads = logic.spread(r.get("load_average") for r in merged["runs"])
    title = "Host failure recovery" + (f" ({label.strip('-')} run: not a result)" if label
                                       else "")
    out.with_suffix(".md").write_text(
        f"# {title}: selfheal, its peers and a true floor\n\n{commands}\n\n"
        f"Machine: {os.cpu_count()} cores; 1-minute load average at the runs' starts "
        f"{_mm(loads)}.\n\n"
        f"Repetitions per cell: {reps}. "
        "`seconds`: t0 (host already reported down) until the observer saw every server "
        "truly recovered (off the dead host, previous power state, no task, not ERROR), "
        "median (min-max) over the runs that recovered everything. `T - floor`, `x floor`: "
        "against the floor's best window at the same N (its median; ratio spread = "
        "contender min / floor max to contender max / floor min). `said done`: when the "
        "contender answered. `req/inst`: Nova requests attributed to the contender "
        "(the harness's own excluded) per instance; `+ discovery/inst`: the "
        "version-discovery requests mistral-extra's actions would add (naive-latest). "
        "`Nova CPU s`: the Nova box's CPU over the run (the observer's polls included, "
        "the same for everyone); `Keystone CPU s`: the lab Keystone's (one process).\n\n"
        f"{text}\n\n## Faults\n\n{ftext}\n\n![recovery time vs N]({out.name}.png)\n")
    return text + "\n\n" + ftext


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description="Host failure recovery: selfheal, its peers "
                                                 "and a true floor, on the lab's Nova.")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--merge", action="store_true",
                        help="only merge the parts present into peers-latest.*")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--repetitions-100", type=int, default=3,
                        help="repetitions at N >= 100 (said in the output)")
    parser.add_argument("--sweep-size", type=int, default=50)
    parser.add_argument("--sweep-repetitions", type=int, default=3)
    parser.add_argument("--fault-size", type=int, default=50)
    parser.add_argument("--fault-repetitions", type=int, default=1)
    parser.add_argument("--faults", nargs="+", default=["F1", "F2", "F3"],
                        choices=("F1", "F2", "F3"))
    parser.add_argument("--contenders", nargs="*", default=[],
                        help="only contenders whose name starts with one of these")
    parser.add_argument("--observe", type=float, default=0.5,
                        help="the observer's sampling interval (s)")
    parser.add_argument("--with-masakari", action="store_true",
                        help="also Masakari (the lab's real masakari-api and -engine; "
                             "implies --auth)")
    parser.add_argument("--auth", action="store_true",
                        help="the authenticated lab: every contender through Keystone")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--label", default="",
                        help="prefix of the result files (e.g. 'noisy-' for a trial run)")
    args = parser.parse_args(argv)
    args.argv = argv
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    args.rng = random.Random(args.seed)
    if args.merge:
        print(publish(args.label))
        return 0
    auth = args.auth or args.with_masakari
    _lab_up(auth, args.with_masakari)
    bench = Bench(auth=auth)
    masakari_available = args.with_masakari
    _log(f"runs per part and N: {plan(args, masakari_available)} (seed {args.seed})")
    sweep_file = RESULTS / f"peers-{args.label}sweep.json"
    choices = {}
    for part in args.only:
        if part != "sweep" and sweep_file.exists():
            choices = choices_from(json.loads(sweep_file.read_text())["runs"])
        _log(f"part {part} (choices from the sweep: {choices})")
        run_part(bench, part, args, choices, masakari_available)
        print(publish(args.label))
    return 0


def _lab_up(auth, masakari):
    """The lab (authenticated when asked or for Masakari), Masakari's API
    and engine when asked (with its defaults; each configuration restarts
    them with its own options before its runs)."""
    if not auth:
        return lab.up()
    lab.up_authenticated()
    if masakari:
        from selfheal_lab.services import masakari as masakari_service

        masakari_service.up()
    return None


if __name__ == "__main__":
    sys.exit(main())
