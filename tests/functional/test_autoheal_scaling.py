# SPDX-License-Identifier: Apache-2.0
"""Healing and auto-scaling together on the lab's real Heat, Zaqar and
Mistral (issue 19, test 3), with the shipped
heat_templates/autohealing_autoscaling_group.yaml itself: its
OS::Heat::AutoScalingGroup and scaling policies are Heat's; only what the
no-auth lab cannot create stands in (:data:`autoheal_scenario.SCALING_REGISTRY`:
the Zaqar resources, which the test subscribes itself, and the policies'
Keystone user) and the members' servers are lab resources.
"""

import time

import pytest

pytestmark = pytest.mark.functional


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def assert_healed_then_scaled(heal_lab, stack_id, victim, execution):
    """``victim`` was replaced and the heal verified it, the stack is
    UPDATE_COMPLETE, and the group reaches 4 members keeping the healed one.

    Heat either applied the scale-up signal or lost it: ignored while the
    group itself was being updated (NoActionRequired), or superseded by the
    heal's update while the resize was still in progress. A lost signal is
    what the scaling alarm's repeated action sends again.
    """
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    # replaced by the heal's own update, or (seen on the lab) by the resize
    # the heal waited for, which replaced the member it had marked unhealthy
    assert result["outcome"] in ("replaced", "already_replaced"), result
    wait_for(lambda: not heal_lab.scaling(stack_id), "the scale-up never ended")
    after = heal_lab.servers(stack_id)
    assert victim not in after and result["member"]["new_physical_id"] in after
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    assert len(after) in (3, 4), after
    if len(after) == 3:
        heal_lab.signal(stack_id, "scale_up_policy")
    heal_lab.wait_scaled(stack_id, 4)
    assert set(after) <= set(heal_lab.servers(stack_id))
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"


def test_a_scale_up_signal_during_a_heal_ends_right(heal_lab, scaling_group):
    stack_id, queue = scaling_group()
    before = heal_lab.servers(stack_id)
    victim = sorted(before)[0]
    heal_lab.post_alarm(queue, victim)
    wait_for(lambda: heal_lab.stack(stack_id).stack_status == "UPDATE_IN_PROGRESS",
             "the heal never started its update")
    heal_lab.signal(stack_id, "scale_up_policy")  # accepted by the API
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert_healed_then_scaled(heal_lab, stack_id, victim, execution)


def test_a_heal_during_a_scale_up_waits_for_it_and_the_group_keeps_the_new_size(
        heal_lab, scaling_group):
    stack_id, queue = scaling_group(create_seconds=8)
    before = heal_lab.servers(stack_id)
    victim = sorted(before)[0]
    heal_lab.signal(stack_id, "scale_up_policy")
    wait_for(lambda: heal_lab.scaling(stack_id), "the scale-up never started")
    heal_lab.post_alarm(queue, victim)
    [execution] = heal_lab.wait_triggered(stack_id, 1, timeout=180)
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    # the heal waited for the resize before it marked anything, then
    # replaced the member with its own update: the scale-up was not superseded
    assert result["outcome"] == "replaced", result
    assert result["waited_for_updates"] >= 1, result
    assert not heal_lab.scaling(stack_id)
    after = heal_lab.servers(stack_id)
    assert len(after) == 4 and victim not in after, after
    assert result["member"]["new_physical_id"] in after
    assert set(before) - {victim} <= set(after)
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"


def test_a_scale_in_that_removes_a_member_whose_alarm_is_queued_is_a_clear_no_op(
        heal_lab, scaling_group):
    stack_id, queue = scaling_group(min_size=2, delete_seconds=3)
    heal_lab.signal(stack_id, "scale_up_policy")
    heal_lab.wait_scaled(stack_id, 3)
    before = heal_lab.servers(stack_id)
    heal_lab.signal(stack_id, "scale_down_policy")

    def leaving():
        return [r.physical_resource_id
                for r in heal_lab.heat().resources.list(stack_id, nested_depth=3)
                if r.resource_name == "server" and r.resource_status == "DELETE_IN_PROGRESS"]

    wait_for(leaving, "the scale-in never started deleting a member")
    [gone] = leaving()
    heal_lab.post_alarm(queue, gone)  # while its member is being removed
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    assert result["outcome"] == "member_removed" and result["changes"] == []
    assert result["member"]["old_physical_id"] == gone
    heal_lab.wait_scaled(stack_id, 2)
    assert set(heal_lab.servers(stack_id)) == set(before) - {gone}
    # and an alarm for it after the scale-in: the same no-op
    heal_lab.post_alarm(queue, gone)
    executions = heal_lab.wait_triggered(stack_id, 2)
    assert [e["state"] for e in executions] == ["SUCCESS", "SUCCESS"]
    assert {e["output"]["result"]["outcome"] for e in executions} == {"member_removed"}
