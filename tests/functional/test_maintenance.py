# SPDX-License-Identifier: Apache-2.0
"""Planned maintenance on the lab: real Mistral, real Nova, Vitrage's real evaluator.

Each test takes hosts of its own, runs selfheal.maintenance's workflows
through Mistral's API as an operator would, and then checks Nova itself
(services, where each server is, its state, its migration records) and,
for the monitoring part, Vitrage's entity graph and the executions its
evaluator asked for.

The tests without Vitrage come first: the lab's Mistral may not even have
python-vitrageclient then, or the cloud configuration names no Vitrage, and
the Nova part must work all the same. The Vitrage ones bring its evaluator
up (``lab.up_vitrage``, which also puts python-vitrageclient into the lab's
Mistral) and reach it through python-vitrageclient, as the actions would in
a real cloud.
"""

import json
import pathlib
import time

import pytest

from selfheal_actions.common import alarm_names
from selfheal_actions.common import markers
from selfheal_lab import lab
from selfheal_lab.services import nova as nova_box
from selfheal_lab.services import vitrage
from tests.functional.servers import host_of
from tests.functional.servers import moves

pytestmark = pytest.mark.usefixtures("delete_new_servers")

START = "selfheal.maintenance.start_maintenance"
FINISH = "selfheal.maintenance.finish_maintenance"
EVACUATE = "selfheal.host_failure.evacuate_host"
NOT_CHANGED = ("vitrage_not_installed", "vitrage_not_configured", "vitrage_unreachable")


def by_id(execution):
    return {i["id"]: i for i in execution["output"]["drain"]["instances"]}


def in_maintenance(cloud, host):
    svc = cloud.service(host)
    return svc.status == "disabled" and markers.kind_of(svc.disabled_reason) == "maintenance"


def test_start_moves_every_instance_live_and_proves_it(cloud, make_hosts):
    host, _, _ = make_hosts(3)
    ids = {name: cloud.boot(name, host) for name in ("web-1", "web-2", "db")}
    ids["paused"] = cloud.boot("paused", host, state="paused")
    ids["locked"] = cloud.boot("locked", host, state="locked")

    execution = cloud.run_workflow(START, {"host": host, "reason": "disk swap",
                                           "until": "2099-01-01T06:00:00Z"}, timeout=600)

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    svc = cloud.service(host)
    assert svc.status == "disabled" and svc.state == "up" and not svc.forced_down
    assert svc.disabled_reason.startswith("selfheal:maintenance ")
    assert f"by {execution['id']}: " in svc.disabled_reason
    assert svc.disabled_reason.endswith("disk swap")
    assert "until 2099-01-01T06:00:00Z" in svc.disabled_reason
    live = cloud.up_hosts()
    found = by_id(execution)
    for name, server_id in ids.items():
        server = cloud.server(server_id)
        assert host_of(server) != host and host_of(server) in live, name
        assert server.status == ("PAUSED" if name == "paused" else "ACTIVE"), name
        records = moves(cloud, server_id)
        assert [m.status for m in records] == ["completed"], name
        assert records[0].source_compute == host
        assert records[0].dest_compute == host_of(server)
        assert found[server_id]["outcome"] == "migrated"
        assert found[server_id]["method"] == "live"
        assert found[server_id]["destination"] == host_of(server)
        assert moves(cloud, server_id, "migration") == []
    assert cloud.server(ids["locked"]).locked is True
    output = execution["output"]
    assert output["drain"]["emptied"] is True
    assert output["drain"]["totals"] == {"migrated": 5}
    # the plan was made before anything changed
    assert {i["outcome"] for i in output["plan"]["drain"]["instances"]} == {"planned"}
    # without Vitrage the Nova part is done and the result says so
    assert output["monitoring"]["monitoring"]["changed"] is False
    assert output["monitoring"]["monitoring"]["reason"] in NOT_CHANGED


