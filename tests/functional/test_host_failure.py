# SPDX-License-Identifier: Apache-2.0
"""The host failure flow on real Mistral and real Nova (the lab).

Each test fails a host of its own by stopping its nova-compute in the lab,
runs selfheal.host_failure.evacuate_host through Mistral's API exactly as an
operator would, and then checks Nova itself: where each server is, its
state, and its evacuation migration records.
"""

import pytest

from selfheal_lab import mistral_client
from selfheal_lab.services import nova as nova_box
from tests.functional.servers import host_of

WF = "selfheal.host_failure.evacuate_host"


def outcomes(execution):
    return {i["id"]: i for i in execution["output"]["evacuation"]["instances"]}


def done_evacuations(cloud, server_id):
    # "completed" once the failed host came back and cleaned up
    return [m for m in cloud.evacuations(server_id) if m.status in ("done", "completed")]


def test_mixed_host_recovers_and_each_instance_is_proven(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    ids = {
        "running": cloud.boot("running", failed),
        "ha": cloud.boot("ha", failed, metadata={"HA_Enabled": "True"}),
        "stopped": cloud.boot("stopped", failed, state="stopped"),
        "locked": cloud.boot("locked", failed, state="locked"),
        "paused": cloud.boot("paused", failed, state="paused"),
        "error": cloud.boot("error", failed, state="error"),
        "excluded": cloud.boot("excluded", failed, metadata={"selfheal_exclude": "true"}),
    }
    cloud.fail_host(failed)

    execution = cloud.run_workflow(WF, {"host": failed, "reason": "NIC down"})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    found = outcomes(execution)
    live = cloud.up_hosts()
    for name in ("running", "ha", "locked", "paused"):
        server = cloud.server(ids[name])
        assert host_of(server) != failed and host_of(server) in live, name
        assert server.status == "ACTIVE", name
        assert len(done_evacuations(cloud, ids[name])) == 1, name
        assert found[ids[name]]["outcome"] == "evacuated"
        assert found[ids[name]]["destination"] == host_of(server)
    stopped = cloud.server(ids["stopped"])
    assert host_of(stopped) in live and stopped.status == "SHUTOFF"
    assert len(done_evacuations(cloud, ids["stopped"])) == 1
    assert cloud.server(ids["locked"]).locked is True
    for name, reason in (("error", "error_before_failure"), ("excluded", "excluded_by_metadata")):
        server = cloud.server(ids[name])
        assert host_of(server) == failed, name
        assert cloud.evacuations(ids[name]) == [], name
        assert found[ids[name]]["outcome"] == "skipped"
        assert found[ids[name]]["reason"] == reason
    # HA_Enabled went first
    order = [i["name"] for i in execution["output"]["evacuation"]["instances"]]
    assert order[0] == "ha"
    svc = cloud.service(failed)
    assert svc.forced_down is True and svc.status == "disabled"
    assert svc.disabled_reason.startswith("selfheal:fenced ")
    assert f"by {execution['id']}: NIC down" in svc.disabled_reason


def test_background_failure_is_retried_elsewhere(cloud, make_hosts):
    failed, flaky, good = make_hosts(3)
    server = cloud.boot("vm", failed)
    cloud.fail_host(failed)
    nova_box.inject_spawn_failures(flaky, 1)

    execution = cloud.run_workflow(WF, {"host": failed, "target_hosts": [flaky, good]})

    assert execution["state"] == "SUCCESS", execution.get("output")
    entry = outcomes(execution)[server]
    assert entry["attempts"] == 2
    assert entry["attempt_log"][0]["destination"] == flaky
    assert entry["attempt_log"][0]["status"] in ("failed", "error")
    assert host_of(cloud.server(server)) == good
    assert cloud.server(server).status == "ACTIVE"


def test_unrecoverable_instances_end_in_error_with_a_summary(cloud, make_hosts):
    failed, broken, _ = make_hosts(3)
    servers = [cloud.boot("vm-1", failed), cloud.boot("vm-2", failed)]
    cloud.fail_host(failed)
    nova_box.inject_spawn_failures(broken, 100)

    execution = cloud.run_workflow(WF, {"host": failed, "target_hosts": [broken],
                                        "max_attempts": 2})

    assert execution["state"] == "ERROR"
    output = execution["output"]
    assert output["failed_step"] == "evacuate"
    error = output["error"]
    assert error["reason"] == "evacuation_incomplete"
    assert "2 of 2 instances" in error["message"] and "vm-1" in error["message"]
    assert error["details"]["totals"] == {"failed": 2}
    for server in servers:
        assert host_of(cloud.server(server)) == failed


def test_concurrent_runs_and_rerun_never_evacuate_twice(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot(f"vm-{i}", failed) for i in range(6)]
    cloud.fail_host(failed)

    first = cloud.start_workflow(WF, {"host": failed})
    second = cloud.start_workflow(WF, {"host": failed})
    results = [cloud.wait_workflow(first["id"]), cloud.wait_workflow(second["id"])]
    rerun = cloud.run_workflow(WF, {"host": failed})

    for execution in results + [rerun]:
        assert execution["state"] == "SUCCESS", execution.get("output")
    for server in servers:
        assert len(cloud.evacuations(server)) == 1, cloud.evacuations(server)
        assert host_of(cloud.server(server)) != failed
    assert {i["outcome"] for i in outcomes(rerun).values()} == {"already_evacuated"}
    assert rerun["output"]["evacuation"]["changed"] is False


def test_host_still_up_is_refused_and_nothing_changes(cloud, make_hosts):
    alive, _, _ = make_hosts(3)
    server = cloud.boot("vm", alive)

    # the wait itself (120 s by default) is test_chaos.py's; 5 s here
    execution = cloud.run_workflow(WF, {"host": alive, "wait_for_down": 5})

    assert execution["state"] == "ERROR"
    assert execution["output"]["error"]["reason"] == "host_still_up"
    svc = cloud.service(alive)
    assert svc.forced_down is False and svc.status == "enabled"
    assert cloud.evacuations(server) == []
    assert host_of(cloud.server(server)) == alive


def test_too_many_hosts_down_is_refused_and_nothing_changes(cloud, make_hosts):
    failed, other, _ = make_hosts(3)
    server = cloud.boot("vm", failed)
    cloud.fail_host(failed)
    cloud.fail_host(other)
    total = len(cloud.nova().services.list(binary="nova-compute"))
    down = sum(1 for s in cloud.nova().services.list(binary="nova-compute")
               if s.state == "down")
    # a ratio just below what is down now, so the real count decides
    ratio = (down - 1) / total

    execution = cloud.run_workflow(WF, {"host": failed, "max_down_ratio": ratio})

    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "too_many_hosts_down"
    assert failed in error["details"]["down_hosts"] and other in error["details"]["down_hosts"]
    assert cloud.service(failed).forced_down is False
    assert cloud.evacuations(server) == []


def test_dry_run_returns_the_plan_and_changes_nothing(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    running = cloud.boot("running", failed)
    errored = cloud.boot("errored", failed, state="error")
    cloud.fail_host(failed)

    execution = cloud.run_workflow(WF, {"host": failed, "dry_run": True})

    assert execution["state"] == "SUCCESS", execution.get("output")
    output = execution["output"]
    assert [c["change"] for c in output["fencing"]["changes"]] == ["forced_down", "disabled"]
    assert output["evacuation"] is None
    plan = {i["id"]: i for i in output["plan"]["instances"]}
    assert plan[running]["outcome"] == "planned" and plan[running]["decision"] == "evacuate"
    assert plan[errored]["outcome"] == "skipped"
    assert plan[errored]["reason"] == "error_before_failure"
    svc = cloud.service(failed)
    assert svc.forced_down is False and svc.status == "enabled"
    assert cloud.evacuations(running) == []


@pytest.mark.parametrize("workflow_input, reason, fragment", [
    ({"host": "no-such-host"}, "host_not_found", "Known compute hosts"),
    ({"host": ""}, "invalid_input", "'host' is required"),
    ({"host": "HOST", "concurrency": "many"}, "invalid_input", "'concurrency' must be a number"),
    ({"host": "HOST", "max_down_ratio": [1]}, "invalid_input", "'max_down_ratio'"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(cloud, make_hosts, workflow_input,
                                                        reason, fragment):
    failed, _, _ = make_hosts(3)
    server = cloud.boot("vm", failed)
    cloud.fail_host(failed)
    if workflow_input["host"] == "HOST":
        workflow_input = dict(workflow_input, host=failed)

    execution = cloud.run_workflow(WF, workflow_input)

    assert execution["state"] == "ERROR"
    assert execution["output"]["error"]["reason"] == reason
    assert fragment in execution["output"]["error"]["message"]
    assert cloud.service(failed).forced_down is False
    assert cloud.evacuations(server) == []


def test_unknown_option_is_refused_by_mistral_before_anything_runs(cloud):
    with pytest.raises(mistral_client.MistralAPIError) as error:
        cloud.start_workflow(WF, {"host": "compute-1", "concurency": 3})
    assert "concurency" in str(error.value)


@pytest.mark.parametrize("microversion", ["2.60", "2.96"])
def test_works_at_old_and_newest_microversion(cloud, make_hosts, microversion):
    failed, _, _ = make_hosts(3)
    running = cloud.boot("running", failed)
    stopped = cloud.boot("stopped", failed, state="stopped")
    cloud.fail_host(failed)

    execution = cloud.run_workflow(WF, {"host": failed, "microversion": microversion})

    assert execution["state"] == "SUCCESS", execution.get("output")
    assert execution["output"]["evacuation"]["microversion"] == microversion
    assert cloud.server(running).status == "ACTIVE"
    assert cloud.server(stopped).status == "SHUTOFF"
    for server in (running, stopped):
        assert host_of(cloud.server(server)) != failed
        assert len(done_evacuations(cloud, server)) == 1
    started = [c for c in execution["output"]["evacuation"]["changes"]
               if c["change"] == "started"]
    # Nova >= 2.95 would leave evacuated servers stopped; the evacuation is
    # sent at 2.94, so Nova itself brings the running one back: no start.
    assert started == []
    actions = cloud.nova().instance_action.list(running)
    assert [a.action for a in actions].count("start") == 0


def test_repaired_host_is_enabled_only_when_it_reports_again(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    cloud.boot("vm", failed)
    cloud.fail_host(failed)
    assert cloud.run_workflow(WF, {"host": failed})["state"] == "SUCCESS"

    # still dead: Nova holds its evacuations until nova-compute restarts
    refused = cloud.run_workflow("selfheal.host_failure.enable_host", {"host": failed})
    assert refused["state"] == "ERROR"
    assert refused["output"]["error"]["reason"] == "host_not_recovered"
    svc = cloud.service(failed)
    assert svc.forced_down is True and svc.status == "disabled"

    nova_box.start_host(failed)
    enabled = cloud.run_workflow("selfheal.host_failure.enable_host", {"host": failed})
    assert enabled["state"] == "SUCCESS", enabled.get("output")
    assert [c["change"] for c in enabled["output"]["result"]["changes"]] == [
        "forced_down_lifted", "enabled"]
    cloud.wait_services([failed], "up")
    svc = cloud.service(failed)
    assert svc.forced_down is False and svc.status == "enabled"


def test_evacuate_instances_heals_only_the_given_ones(cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    chosen = cloud.boot("chosen", failed)
    other = cloud.boot("other", failed)
    cloud.fail_host(failed)

    execution = cloud.run_workflow("selfheal.host_failure.evacuate_instances",
                                   {"instance_ids": [chosen]})

    assert execution["state"] == "SUCCESS", execution.get("output")
    assert host_of(cloud.server(chosen)) != failed
    assert host_of(cloud.server(other)) == failed
    assert cloud.evacuations(other) == []


def test_mistral_has_our_actions(cloud):
    names = {a["name"] for a in mistral_client.list_actions(cloud.mistral_url)}
    assert {"selfheal.fence_host", "selfheal.evacuate_and_verify", "selfheal.enable_host",
            "selfheal.locate_instances"} <= names


def test_fencing_workflow_powers_the_node_off_before_fencing(cloud, make_hosts):
    """The hook runs first; after it, a host Nova still sees up may be fenced,
    but only when the caller says it knows the host is dead (two signals):
    the plan before the hook no longer treats the host as powered off."""
    alive, _, _ = make_hosts(3)
    server = cloud.boot("vm", alive)
    control = cloud.nova_info["control_url"]
    mistral_client.create_or_update_workbook(cloud.mistral_url, f"""---
version: '2.0'
name: labpower
workflows:
  power_off:
    input:
      - host
    tasks:
      cut_power:
        action: std.http
        input:
          url: {control}/hosts/<% $.host %>/stop
          method: POST
""")

    refused = cloud.run_workflow(WF, {"host": alive, "fencing_workflow": "labpower.power_off",
                                      "wait_for_down": 2})
    assert refused["state"] == "ERROR"
    assert refused["output"]["error"]["reason"] == "host_still_up"
    assert {h["host"]: h["running"] for h in nova_box.hosts()}[alive] is True  # hook not run

    execution = cloud.run_workflow(WF, {"host": alive, "fencing_workflow": "labpower.power_off",
                                        "host_known_dead": True})

    assert execution["state"] == "SUCCESS", execution.get("output")
    assert {h["host"]: h["running"] for h in nova_box.hosts()}[alive] is False
    assert cloud.service(alive).forced_down is True
    assert host_of(cloud.server(server)) != alive
    assert len(done_evacuations(cloud, server)) == 1
