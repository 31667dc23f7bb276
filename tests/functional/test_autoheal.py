# SPDX-License-Identifier: Apache-2.0
"""The Heat autohealing chain on the lab's real Heat, Zaqar and Mistral.

An Aodh-format event alarm posted to a Zaqar queue reaches Mistral through a
subscription shaped like the one OS::Zaqar::MistralTrigger creates, and
selfheal.autoheal.heal_from_alarm replaces the member in Heat.
"""

import time
import uuid

import pytest

from selfheal_lab import autoheal_scenario
from selfheal_lab import lab
from selfheal_lab import zaqar_client

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def heal_lab(lab_info):
    lab.up_autoheal()
    return autoheal_scenario.AutohealLab()


@pytest.fixture
def group(heal_lab):
    """A fresh stack with 3 members and a queue triggering heal_from_alarm."""
    created = []

    def make(count=3, extra_input=None):
        name = f"ah-{uuid.uuid4().hex[:8]}"
        stack_id = heal_lab.create_group(name, count)
        queue = f"alarms-{name}"
        heal_lab.subscribe_trigger(queue, stack_id, extra_input=extra_input)
        created.append((stack_id, queue))
        return stack_id, queue

    yield make
    for stack_id, queue in created:
        zaqar_client.delete_queue(queue)
        heal_lab.delete(stack_id)


def outcomes(executions):
    return sorted(e["output"]["result"]["outcome"] for e in executions)


def test_alarm_through_zaqar_replaces_the_member_and_verifies_it(heal_lab, group):
    stack_id, queue = group()
    before = heal_lab.members(stack_id)
    heal_lab.post_alarm(queue, before["1"])
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "SUCCESS", execution.get("state_info")
    result = execution["output"]["result"]
    assert result["outcome"] == "replaced"
    assert result["member"]["old_physical_id"] == before["1"]
    after = heal_lab.members(stack_id)
    assert after["1"] != before["1"] and result["member"]["new_physical_id"] == after["1"]
    assert {k: v for k, v in after.items() if k != "1"} == {
        k: v for k, v in before.items() if k != "1"}
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    assert execution["output"]["alarm"]["traits"]["state"] == "stopped"


def test_five_alarms_for_one_member_within_a_second_replace_it_once(heal_lab, group):
    stack_id, queue = group()
    before = heal_lab.members(stack_id)
    for _ in range(5):
        heal_lab.post_alarm(queue, before["2"])
    executions = heal_lab.wait_triggered(stack_id, 5, timeout=180)
    assert [e["state"] for e in executions] == ["SUCCESS"] * 5, [
        e.get("state_info") for e in executions]
    # Heat's convergence engine accepts a second update while one runs, so
    # two alarms arriving in the same instant may both update; the member is
    # still replaced once, and the others see that and do nothing.
    found = outcomes(executions)
    assert set(found) == {"already_replaced", "replaced"} and found.count("replaced") <= 2
    assert sum(any(c["change"] == "marked_unhealthy" for c in e["output"]["result"]["changes"])
               for e in executions) == 1
    after = heal_lab.members(stack_id)
    assert after["2"] != before["2"]
    # one replacement: every execution names the same new member
    assert {e["output"]["result"]["member"]["new_physical_id"] for e in executions} == {
        after["2"]}
    events = heal_lab.heat().events.list(stack_id, nested_depth=2)
    created = [e for e in events if e.resource_name == "2"
               and e.resource_status == "CREATE_COMPLETE"]
    assert len(created) == 2  # the original member and its one replacement


def test_alarms_for_two_members_during_one_update_heal_both(heal_lab, group):
    stack_id, queue = group()
    before = heal_lab.members(stack_id)
    heal_lab.post_alarm(queue, before["0"])
    deadline = time.monotonic() + 60
    while heal_lab.stack(stack_id).stack_status != "UPDATE_IN_PROGRESS":
        assert time.monotonic() < deadline, "the first heal never started its update"
        time.sleep(0.1)
    heal_lab.post_alarm(queue, before["2"])
    executions = heal_lab.wait_triggered(stack_id, 2, timeout=180)
    assert [e["state"] for e in executions] == ["SUCCESS", "SUCCESS"]
    assert outcomes(executions) == ["replaced", "replaced"]
    after = heal_lab.members(stack_id)
    assert after["0"] != before["0"] and after["2"] != before["2"]
    assert after["1"] == before["1"]


