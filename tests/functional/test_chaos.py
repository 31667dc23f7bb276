# SPDX-License-Identifier: Apache-2.0
"""The host failure flow under production faults, on the lab's real Mistral and Nova.

Each case makes the lab as harsh as a real cloud can be (a Mistral that dies
mid-run, spawns that take their time, an API that answers 503 or hangs, two
healers at once, a host Nova has not yet noticed dead) and then asks Nova
itself, not selfheal's report, what happened:

* no instance has two evacuations, in flight or done;
* every instance is verified where it landed (its evacuation done, another
  host, the power state it had), or reported failed with a reason Nova's
  records agree with;
* no execution ends with a traceback instead of a reason, and every error
  lists the changes made.

The lab's "changes-since" margin is 5 s (production: 120 s), so the cases
that happen after it take seconds, not minutes.
"""

import os
import signal
import threading
import time

import pytest

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import nova as nova_box
from tests.functional.servers import host_of

WF = "selfheal.host_failure.evacuate_host"


def evacuations(cloud, server_id):
    return cloud.evacuations(server_id)


def assert_nova_agrees(cloud, failed, servers, allow_failed=False):
    """Nova's truth: one evacuation per instance, each landed elsewhere and ACTIVE."""
    for server_id in servers:
        records = evacuations(cloud, server_id)
        assert len(records) == 1, [(m.id, m.status) for m in records]
        server = cloud.server(server_id)
        if not allow_failed:
            assert records[0].status in ("done", "completed"), records[0].status
            assert host_of(server) != failed and server.status == "ACTIVE"


def assert_reasoned(execution):
    """An execution in ERROR says why (a reason and the changes), never a traceback."""
    if execution["state"] == "SUCCESS":
        return
    error = execution["output"].get("error") or {}
    assert isinstance(error, dict) and error.get("reason"), execution["output"]
    assert "Traceback" not in str(error) and "changes" in error, error


@pytest.fixture
def faults():
    """Clears every fault the test injected, whatever happens."""
    yield nova_box
    nova_box.clear_http_faults()


@pytest.fixture
def slow_hosts():
    """``slow_hosts(hosts, seconds)``; spawns are fast again afterwards."""
    slowed = []

    def slow(hosts, seconds):
        for host in hosts:
            nova_box.slow_spawns(host, seconds)
            slowed.append(host)

    yield slow
    for host in slowed:
        nova_box.slow_spawns(host, 0)


@pytest.fixture
def mistral_back():
    """The test kills the lab's Mistral: whatever happens, the next tests
    find it running again."""
    yield
    lab.up()


def _kill_mistral():
    """SIGKILL the lab's embedded Mistral, its whole process group, as a
    crash of the node would (by the PID the lab recorded)."""
    pid = state.read_endpoints()["mistral"]["pids"][0]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        except ChildProcessError:
            pass  # started by another process: nothing to reap
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise TimeoutError(f"Mistral {pid} still alive")


def _wait_for_evacuations(cloud, servers, timeout=60):
    deadline = time.monotonic() + timeout
    while not all(evacuations(cloud, s) for s in servers):
        if time.monotonic() > deadline:
            raise TimeoutError("the evacuations were never requested")
        time.sleep(0.5)


