# SPDX-License-Identifier: Apache-2.0
"""The Heat autohealing chain on the lab's real Heat, Zaqar and Mistral.

An Aodh-format event alarm posted to a Zaqar queue reaches Mistral through a
subscription shaped like the one OS::Zaqar::MistralTrigger creates, and
selfheal.autoheal.heal_from_alarm replaces the member in Heat.
"""

import json
import os
import threading
import time
import uuid

import pytest

from selfheal_lab import autoheal_scenario
from selfheal_lab import mistral_client
from selfheal_lab import zaqar_client

pytestmark = pytest.mark.functional


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
    # one heal per stack (the claim): the first replaces the member, the
    # others see that and do nothing
    found = outcomes(executions)
    assert found.count("replaced") == 1 and found.count("already_replaced") == 4, found
    # a waiting heal marks its member while the holder may be marking the
    # same one (Heat takes a second mark of a CHECK_FAILED resource as a
    # no-op), so one or two report the mark; what must hold is one
    # replacement, below
    marks = [c for e in executions for c in e["output"]["result"]["changes"]
             if c["change"] == "marked_unhealthy"]
    assert 1 <= len(marks) <= 2 and {c["physical_id"] for c in marks} == {before["2"]}, marks
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
    # the second heal marked its member while it waited for the claim; the
    # holder's next round replaced it (already_replaced), or it did itself
    assert outcomes(executions) in (["already_replaced", "replaced"],
                                    ["replaced", "replaced"]), outcomes(executions)
    after = heal_lab.members(stack_id)
    assert after["0"] != before["0"] and after["2"] != before["2"]
    assert after["1"] == before["1"]
    assert {e["output"]["result"]["member"]["new_physical_id"] for e in executions} == {
        after["0"], after["2"]}


@pytest.mark.parametrize("body, fragment", [
    ("this is not an alarm", "the message body is not JSON"),
    ({"alarm_id": "a", "reason_data": {"type": "event", "event": {"traits": []}}},
     "no traits"),
    ([{"alarm_id": "a"}], "the message body is a list"),
    ("HUGE_MEMBER", "100000 characters long; at most 255"),
    ("UNKNOWN_MEMBER", "member_not_found"),
    ("OTHER_STACK_MEMBER", "member_not_found"),
])
def test_malformed_or_foreign_messages_fail_clearly_and_change_nothing(
        heal_lab, group, body, fragment):
    stack_id, queue = group()
    if body == "UNKNOWN_MEMBER":
        body = autoheal_scenario.aodh_event_alarm("no-such-server")
    elif body == "HUGE_MEMBER":
        body = autoheal_scenario.aodh_event_alarm("x" * 100_000)
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
    assert len(json.dumps(execution["output"])) < 3000  # what is echoed is bounded
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


def test_shipped_autoscaling_template_passes_heats_own_validation(heal_lab):
    """heat_templates/autohealing_autoscaling_group.yaml (issue 19, heal and
    scale): Heat's validation with the shipped member template."""
    import yaml
    from heatclient import exc as heat_exc

    from selfheal_tools import data

    text = (data.heat_templates_dir() / "autohealing_autoscaling_group.yaml").read_text()
    member_text = (data.heat_templates_dir() / "autohealing_member.yaml").read_text()
    result = _validate_heat_template(heal_lab, text, member_text)
    assert {"min_size", "max_size", "cooldown", "heal_workflow"} <= set(result["Parameters"])
    assert result["Parameters"]["heal_workflow"]["Default"] == (
        autoheal_scenario.TRIGGERED_WORKFLOW)
    template = yaml.safe_load(text)
    resources = template["resources"]
    assert resources["members"]["type"] == "OS::Heat::AutoScalingGroup"
    # a heal's existing=true update would resize the group back to it
    assert "desired_capacity" not in resources["members"]["properties"]
    assert {r["type"] for r in resources.values()} >= {"OS::Heat::ScalingPolicy",
                                                       "OS::Zaqar::MistralTrigger"}
    assert resources["heal_trigger"]["properties"]["params"] == {"evaluate_env": False}
    broken = text.replace("auto_scaling_group_id: {get_resource: members}",
                          "auto_scaling_group_id: {get_resource: member}", 1)
    with pytest.raises(heat_exc.HTTPBadRequest) as err:
        _validate_heat_template(heal_lab, broken, member_text)
    assert "member" in str(err.value)


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


