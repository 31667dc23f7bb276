# SPDX-License-Identifier: Apache-2.0
"""Reading Aodh event alarms out of Zaqar notifications, and the YAQL
functions that expose it to the workbooks."""

import json

import pytest
import yaql

from selfheal_actions.heat import alarm_messages
from selfheal_actions.heat import yaql_functions


def aodh_alarm(traits=None, reason_type="event"):
    if traits is None:
        traits = [["instance_id", 1, "srv-1"], ["state", 1, "stopped"]]
    return {"alarm_id": "al-1", "alarm_name": "stop_event_alarm", "current": "alarm",
            "previous": "insufficient data", "severity": "low", "reason": "Event hits",
            "reason_data": {"type": reason_type, "event": {
                "event_type": "compute.instance.update", "message_id": "m-1",
                "generated": "2026-11-22T10:00:00.123456", "traits": traits}}}


def zaqar_message(alarm):
    return {"body": alarm, "ttl": 3600, "queue_name": "alarms",
            "Message_Type": "Notification"}


@pytest.mark.parametrize("notification", [
    zaqar_message(aodh_alarm()),
    json.dumps(zaqar_message(aodh_alarm())),
    aodh_alarm(),
    {"body": json.dumps(aodh_alarm())},
])
def test_member_and_traits_are_read_from_every_shape(notification):
    alarm = alarm_messages.read_alarm(notification)
    assert alarm["valid"] is True and alarm["error"] is None
    assert alarm["member"] == "srv-1"
    assert alarm["traits"] == {"instance_id": "srv-1", "state": "stopped"}
    assert alarm["event_type"] == "compute.instance.update"
    assert alarm["generated"] == "2026-11-22T10:00:00.123456"
    assert alarm["alarm_name"] == "stop_event_alarm"


def test_resource_id_trait_is_used_without_instance_id():
    alarm = alarm_messages.read_alarm(aodh_alarm([["resource_id", 1, "res-9"]]))
    assert alarm["member"] == "res-9"


@pytest.mark.parametrize("notification, fragment", [
    (None, "no notification"),
    ("{not json", "not JSON"),
    (42, "is a int"),
    ({"body": {"hello": "world"}}, "not an Aodh alarm"),
    (zaqar_message(aodh_alarm(traits=[])), "no traits"),
    (zaqar_message(aodh_alarm(traits=[["state", 1, "stopped"]])), "no member"),
    (zaqar_message(aodh_alarm(traits=["oops"])), "not a [name, type, value] triple"),
    (zaqar_message(aodh_alarm(reason_type="threshold")), "not an event alarm"),
])
def test_malformed_notifications_say_what_is_wrong(notification, fragment):
    alarm = alarm_messages.read_alarm(notification)
    assert alarm["valid"] is False and alarm["member"] is None
    assert fragment in alarm["error"]
    assert alarm["error"].startswith("malformed alarm notification: ")


def _engine_and_context(data):
    engine = yaql.factory.YaqlFactory().create()
    context = yaql.create_context()
    context.register_function(yaql_functions.selfheal_alarm, name="selfheal_alarm")
    context.register_function(yaql_functions.selfheal_alarm_traits,
                              name="selfheal_alarm_traits")
    return engine, context.create_child_context(), data


def test_yaql_functions_work_on_yaql_frozen_data():
    engine, context, data = _engine_and_context(zaqar_message(aodh_alarm()))
    context["$"] = yaql.language.utils.convert_input_data(data)
    assert engine("selfheal_alarm($).member").evaluate(context=context) == "srv-1"
    assert engine("selfheal_alarm_traits($).state").evaluate(context=context) == "stopped"
    context["$"] = yaql.language.utils.convert_input_data({"body": {}})
    assert engine("selfheal_alarm($).valid").evaluate(context=context) is False
    assert engine("selfheal_alarm_traits($)").evaluate(context=context) == {}


def test_functions_are_registered_for_mistral():
    from importlib import metadata

    names = {ep.name: ep.value for ep in metadata.entry_points(
        group="mistral.expression.functions") if ep.value.startswith("selfheal_actions")}
    assert names == {
        "selfheal_alarm": "selfheal_actions.heat.yaql_functions:selfheal_alarm",
        "selfheal_alarm_traits": "selfheal_actions.heat.yaql_functions:selfheal_alarm_traits",
        "selfheal_heals_ahead": "selfheal_actions.heat.yaql_functions:selfheal_heals_ahead"}


def test_heals_of_one_stack_queue_oldest_first():
    from types import SimpleNamespace as Ex

    def ex(id_, created, stack, workflow="selfheal.autoheal.heal_from_alarm"):
        return Ex(id=id_, created_at=created, workflow_name=workflow,
                  input={"stack_id": "nested", "root_stack_id": stack})

    a = ex("b-id", "2026-11-22 10:00:00", "s1")
    b = ex("a-id", "2026-11-22 10:00:01", "s1")
    c = ex("c-id", "2026-11-22 10:00:01", "s1")  # same second as b: id decides
    other_stack = ex("0-id", "2026-11-22 09:00:00", "s2")
    other_workflow = ex("1-id", "2026-11-22 09:00:00", "s1", workflow="x.y.z")
    running = [a, b, c, other_stack, other_workflow]
    assert [yaql_functions.heals_ahead(e, running) for e in (a, b, c)] == [0, 1, 2]
    assert yaql_functions.heals_ahead(other_stack, running) == 0
    # the plain workflow names its stack 'stack'
    assert yaql_functions.stack_of({"stack": "web"}) == "web"
    assert yaql_functions.stack_of({}) is None
