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
host and the ids of the servers that were on it. Stdlib and lab modules only.
Requests are counted by the lab's Nova for the whole box: nothing else should
use the lab's Nova during a measurement.
"""

import json
import pathlib
import subprocess
import time
import uuid

from selfheal_lab import mistral_client as mistral
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import nova as nova_box

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