def test_mistral_killed_mid_run_then_run_again_later_never_evacuates_twice(
        cloud, make_hosts, slow_hosts, mistral_back):
    failed, target_a, target_b = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(4)]
    # the spawns outlast the dead run's claim (60 s without a heartbeat), so
    # the rerun finds them still in flight, their records older than the margin
    slow_hosts([target_a, target_b], 150)
    cloud.fail_host(failed)
    # only the slow hosts: the scheduler would pick any other host of the lab
    targets = {"target_hosts": [target_a, target_b]}
    first = cloud.start_workflow(WF, {"host": failed, **targets})
    _wait_for_evacuations(cloud, servers)
    _kill_mistral()
    lab.up()  # the lab's Mistral comes back (the dead execution stays RUNNING)
    time.sleep(lab.LAB_CLOCK_MARGIN + 5)  # the records are older than the margin now
    rerun = cloud.run_workflow(WF, {"host": failed, **targets}, timeout=300)
    assert rerun["state"] == "SUCCESS", rerun["output"]
    evacuation = rerun["output"]["evacuation"]
    # it took the dead run's claim over and adopted its evacuations
    assert evacuation["took_over_from"].startswith(first["id"])
    # evacuations still in flight, their records older than the margin, were
    # adopted (any the dead run saw finish are reported already_evacuated)
    decisions = [i["decision"] for i in rerun["output"]["plan"]["instances"]]
    assert "adopt" in decisions and set(decisions) <= {"adopt", "none"}, decisions
    assert {i["outcome"] for i in evacuation["instances"]} <= {"evacuated",
                                                                "already_evacuated"}
    assert not [c for c in evacuation["changes"] if c["change"] == "evacuation_requested"]
    assert_nova_agrees(cloud, failed, servers)


def test_rerun_after_the_timeout_with_evacuations_in_flight(cloud, make_hosts, slow_hosts):
    failed, target_a, target_b = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(3)]
    slow_hosts([target_a, target_b], 40)
    cloud.fail_host(failed)
    targets = {"target_hosts": [target_a, target_b]}  # only the slow hosts
    first = cloud.run_workflow(WF, {"host": failed, "timeout": 10, **targets}, timeout=120)
    assert first["state"] == "ERROR"
    assert_reasoned(first)
    assert first["output"]["error"]["reason"] == "evacuation_incomplete"
    assert first["output"]["error"]["details"]["totals"] == {"timed_out": 3}
    time.sleep(lab.LAB_CLOCK_MARGIN + 2)
    rerun = cloud.run_workflow(WF, {"host": failed, **targets}, timeout=180)
    assert rerun["state"] == "SUCCESS", rerun["output"]
    decisions = [i["decision"] for i in rerun["output"]["plan"]["instances"]]
    assert "adopt" in decisions and set(decisions) <= {"adopt", "none"}, decisions
    changes = rerun["output"]["evacuation"]["changes"]
    assert not [c for c in changes if c["change"] == "evacuation_requested"], changes
    assert_nova_agrees(cloud, failed, servers)


def test_a_third_of_nova_reads_answering_503_for_the_whole_run(cloud, make_hosts, faults):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(5)]
    cloud.fail_host(failed)
    faults.add_http_fault(r"^GET /v2\.1/", status=503, share=0.3, seed=7)
    execution = cloud.run_workflow(WF, {"host": failed}, timeout=240)
    hits = sum(rule["hits"] for rule in faults.http_faults())
    faults.clear_http_faults()
    assert hits > 3, "the fault never fired: this case proves nothing"
    assert execution["state"] == "SUCCESS", execution["output"]
    assert_nova_agrees(cloud, failed, servers)


def test_the_nova_api_hanging_20_seconds_once_mid_run(cloud, make_hosts, faults, slow_hosts):
    failed, target_a, target_b = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(3)]
    slow_hosts([target_a, target_b], 3)
    cloud.fail_host(failed)
    faults.add_http_fault(r"^GET /v2\.1/os-migrations", hang_seconds=20, count=1)
    started = time.monotonic()
    execution = cloud.run_workflow(WF, {"host": failed}, timeout=240)
    assert sum(rule["hits"] for rule in faults.http_faults()) == 1
    assert execution["state"] == "SUCCESS", execution["output"]
    assert time.monotonic() - started >= 20
    assert_nova_agrees(cloud, failed, servers)


def _run_action(cloud, name, action_input, results):
    body = {"name": name, "input": __import__("json").dumps(action_input)}
    try:
        results.append(mistral_client._request(
            "POST", f"{cloud.mistral_url}/action_executions", body, timeout=300))
    except Exception as error:  # the assertion below names it
        results.append({"error": repr(error)})