@pytest.mark.parametrize("body, fragment", [
    ("this is not an alarm", "the message body is not JSON"),
    ({"alarm_id": "a", "reason_data": {"type": "event", "event": {"traits": []}}},
     "no traits"),
    ("UNKNOWN_MEMBER", "member_not_found"),
    ("OTHER_STACK_MEMBER", "member_not_found"),
])
def test_malformed_or_foreign_messages_fail_clearly_and_change_nothing(
        heal_lab, group, body, fragment):
    stack_id, queue = group()
    if body == "UNKNOWN_MEMBER":
        body = autoheal_scenario.aodh_event_alarm("no-such-server")
    elif body == "OTHER_STACK_MEMBER":
        other_id, _ = group(count=1)
        body = autoheal_scenario.aodh_event_alarm(heal_lab.members(other_id)["0"])
    before = heal_lab.members(stack_id)
    updated = heal_lab.stack(stack_id).updated_time
    zaqar_client.post(queue, body)
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert fragment in str(error), error
    assert error.get("message"), error
    assert heal_lab.members(stack_id) == before
    assert heal_lab.stack(stack_id).updated_time == updated


def test_dry_run_from_the_trigger_changes_nothing(heal_lab, group):
    stack_id, queue = group(extra_input={"dry_run": True})
    before = heal_lab.members(stack_id)
    heal_lab.post_alarm(queue, before["1"])
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "SUCCESS", execution.get("state_info")
    result = execution["output"]["result"]
    assert result["outcome"] == "would_replace" and result["dry_run"] is True
    assert [c["change"] for c in result["changes"]] == ["marked_unhealthy", "updated"]
    assert heal_lab.members(stack_id) == before
    assert heal_lab.stack(stack_id).stack_status == "CREATE_COMPLETE"


def test_plain_workflow_heals_by_resource_name(heal_lab, group, cloud):
    stack_id, _ = group()
    before = heal_lab.members(stack_id)
    execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                   {"stack": stack_id, "member": "0"}, timeout=120)
    assert execution["state"] == "SUCCESS", execution.get("state_info")
    assert execution["output"]["result"]["outcome"] == "replaced"
    assert heal_lab.members(stack_id)["0"] != before["0"]


def test_plain_workflow_refuses_a_failed_stack_and_a_whole_group(heal_lab, group, cloud):
    stack_id, _ = group()
    execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                   {"stack": stack_id, "member": "group"}, timeout=60)
    assert execution["state"] == "ERROR"
    assert execution["output"]["error"]["reason"] == "member_not_replaceable"
    execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                   {"stack": "no-such-stack", "member": "0"}, timeout=60)
    assert execution["output"]["error"]["reason"] == "stack_not_found"


def _validate_heat_template(heal_lab, group_text, member_text):
    import yaml

    # 99001 (service not in the catalog: the lab has no Nova, Aodh or Zaqar
    # in a Keystone catalog) is the only error ignored.
    return heal_lab.heat().stacks.validate(
        template=yaml.safe_load(group_text), files={"autohealing_member.yaml": member_text},
        environment={"parameters": {"image": "cirros", "flavor": "m1.tiny",
                                    "network": "private"}},
        ignore_errors="99001", show_nested=True)


def test_shipped_heat_templates_pass_heats_own_validation(heal_lab):
    from selfheal_tools import data

    group_text = (data.heat_templates_dir() / "autohealing_group.yaml").read_text()
    member_text = (data.heat_templates_dir() / "autohealing_member.yaml").read_text()
    result = _validate_heat_template(heal_lab, group_text, member_text)
    member = result["NestedParameters"]["members"]["NestedParameters"]["0"]
    assert set(member["Parameters"]) == {"image", "flavor", "network", "alarm_queue"}
    assert result["Parameters"]["heal_workflow"]["Default"] == (
        autoheal_scenario.TRIGGERED_WORKFLOW)
    # the same check catches a broken copy
    from heatclient import exc as heat_exc

    broken = group_text.replace("queue_name: {get_resource: alarm_queue}",
                                "queue_name: {get_resource: alarm_queu}")
    with pytest.raises(heat_exc.HTTPBadRequest) as err:
        _validate_heat_template(heal_lab, broken, member_text)
    assert "alarm_queu" in str(err.value)