# --- tenant text is data (issue 19, test 6) --------------------------------

ECHO_WORKFLOW = """
version: '2.0'
{name}:
  input:
    - x: null
  output:
    env: <% env() %>
    x: <% $.x %>
  tasks:
    done:
      action: std.noop
"""

#: text a tenant chooses (a server's display name, a state description)
TENANT_TEXT = {"yaql": "<% 6 * 7 %>", "jinja": "web-{{ 6 * 7 }}",
               "failing": "<% $.no.such.thing %>"}


def test_mistral_evaluates_the_env_unless_told_not_to_and_never_the_input(heal_lab):
    """Where Mistral 23 evaluates what a caller passes: every expression in
    params.env (what OS::Zaqar::MistralTrigger fills with the message), unless
    params.evaluate_env is false; nothing in the input."""
    url = heal_lab.mistral_url
    name = f"selfheal_test_echo_{uuid.uuid4().hex[:8]}"
    mistral_client.create_workflows(url, ECHO_WORKFLOW.format(name=name))
    try:
        safe = {k: v for k, v in TENANT_TEXT.items() if k != "failing"}

        def output(workflow_input, params):
            execution = mistral_client.create_execution(url, name, workflow_input, params)
            done = mistral_client.wait_execution(url, execution["id"], timeout=30)
            assert done["state"] == "SUCCESS", done.get("state_info")
            return done["output"]

        # the stock trigger's shape: the env is evaluated, the text changed
        found = output({}, {"env": {"notification": safe}})["env"]["notification"]
        assert found["yaql"] == 42 and found["jinja"] == "web-42"
        # and an expression that fails refuses the whole execution: 400, none made
        before = len(mistral_client.list_executions(url, name))
        with pytest.raises(mistral_client.MistralAPIError) as err:
            mistral_client.create_execution(url, name, {},
                                            {"env": {"notification": TENANT_TEXT}})
        assert err.value.status == 400
        assert len(mistral_client.list_executions(url, name)) == before
        # evaluate_env false (the shipped template's trigger): unchanged, and it runs
        found = output({}, {"evaluate_env": False, "env": {"notification": TENANT_TEXT}})
        assert found["env"]["notification"] == TENANT_TEXT
        # the input is never evaluated
        assert output({"x": TENANT_TEXT}, None)["x"] == TENANT_TEXT
    finally:
        for execution in mistral_client.list_executions(url, name):
            mistral_client._request("DELETE", mistral_client._url(
                url, f"/executions/{execution['id']}"))
        mistral_client.delete_workflow(url, name)