def test_two_ad_hoc_runs_for_one_host_at_once(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(4)]
    cloud.fail_host(failed)
    results = []
    action_input = {"host": failed, "fence": True, "settle_seconds": 0}
    threads = [threading.Thread(target=_run_action, args=(
        cloud, "selfheal.evacuate_and_verify", action_input, results)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=320)
    outputs = [mistral_client._decode(r).get("output") for r in results]
    assert len(outputs) == 2 and all(isinstance(o, dict) for o in outputs), results
    outcomes = sorted(tuple(sorted({i["outcome"] for i in (o.get("result") or {}).get(
        "instances", [])})) for o in outputs)
    # one evacuated, the other found nothing left to do (it waited for the claim)
    assert outcomes == [("already_evacuated",), ("evacuated",)], outputs
    assert_nova_agrees(cloud, failed, servers)


def test_two_waiters_taking_over_a_stale_claim_at_once(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(4)]
    cloud.fail_host(failed)
    nova = cloud.nova()
    stale = nova.aggregates.create(f"selfheal-lock-{failed}", None)
    nova.aggregates.set_metadata(stale.id, {"owner": "dead-run",
                                            "heartbeat": "2026-01-01T00:00:00Z"})
    first = cloud.start_workflow(WF, {"host": failed})
    second = cloud.start_workflow(WF, {"host": failed})
    results = [cloud.wait_workflow(first["id"]), cloud.wait_workflow(second["id"])]
    for execution in results:
        assert execution["state"] == "SUCCESS", execution["output"]
    took = [r["output"]["evacuation"].get("took_over_from") for r in results]
    assert took.count("dead-run") == 1, took
    assert_nova_agrees(cloud, failed, servers)
    assert not [a for a in nova.aggregates.list() if a.name == f"selfheal-lock-{failed}"]


def test_an_operator_disabled_host_fails_is_healed_and_repaired(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(2)]
    nova = cloud.nova()
    nova.services.disable_log_reason(cloud.service(failed).id, "RMA 4711, do not enable")
    cloud.fail_host(failed)
    execution = cloud.run_workflow(WF, {"host": failed})
    assert execution["state"] == "SUCCESS", execution["output"]
    assert cloud.service(failed).disabled_reason.endswith("|| before: RMA 4711, do not enable")
    assert_nova_agrees(cloud, failed, servers)
    nova_box.start_host(failed)  # repaired: nova-compute cleans up and reports again
    repaired = cloud.run_workflow("selfheal.host_failure.enable_host",
                                  {"host": failed, "wait_seconds": 60})
    assert repaired["state"] == "SUCCESS", repaired["output"]
    service = cloud.service(failed)
    assert not service.forced_down and service.status == "disabled"
    assert service.disabled_reason == "RMA 4711, do not enable"


def test_the_alarm_comes_the_moment_the_host_dies(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(3)]
    nova_box.crash_host(failed)  # the monitor alarms at once; Nova still sees it up
    assert cloud.service(failed).state == "up"
    execution = cloud.run_workflow(WF, {"host": failed, "wait_for_down": 60})
    assert execution["state"] == "SUCCESS", execution["output"]
    assert execution["output"]["fencing"]["waited_for_down"] > 0
    assert_nova_agrees(cloud, failed, servers)


def test_an_alarm_for_a_host_that_stays_up_is_refused_after_the_wait(cloud, make_hosts):
    alive, _, _ = make_hosts(3)
    server = cloud.boot("vm", alive)
    execution = cloud.run_workflow(WF, {"host": alive, "wait_for_down": 8})
    assert execution["state"] == "ERROR"
    assert_reasoned(execution)
    assert execution["output"]["error"]["reason"] == "host_still_up"
    assert execution["output"]["error"]["changes"] == []
    assert not evacuations(cloud, server) and not cloud.service(alive).forced_down
