# SPDX-License-Identifier: Apache-2.0
"""Liveness of autohealing on the lab's real Heat, Zaqar and Mistral (issue
19, test 4): a heal whose update fails once is retried and heals; a stack
that someone else's update left failed is reported and left untouched.

The failure is injected in Heat itself: the members are the lab's
``Selfheal::Lab::Member`` (``OS::Heat::TestResource`` whose creations fail
while the lab says so, as a replacement server does when Nova finds no
valid host).
"""

import pytest

from selfheal_lab import autoheal_scenario
from selfheal_lab import mistral_client
from selfheal_lab.services import heat as heat_service

pytestmark = pytest.mark.functional

FLAKY = autoheal_scenario.FLAKY_MEMBER


def record(heal_lab, stack_id):
    return mistral_client.get_environment(heal_lab.mistral_url,
                                          f"selfheal-stack-update-{stack_id}")


def test_a_heal_whose_update_fails_once_is_retried_and_heals(heal_lab, group):
    stack_id, queue = group(member_type=FLAKY)
    before = heal_lab.members(stack_id)
    heat_service.fail_member_creates(stack_id, failures=1)
    heal_lab.post_alarm(queue, before["1"])
    [execution] = heal_lab.wait_triggered(stack_id, 1, timeout=180)
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    assert result["outcome"] == "replaced"
    # the first update failed in Heat (the fault was taken), the retry healed
    assert heat_service.member_create_faults(stack_id)["taken"] == 1
    assert [c["attempt"] for c in result["changes"] if c["change"] == "updated"] == [1, 2]
    after = heal_lab.members(stack_id)
    assert after["1"] != before["1"] and result["member"]["new_physical_id"] == after["1"]
    assert result["member"]["old_physical_id"] == before["1"]
    assert after["0"] == before["0"] and after["2"] == before["2"]
    stack = heal_lab.stack(stack_id)
    assert stack.stack_status == "UPDATE_COMPLETE"
    failed = [e for e in heal_lab.heat().events.list(stack_id, nested_depth=2)
              if e.resource_status == "CREATE_FAILED" and e.resource_name == "1"]
    assert failed and "No valid host" in failed[0].resource_status_reason
    assert record(heal_lab, stack_id) is None  # forgotten once ours completed


def test_a_stack_failed_by_someone_else_is_reported_and_left_untouched(heal_lab, group):
    stack_id, queue = group(member_type=FLAKY)
    before = heal_lab.members(stack_id)
    # the owner grows the group and the new member cannot be placed
    heat_service.fail_member_creates(stack_id, failures=1)
    heal_lab.heat().stacks.update(
        stack_id, template=autoheal_scenario.group_template(4, member_type=FLAKY))
    with pytest.raises(RuntimeError, match="UPDATE_FAILED"):
        heal_lab.wait_stack(stack_id, "UPDATE_COMPLETE")
    failed = heal_lab.stack(stack_id)
    heal_lab.post_alarm(queue, before["0"])
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "stack_failed", error
    assert error["details"]["failed_update"] == "not_selfheal"
    assert "did not start" in error["message"] and "No valid host" in error["message"]
    assert "openstack stack event list" in error["message"]
    assert error["changes"] == []
    # untouched: no update, no mark
    now = heal_lab.stack(stack_id)
    assert (now.stack_status, now.updated_time) == ("UPDATE_FAILED", failed.updated_time)
    resources = heal_lab.heat().resources.list(stack_id, nested_depth=2)
    assert not [r for r in resources if r.resource_status == "CHECK_FAILED"]
    assert heal_lab.members(stack_id)["0"] == before["0"]