def test_alarms_whose_traits_hold_expressions_heal_with_the_text_unchanged(heal_lab, group):
    """Through the subscription of the shipped template (its trigger's
    params), alarms whose traits hold expressions heal their members, the
    text unchanged; through a stock trigger (no params) the failing one
    starts nothing at all."""
    stack_id, queue = group()
    before = heal_lab.members(stack_id)
    traits = [["display_name", 1, TENANT_TEXT["jinja"]],
              ["state_description", 1, TENANT_TEXT["yaql"]],
              ["node", 1, TENANT_TEXT["failing"]]]
    heal_lab.post_alarm(queue, before["0"], extra_traits=traits)
    heal_lab.post_alarm(queue, before["2"], extra_traits=traits[::-1])
    executions = heal_lab.wait_triggered(stack_id, 2, timeout=120)
    assert [e["state"] for e in executions] == ["SUCCESS", "SUCCESS"], [
        e.get("state_info") for e in executions]
    # one update may replace both (the second heal marked its member while it
    # waited for the first's claim)
    assert "replaced" in outcomes(executions)
    assert set(outcomes(executions)) <= {"replaced", "already_replaced"}
    for execution in executions:
        read = execution["output"]["alarm"]["traits"]
        assert (read["display_name"], read["state_description"], read["node"]) == (
            TENANT_TEXT["jinja"], TENANT_TEXT["yaql"], TENANT_TEXT["failing"])
        body = execution["params"]["env"]["notification"]["body"]
        assert ["node", 1, TENANT_TEXT["failing"]] in body["reason_data"]["event"]["traits"]
    after = heal_lab.members(stack_id)
    assert after["0"] != before["0"] and after["2"] != before["2"]
    assert after["1"] == before["1"]

    # the trap: the same alarm through a stock trigger starts no execution
    stock_id, stock_queue = group(count=1, params={})
    heal_lab.post_alarm(stock_queue, heal_lab.members(stock_id)["0"], extra_traits=traits)
    time.sleep(3)  # Zaqar delivers in ~35 ms; Mistral answers 400 and nothing runs
    assert heal_lab.triggered_executions(stock_id) == []


# --- small correctness items (issue 19) ----------------------------------


@pytest.mark.parametrize("workflow", [autoheal_scenario.PLAIN_WORKFLOW,
                                      autoheal_scenario.TRIGGERED_WORKFLOW])
def test_timeout_is_checked_first_and_a_numeric_string_is_a_number(heal_lab, cloud, workflow):
    inputs = ({"stack": "no-such-stack", "member": "0"}
              if workflow == autoheal_scenario.PLAIN_WORKFLOW else {"stack_id": "no-such-stack"})
    for bad, fragment in (("abc", "must be a number"), (-5, "must be at least 1")):
        execution = cloud.run_workflow(workflow, dict(inputs, timeout=bad), timeout=60)
        assert execution["state"] == "ERROR"
        error = execution["output"]["error"]
        assert error["reason"] == "invalid_input" and fragment in error["message"], error
    # "600" is 600: the workflow gets past its inputs (and fails later, on
    # the unknown stack or the missing notification, with a reason)
    execution = cloud.run_workflow(workflow, dict(inputs, timeout="600"), timeout=60)
    assert execution["state"] == "ERROR"
    assert execution["output"].get("failed_step") != "check_inputs"
    error = execution["output"]["error"]
    assert error and error.get("reason") in ("stack_not_found", "malformed_alarm"), error


def test_readme_example_replaces_a_member_of_the_shipped_template_shape(heal_lab, group,
                                                                        cloud):
    """README: mistral execution-create selfheal.autoheal.mark_unhealthy
    '{"stack": "web", "member": "2"}' on a group whose members are nested
    stacks (a server and its alarms, as heat_templates/autohealing_member.yaml)."""
    stack_id, _ = group(nested_members=True)
    name = heal_lab.stack(stack_id).stack_name
    before = heal_lab.group_members(stack_id)
    servers = heal_lab.members(stack_id)
    execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                   {"stack": name, "member": "2"}, timeout=120)
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    assert result["outcome"] == "replaced" and result["member"]["name"] == "2"
    after = heal_lab.group_members(stack_id)
    assert after["2"] != before["2"] and after["0"] == before["0"]
    assert heal_lab.members(stack_id)["2/server"] != servers["2/server"]
    # naming the whole group says what to name instead
    execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                   {"stack": name, "member": "group"}, timeout=60)
    error = execution["output"]["error"]
    assert error["reason"] == "member_not_replaceable"
    assert "one of '0', '1', '2'" in error["message"], error["message"]


# --- one heal per stack (issue 19, tests 5 and 2) --------------------------