def test_stopped_instances_are_cold_migrated_and_confirmed(cloud, make_hosts):
    host, _, _ = make_hosts(3)
    stopped = cloud.boot("stopped", host, state="stopped")
    running = cloud.boot("running", host)

    kept = cloud.run_workflow(START, {"host": host, "cold_migration": "never"}, timeout=600)

    # never: the stopped one stays, the host is not emptied, what moved stays moved
    assert kept["state"] == "ERROR"
    assert kept["output"]["failed_step"] == "drain"
    error = kept["output"]["error"]
    assert error["reason"] == "host_not_emptied"
    assert "stopped" in error["message"] and "stay where they went" in error["message"]
    assert host_of(cloud.server(stopped)) == host
    assert host_of(cloud.server(running)) != host
    assert in_maintenance(cloud, host)

    moved = cloud.run_workflow(START, {"host": host}, timeout=600)

    assert moved["state"] == "SUCCESS", moved.get("output")
    server = cloud.server(stopped)
    assert host_of(server) != host and server.status == "SHUTOFF"
    assert [m.status for m in moves(cloud, stopped, "migration")] == ["confirmed"]
    assert moves(cloud, stopped) == []
    outcomes = {i["id"]: i["outcome"] for i in moved["output"]["drain"]["instances"]}
    assert outcomes == {stopped: "cold_migrated", running: "already_migrated"}
    assert len(moves(cloud, running)) == 1


def test_not_enough_capacity_stops_and_leaves_what_moved(cloud, make_hosts):
    host, target, _ = make_hosts(3)
    nova = cloud.nova()
    # the fake hypervisor has 800000 MB of RAM: one of these fills a host
    big = next((f for f in nova.flavors.list(is_public=None) if f.name == "selfheal-half"),
               None) or nova.flavors.create("selfheal-half", 400000, 1, 1)
    occupant = nova.servers.create("occupant", cloud.image_id(), big.id, nics="none",
                                   availability_zone=f"nova:{target}")
    hog = nova.servers.create("hog", cloud.image_id(), big.id, nics="none",
                              availability_zone=f"nova:{host}")
    small = cloud.boot("small", host)
    cloud.wait_servers([occupant.id, hog.id], "ACTIVE")

    execution = cloud.run_workflow(START, {"host": host, "target_hosts": [target],
                                           "max_attempts": 2}, timeout=600)

    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "host_not_emptied"
    assert "1 of 2 instances are still on" in error["message"]
    assert host_of(cloud.server(small)) == target
    assert host_of(cloud.server(hog)) == host
    assert cloud.server(hog).status == "ACTIVE"
    assert {m.status for m in moves(cloud, hog)} <= {"error", "failed"}
    assert in_maintenance(cloud, host)


def test_host_failure_flow_refuses_a_host_in_maintenance_unless_forced(cloud, make_hosts):
    host, _, _ = make_hosts(3)
    stopped = cloud.boot("left-behind", host, state="stopped")
    start = cloud.run_workflow(START, {"host": host, "cold_migration": "never"}, timeout=600)
    assert start["state"] == "ERROR" and start["output"]["error"]["reason"] == "host_not_emptied"
    cloud.fail_host(host)  # the host really dies during its maintenance

    refused = cloud.run_workflow(EVACUATE, {"host": host})

    assert refused["state"] == "ERROR"
    assert refused["output"]["error"]["reason"] == "host_in_maintenance"
    svc = cloud.service(host)
    assert svc.forced_down is False and in_maintenance(cloud, host)
    assert cloud.evacuations(stopped) == []

    forced = cloud.run_workflow(EVACUATE, {"host": host, "force": True})

    assert forced["state"] == "SUCCESS", forced.get("output")
    server = cloud.server(stopped)
    assert host_of(server) != host and server.status == "SHUTOFF"
    assert len(cloud.evacuations(stopped)) == 1


