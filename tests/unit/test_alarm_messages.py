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
    # what is wrong, not "no reason_data; keys: []"
    ({"body": [1, 2]}, "the message body is a list, not an Aodh alarm (a JSON object)"),
    ({"body": None}, "the message body is null"),
    ([zaqar_message(aodh_alarm())], "is a list"),
    (zaqar_message(aodh_alarm(traits=[["instance_id", 1, "x" * 100_000]])),
     "the member (instance_id trait) is 100000 characters long; at most 255"),
])
def test_malformed_notifications_say_what_is_wrong(notification, fragment):
    alarm = alarm_messages.read_alarm(notification)
    assert alarm["valid"] is False and alarm["member"] is None
    assert fragment in alarm["error"]
    assert alarm["error"].startswith("malformed alarm notification: ")
    assert len(alarm["error"]) < 400  # a 100 kB trait is not echoed whole


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
        "selfheal_alarm_traits": "selfheal_actions.heat.yaql_functions:selfheal_alarm_traits"}


def test_nothing_reads_mistrals_private_database():
    """The spin-lock that read every RUNNING execution through
    mistral.db.v2.api is gone: one heal per stack is a claim made through
    Mistral's public API (selfheal_actions.heat.stack_claim)."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    for source in (root / "selfheal_actions").rglob("*.py"):
        assert "mistral.db" not in source.read_text(), source
    workbook = (root / "workbooks" / "autoheal.yaml").read_text()
    assert "selfheal_heals_ahead" not in workbook and "std.noop" not in workbook