def claim_name(stack_id):
    return f"selfheal-stack-lock-{stack_id}"


def test_two_heals_started_in_the_same_instant_one_claim_one_update_at_a_time(heal_lab, group,
                                                                              cloud):
    url = heal_lab.mistral_url
    # the store: of two creates of one name in the same instant, one wins
    for _ in range(10):
        name = f"selfheal-test-claim-{uuid.uuid4().hex[:8]}"
        start, answers = threading.Barrier(2), []

        def create(name=name, start=start, answers=answers):
            start.wait()
            try:
                mistral_client.create_environment(url, name, {"owner": "x"})
                answers.append(201)
            except mistral_client.MistralAPIError as e:
                answers.append(e.status)

        threads = [threading.Thread(target=create) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        mistral_client.delete_environment(url, name)
        assert sorted(answers) == [201, 409], answers

    # two heals of one stack started together (one by id, one by name)
    stack_id, _ = group()
    name = heal_lab.stack(stack_id).stack_name
    before = heal_lab.members(stack_id)
    start, started = threading.Barrier(2), {}

    def heal(stack, member):
        start.wait()
        started[member] = cloud.start_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                               {"stack": stack, "member": member})["id"]

    threads = [threading.Thread(target=heal, args=a) for a in ((stack_id, "0"), (name, "1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = {m: cloud.wait_workflow(e, timeout=120) for m, e in started.items()}
    assert all(e["state"] == "SUCCESS" for e in done.values()), {
        m: e["output"] for m, e in done.items()}
    results = {m: e["output"]["result"] for m, e in done.items()}
    assert {r["outcome"] for r in results.values()} == {"replaced"}
    # one won the claim at once, the other waited for exactly that one
    first, second = sorted(results, key=lambda m: results[m]["claim"]["waited_seconds"])
    assert results[first]["claim"]["waited_for"] is None
    assert results[second]["claim"]["waited_for"] == started[first]
    assert results[second]["claim"]["waited_seconds"] > 0
    # so the updates never overlapped: none cancelled, the stack complete
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    assert not [e for e in heal_lab.heat().events.list(stack_id)
                if "cancel" in (e.resource_status_reason or "").lower()]
    after = heal_lab.members(stack_id)
    assert after["0"] != before["0"] and after["1"] != before["1"]
    assert after["2"] == before["2"]
    assert mistral_client.get_environment(url, claim_name(stack_id)) is None  # released


def test_a_manual_heal_during_an_alarm_heal_waits_for_its_claim(heal_lab, group, cloud):
    stack_id, queue = group()
    name = heal_lab.stack(stack_id).stack_name
    before = heal_lab.members(stack_id)
    heal_lab.post_alarm(queue, before["0"])
    deadline = time.monotonic() + 60
    while mistral_client.get_environment(heal_lab.mistral_url, claim_name(stack_id)) is None:
        assert time.monotonic() < deadline, "the alarm heal never claimed the stack"
        time.sleep(0.05)
    manual = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                {"stack": name, "member": "1"}, timeout=120)
    [alarm] = heal_lab.wait_triggered(stack_id, 1, timeout=120)
    assert manual["state"] == "SUCCESS" and alarm["state"] == "SUCCESS", (
        manual["output"], alarm["output"])
    assert manual["output"]["result"]["claim"]["waited_for"] == alarm["id"]
    assert alarm["output"]["result"]["outcome"] == "replaced"
    assert manual["output"]["result"]["outcome"] == "replaced"
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"


def test_a_claim_held_past_the_timeout_ends_in_stack_busy_and_changes_nothing(heal_lab, group,
                                                                              cloud):
    stack_id, _ = group(count=1)
    before = heal_lab.members(stack_id)
    heartbeat = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    mistral_client.create_environment(heal_lab.mistral_url, claim_name(stack_id), {
        "owner": "someone/else", "execution": "the-other-heal", "heartbeat": heartbeat})
    try:
        execution = cloud.run_workflow(autoheal_scenario.PLAIN_WORKFLOW,
                                       {"stack": stack_id, "member": "0", "timeout": 2},
                                       timeout=60)
    finally:
        mistral_client.delete_environment(heal_lab.mistral_url, claim_name(stack_id))
    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "stack_busy" and "the-other-heal" in error["message"], error
    assert error["changes"] == [] and error["details"]["owner"] == "someone/else"
    assert heal_lab.members(stack_id) == before


#: issue 19's test 1 is 20 of 30 members; one update of a 30-member group
#: takes ~30 s on the 2-core lab (the test ~150 s), so the suite runs 10 of
#: 15 unless SELFHEAL_FULL_SCALE=1
FULL_SCALE = os.environ.get("SELFHEAL_FULL_SCALE") == "1"
DEAD, SIZE = (20, 30) if FULL_SCALE else (10, 15)


def test_twenty_of_thirty_members_die_and_few_updates_replace_them_all(heal_lab, group):
    """Issue 19, test 1: alarms for 20 of 30 members within 2 s (5 of them
    twice). Heals queued behind the claim mark their members while they
    wait, so one update replaces many: every member replaced and verified,
    at most 3 stack updates, no ERROR, and a bounded number of action
    executions per alarm (no spin-lock retries)."""
    stack_id, queue = group(count=SIZE)
    before = heal_lab.members(stack_id)
    dead = [str(i) for i in range(DEAD)]
    alarms = dead + dead[:DEAD // 4]
    for index, name in enumerate(alarms):
        heal_lab.post_alarm(queue, before[name])
        time.sleep(2.0 / len(alarms) if index < len(alarms) - 1 else 0)
    executions = heal_lab.wait_triggered(stack_id, len(alarms), timeout=300)
    assert [e["state"] for e in executions] == ["SUCCESS"] * len(alarms), [
        e["output"].get("error") for e in executions if e["state"] != "SUCCESS"]
    results = [e["output"]["result"] for e in executions]
    # every update any heal ran (the holder's next rounds included)
    updates = sum(c["change"] == "updated" for r in results for c in r["changes"])
    print(f"{DEAD} of {SIZE}: {updates} stack updates for {len(alarms)} alarms")
    assert 1 <= updates <= 3, updates
    assert {r["outcome"] for r in results} <= {"replaced", "already_replaced"}
    after = heal_lab.members(stack_id)
    assert all(after[n] != before[n] for n in dead)
    assert all(after[str(i)] == before[str(i)] for i in range(DEAD, SIZE))
    # each heal names the member's replacement as it is now (verified)
    assert all(r["member"]["new_physical_id"] == after[r["member"]["name"]] for r in results)
    assert heal_lab.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    actions = sum(len([row for row in mistral_client.action_executions(
        heal_lab.mistral_url, e["id"]) if row["action"]]) for e in executions)
    assert actions <= 3 * len(executions), actions


def test_an_alarm_for_a_member_removed_by_a_scale_in_is_a_clear_no_op(heal_lab, group):
    """Issue 19, part of test 3: the group shrinks (count 3 -> 2) while the
    alarm of its removed member is queued."""
    stack_id, queue = group()
    before = heal_lab.members(stack_id)
    heal_lab.heat().stacks.update(stack_id, template=autoheal_scenario.group_template(2))
    heal_lab.wait_stack(stack_id, "UPDATE_COMPLETE")
    heal_lab.post_alarm(queue, before["2"])
    [execution] = heal_lab.wait_triggered(stack_id, 1)
    assert execution["state"] == "SUCCESS", execution["output"]
    result = execution["output"]["result"]
    assert result["outcome"] == "member_removed" and result["changes"] == []
    assert heal_lab.members(stack_id) == {k: v for k, v in before.items() if k != "2"}
