# SPDX-License-Identifier: Apache-2.0
"""The production autohealing chain in the authenticated lab, end to end.

An instance event published on the bus the way Ceilometer's event pipeline
does reaches the real aodh-listener; the member user's event alarm fires;
aodh-notifier posts to the user's Zaqar queue with a trust
(``trust+zaqar``); the queue's ``trust+http`` subscription (the shape
OS::Zaqar::MistralTrigger creates) starts heal_from_alarm in Mistral with a
trust-scoped token, and the actions make Heat replace the member with it.
Every service in the chain validates tokens with Keystone.
"""

import json
import uuid

import pytest

from selfheal_lab import alarm_chain
from selfheal_lab import lab
from selfheal_lab import zaqar_client

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def chain(lab_info):
    lab.up_authenticated(with_alarms=True)
    return alarm_chain.AlarmChainLab()


@pytest.fixture
def group(chain):
    """A fresh stack of the member user with 3 members and its alarm queue."""
    created = []

    def make():
        name = f"ac-{uuid.uuid4().hex[:8]}"
        stack_id = chain.create_group(name, 3)
        queue = f"alarms-{name}"
        chain.subscribe_trigger(queue, stack_id)
        created.append((stack_id, queue))
        return stack_id, queue

    yield make
    for stack_id, queue in created:
        zaqar_client.delete_queue(queue, token=chain.token)
        chain.delete(stack_id)


def test_event_on_the_bus_heals_the_member_through_aodh_zaqar_and_mistral(chain, group):
    stack_id, queue = group()
    before = chain.members(stack_id)
    alarm_id = chain.create_event_alarm(queue, before["1"])
    # an alarm on another member, and an event on the bus the alarm must ignore
    other_alarm = chain.create_event_alarm(queue, before["0"], state_trait="error")
    chain.wait_alarm_visible()
    chain.publish_instance_event(before["0"], state_trait="stopped")  # not "error"

    chain.publish_instance_event(before["1"])

    [execution] = chain.wait_triggered(stack_id, 1, timeout=120)
    assert execution["state"] == "SUCCESS", execution.get("state_info")
    result = execution["output"]["result"]
    assert result["outcome"] == "replaced"
    assert result["member"]["old_physical_id"] == before["1"]
    after = chain.members(stack_id)
    assert after["1"] != before["1"] and result["member"]["new_physical_id"] == after["1"]
    assert after["0"] == before["0"] and after["2"] == before["2"]
    assert chain.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    # it came from Aodh through Zaqar, and ran in the member's project
    notification = execution["params"]["env"]["notification"]
    assert notification["body"]["alarm_id"] == alarm_id
    assert notification["queue_name"] == queue
    assert execution["project_id"] == chain.project_id
    assert chain.alarm(alarm_id)["state"] == "alarm"
    assert chain.alarm(other_alarm)["state"] != "alarm"


def test_the_shipped_heat_template_wires_the_chain_and_it_heals(chain):
    name = f"sh-{uuid.uuid4().hex[:8]}"
    stack_id = chain.create_shipped_group(name, size=2)
    try:
        outputs = {o["output_key"]: o["output_value"] for o in chain.stack(stack_id).outputs}
        queue = outputs["alarm_queue"]
        servers = chain.servers(stack_id)
        assert sorted(servers) == ["0", "1"]
        # Heat made, as the member user: three event alarms per member posting
        # to the group's queue through a trust, and the MistralTrigger's
        # trust+http subscription to Mistral's executions
        alarms = [a for a in chain.alarms() if a["name"].startswith(name)]
        assert len(alarms) == 6
        assert all(len(a["alarm_actions"]) == 1 and a["alarm_actions"][0].startswith(
            "trust+zaqar") and f"queue_name={queue}" in a["alarm_actions"][0] for a in alarms)
        [subscription] = zaqar_client.subscriptions(queue, token=chain.token)
        assert subscription["subscriber"] == f"trust+{chain.mistral_url}/executions"
        assert "$zaqar_message$" in subscription["options"]["post_data"]
        # Heat's own trigger passes the template's params: Mistral will not
        # evaluate the tenant text in the message (see test_autoheal.py)
        post_data = json.loads(subscription["options"]["post_data"])
        assert post_data["params"]["evaluate_env"] is False
        assert post_data["params"]["env"]["notification"] == "$zaqar_message$"
        chain.wait_alarm_visible()

        chain.publish_instance_event(servers["1"])

        [execution] = chain.wait_triggered(stack_id, 1, timeout=120)
        assert execution["state"] == "SUCCESS", execution.get("state_info")
        assert execution["output"]["result"]["outcome"] == "replaced"
        after = chain.servers(stack_id)
        assert after["1"] != servers["1"] and after["0"] == servers["0"]
        assert execution["project_id"] == chain.project_id
        assert chain.stack(stack_id).stack_status == "UPDATE_COMPLETE"
    finally:
        chain.delete(stack_id)