def test_twice_in_a_row_the_second_run_is_a_no_op(cloud, make_hosts):
    host, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", host) for i in range(3)]

    first = cloud.run_workflow(START, {"host": host}, timeout=600)
    marker = cloud.service(host).disabled_reason
    second = cloud.run_workflow(START, {"host": host}, timeout=600)

    for execution in (first, second):
        assert execution["state"] == "SUCCESS", execution.get("output")
    assert second["output"]["monitoring"]["changed"] is False
    assert second["output"]["monitoring"]["changes"] == []
    assert second["output"]["drain"]["changed"] is False
    assert {i["outcome"] for i in second["output"]["drain"]["instances"]} == {
        "already_migrated"}
    assert cloud.service(host).disabled_reason == marker
    for server in servers:
        assert len(moves(cloud, server)) == 1

    done = cloud.run_workflow(FINISH, {"host": host})
    again = cloud.run_workflow(FINISH, {"host": host})

    assert done["state"] == again["state"] == "SUCCESS", (done.get("output"),
                                                          again.get("output"))
    assert done["output"]["result"]["changed"] is True
    assert again["output"]["result"]["changed"] is False
    assert again["output"]["result"]["changes"] == []
    svc = cloud.service(host)
    assert svc.status == "enabled" and not svc.disabled_reason


