# SPDX-License-Identifier: Apache-2.0
"""Vitrage-triggered healing: our templates in Vitrage's real evaluator.

Vitrage 15's ScenarioEvaluator runs in the lab with our templates loaded by
Vitrage's own template code, on an entity graph read from the lab's Nova.
Its execute_mistral calls go through Vitrage's own Mistral notifier to the
lab's Mistral, which heals the lab's Nova.
"""

import time

import pytest

from selfheal_lab import lab
from selfheal_lab.services import vitrage
from selfheal_tools import data
from selfheal_tools import workbook_checks

HOST_WF = "selfheal.host_failure.evacuate_host"
INSTANCE_WF = "selfheal.host_failure.evacuate_instances"


@pytest.fixture(scope="module")
def evaluator(lab_info):
    info = lab.up_vitrage()
    yield info
    vitrage.down()


@pytest.fixture
def fresh(evaluator):
    vitrage.reset_notifications()
    return evaluator


def calls_for(workflow, **inputs):
    return [n for n in vitrage.notifications() if n["workflow"] == workflow
            and all(n["input"].get(k) == v for k, v in inputs.items())]


def wait_for_calls(workflow, count, timeout=20, **inputs):
    deadline = time.monotonic() + timeout
    while len(calls_for(workflow, **inputs)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return calls_for(workflow, **inputs)


def host_of(server):
    return getattr(server, "OS-EXT-SRV-ATTR:host")


def test_every_template_passes_vitrage_validation(fresh):
    loaded = {t["name"]: t for t in vitrage.templates()}
    for path in data.vitrage_template_paths():
        result = vitrage.validate(path.read_text())
        assert result["is_valid_config"], (path.name, result)
    assert {"selfheal_host_failure", "selfheal_instance_unreachable"} <= set(loaded)
    assert all(t["status"] == "ACTIVE" for t in loaded.values()), loaded


@pytest.mark.parametrize("path", data.vitrage_template_paths(), ids=lambda p: p.name)
def test_a_broken_copy_fails_with_vitrages_message(fresh, path):
    # a condition naming an entity the template does not define
    broken = path.read_text().replace("[on] instance", "[on] instanse", 1)
    broken = broken.replace("[on] host", "[on] hots", 1)
    result = vitrage.validate(broken)
    assert not result["is_valid_config"]
    assert result["status_code"] == 10200, result
    assert result["message"]


def test_vitrage_accepts_typos_that_our_check_catches(fresh):
    """Why `selfheal check` exists: these load in Vitrage and never fire."""
    text = (data.vitrage_templates_dir() / "host_failure.yaml").read_text()
    broken = text.replace("type: nova.host", "type: nova.hots", 1)
    assert vitrage.validate(broken)["is_valid_config"]
    workflows = workbook_checks.workbook_workflows(data.workbook_paths())
    problems = workbook_checks.check_vitrage_template_text(broken, "copy.yaml", workflows)
    assert any("nova.hots" in str(p) for p in problems)


def test_nic_down_heals_the_host_once(fresh, cloud, make_hosts):
    failed, _, _ = make_hosts(3)
    servers = [cloud.boot("vm-1", failed), cloud.boot("vm-2", failed, state="stopped")]
    cloud.fail_host(failed)
    vitrage.refresh()

    vitrage.post_event("nic.down", failed)
    calls = wait_for_calls(HOST_WF, 1, host=failed)

    assert len(calls) == 1, vitrage.notifications()
    assert calls[0]["input"] == {"host": failed, "reason": "nic.down"}
    # the deduced alarms on the host's instances
    deduced = [a for a in vitrage.alarms() if a["name"] == "selfheal.instance.host_nic_down"]
    assert {a["resource_id"] for a in deduced} >= set(servers), vitrage.alarms()
    execution = cloud.wait_workflow(calls[0]["execution_id"], timeout=300)
    assert execution["state"] == "SUCCESS", execution.get("output")
    for server in servers:
        assert host_of(cloud.server(server)) != failed
        assert len(cloud.evacuations(server)) == 1

    # the same alarm again: Vitrage sends nothing new
    vitrage.post_event("nic.down", failed)
    time.sleep(2)
    assert len(calls_for(HOST_WF, host=failed)) == 1

    # a second failure event for the same host may start a second execution:
    # it must end as a no-op
    vitrage.post_event("compute.host.down", failed)
    time.sleep(2)
    for call in calls_for(HOST_WF, host=failed)[1:]:
        later = cloud.wait_workflow(call["execution_id"], timeout=300)
        assert later["state"] == "SUCCESS", later.get("output")
        assert later["output"]["evacuation"]["changed"] is False
    for server in servers:
        assert len(cloud.evacuations(server)) == 1


def test_cleared_alarm_runs_nothing(fresh, cloud, make_hosts):
    host, _, _ = make_hosts(3)
    cloud.boot("vm", host)
    vitrage.refresh()

    vitrage.post_event("nic.down", host, status="up")
    time.sleep(2)

    assert calls_for(HOST_WF, host=host) == []


def test_unreachable_instance_of_an_application_heals_that_instance_only(fresh, cloud,
                                                                         make_hosts):
    failed, _, _ = make_hosts(3)
    member = cloud.boot("app-member", failed, metadata={"selfheal_stack": "shop"})
    bystander = cloud.boot("bystander", failed)
    cloud.fail_host(failed)
    vitrage.refresh()

    vitrage.post_instance_event("instance.unreachable", member)
    calls = wait_for_calls(INSTANCE_WF, 1)

    assert len(calls) == 1
    assert calls[0]["input"]["instance_ids"] == member
    execution = cloud.wait_workflow(calls[0]["execution_id"], timeout=300)
    assert execution["state"] == "SUCCESS", execution.get("output")
    assert host_of(cloud.server(member)) != failed
    assert host_of(cloud.server(bystander)) == failed
    assert cloud.evacuations(bystander) == []
    assert calls_for(HOST_WF, host=failed) == []


def test_maintenance_silences_healing_for_that_host_only(fresh, cloud, make_hosts):
    quiet, noisy, _ = make_hosts(3)
    cloud.boot("in-maintenance", quiet)
    cloud.boot("elsewhere", noisy)
    vitrage.refresh()

    vitrage.set_maintenance(quiet, on=True)
    vitrage.post_event("nic.down", quiet)
    vitrage.post_event("nic.down", noisy)
    wait_for_calls(HOST_WF, 1, host=noisy)

    assert calls_for(HOST_WF, host=quiet) == []
    assert len(calls_for(HOST_WF, host=noisy)) == 1