@pytest.mark.parametrize("bad, fragment, step", [
    # the input rules, checked before anything is read
    ({"concurrency": 0}, "'concurrency' must be at least 1", "check_inputs"),
    ({"cold_migration": "always"}, "'cold_migration' must be one of", "check_inputs"),
    ({"until": "tomorrow"}, "'until' must be a UTC time", "check_inputs"),
    # what only Nova can tell, in the dry-run plan before anything changes
    ({"host": "no-such-host"}, "no nova-compute service on host 'no-such-host'", "plan"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(cloud, make_hosts, bad, fragment,
                                                        step):
    host, _, _ = make_hosts(3)
    server = cloud.boot("vm", host)

    execution = cloud.run_workflow(START, dict({"host": host}, **bad))

    assert execution["state"] == "ERROR"
    assert execution["output"]["failed_step"] == step
    assert fragment in execution["output"]["error"]["message"]
    assert cloud.service(host).status == "enabled"
    assert host_of(cloud.server(server)) == host and moves(cloud, server) == []


def test_dry_runs_change_nothing(cloud, make_hosts):
    host, _, _ = make_hosts(3)
    server = cloud.boot("vm", host)

    plan = cloud.run_workflow(START, {"host": host, "dry_run": True})

    assert plan["state"] == "SUCCESS", plan.get("output")
    assert plan["output"]["drain"] is None and plan["output"]["monitoring"] is None
    assert by_plan(plan) == {server: "planned"}
    # what a real run would do: the service last (after the monitor, if any)
    assert plan["output"]["plan"]["monitoring"]["changes"][-1]["change"] == "disabled"
    assert cloud.service(host).status == "enabled"
    assert host_of(cloud.server(server)) == host and moves(cloud, server) == []

    cloud.run_workflow(START, {"host": host}, timeout=600)
    marker = cloud.service(host).disabled_reason
    check = cloud.run_workflow(FINISH, {"host": host, "dry_run": True})

    assert check["state"] == "SUCCESS", check.get("output")
    assert check["output"]["result"] is None
    assert check["output"]["check"]["changes"][-1]["change"] == "enabled"
    assert check["output"]["check"]["changed"] is False
    assert cloud.service(host).disabled_reason == marker


def by_plan(execution):
    return {i["id"]: i["outcome"] for i in execution["output"]["plan"]["drain"]["instances"]}


def test_require_monitoring_without_vitrage_fails_and_changes_nothing(cloud, make_hosts):
    if vitrage.status()["healthy"]:
        pytest.skip("Vitrage is running in this lab")
    host, _, _ = make_hosts(3)
    server = cloud.boot("vm", host)

    execution = cloud.run_workflow(START, {"host": host, "require_monitoring": True})

    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "monitoring_unavailable"
    assert error["details"]["monitoring_reason"] in NOT_CHANGED
    assert cloud.service(host).status == "enabled"
    assert moves(cloud, server) == []


# --- with Vitrage's real evaluator ------------------------------------------

@pytest.fixture(scope="module")
def evaluator(lab_info):
    info = lab.up_vitrage()
    # the actions find Vitrage through the cloud configuration (endpoints.rca)
    assert "rca" in json.loads(pathlib.Path(info["cloud_config"]).read_text())["endpoints"]
    yield info
    vitrage.down()
    lab.write_cloud_config(info["nova"])


@pytest.fixture
def fresh(evaluator):
    vitrage.reset_notifications()
    return evaluator


def calls_for(workflow, host):
    return [n for n in vitrage.notifications()
            if n["workflow"] == workflow and n["input"].get("host") == host]


def wait_for_calls(workflow, host, count, timeout=20):
    deadline = time.monotonic() + timeout
    while len(calls_for(workflow, host)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return calls_for(workflow, host)


def maintenance_alarms(host):
    return [a for a in vitrage.alarms() if a["name"] == alarm_names.MAINTENANCE_ALARM
            and a["resource_type"] == "nova.host" and a["resource_name"] == host]


def test_maintenance_silences_vitrage_for_that_host_only(fresh, cloud, make_hosts):
    quiet, noisy, _ = make_hosts(3)
    cloud.boot("in-maintenance", quiet)
    cloud.boot("elsewhere", noisy)
    vitrage.refresh()
    posted = len(vitrage.api_events())

    start = cloud.run_workflow(START, {"host": quiet, "reason": "BIOS update"}, timeout=600)

    assert start["state"] == "SUCCESS", start.get("output")
    monitoring = start["output"]["monitoring"]["monitoring"]
    assert monitoring == {"backend": "vitrage", "in_maintenance": True, "changed": True}
    # it went through python-vitrageclient to Vitrage's event API
    event = vitrage.api_events()[posted:]
    assert [e["type"] for e in event] == [alarm_names.MAINTENANCE_ALARM]
    assert event[0]["details"]["hostname"] == quiet
    assert event[0]["details"]["status"] == "down"
    assert len(maintenance_alarms(quiet)) == 1
    assert "[vitrage" in cloud.service(quiet).disabled_reason

    vitrage.post_event("nic.down", quiet)
    vitrage.post_event("nic.down", noisy)
    wait_for_calls(EVACUATE, noisy, 1)
    time.sleep(2)

    assert calls_for(EVACUATE, quiet) == []
    assert len(calls_for(EVACUATE, noisy)) == 1
    # leave no fault behind for the next test's hosts
    vitrage.post_event("nic.down", quiet, status="up")


def test_finish_only_on_a_healthy_host_then_faults_heal_again(fresh, cloud, make_hosts):
    host, _, _ = make_hosts(3)
    server = cloud.boot("vm", host)
    vitrage.refresh()
    start = cloud.run_workflow(START, {"host": host}, timeout=600)
    assert start["state"] == "SUCCESS", start.get("output")
    assert host_of(cloud.server(server)) != host
    marker = cloud.service(host).disabled_reason
    cloud.fail_host(host)  # the work: the host is down

    refused = cloud.run_workflow(FINISH, {"host": host})

    assert refused["state"] == "ERROR"
    assert refused["output"]["failed_step"] == "check_healthy"
    assert refused["output"]["error"]["reason"] == "host_not_healthy"
    assert cloud.service(host).disabled_reason == marker
    assert cloud.service(host).status == "disabled"
    assert len(maintenance_alarms(host)) == 1

    nova_box.start_host(host)  # the work is done, nova-compute runs again
    cloud.wait_services([host], "up")
    done = cloud.run_workflow(FINISH, {"host": host})

    assert done["state"] == "SUCCESS", done.get("output")
    result = done["output"]["result"]
    assert [c["change"] for c in result["changes"]] == ["maintenance_alarm_cleared", "enabled"]
    svc = cloud.service(host)
    assert svc.status == "enabled" and not svc.disabled_reason
    assert maintenance_alarms(host) == []
    assert calls_for(EVACUATE, host) == []

    vitrage.post_event("nic.down", host)
    calls = wait_for_calls(EVACUATE, host, 1)

    assert len(calls) == 1 and calls[0]["input"] == {"host": host, "reason": "nic.down"}
    vitrage.post_event("nic.down", host, status="up")
