# SPDX-License-Identifier: Apache-2.0
"""Read an Aodh event alarm out of what a Zaqar subscription delivered.

Aodh's Zaqar notifier posts the alarm as a message body; Zaqar delivers
``{"body": <alarm>, "ttl": ..., "queue_name": ..., "Message_Type": ...}``,
and Heat's ``OS::Zaqar::MistralTrigger`` puts that in the workflow
environment as ``notification``. The alarm of an event alarm looks like::

    {"alarm_id": "...", "alarm_name": "...", "current": "alarm",
     "previous": "insufficient data", "severity": "low", "reason": "...",
     "reason_data": {"type": "event", "event": {
         "event_type": "compute.instance.update", "generated": "...",
         "message_id": "...",
         "traits": [["instance_id", 1, "<server uuid>"], ["state", 1, "stopped"]]}}}

Traits are ``[name, type, value]`` triples. :func:`read_alarm` accepts the
Zaqar message, the alarm itself or either as a JSON string, and never raises
for bad data: it says what is wrong instead, so that a workflow can stop with
a clear message before it touches anything.
"""

import json
from collections.abc import Mapping
from collections.abc import Sequence

from selfheal_actions.common.results import shown

#: traits that name the member an event alarm is about, most specific first
MEMBER_TRAITS = ("instance_id", "resource_id")
#: the longest member id accepted (Heat's resource names and physical ids)
MAX_MEMBER = 255


class MalformedAlarm(ValueError):
    """The notification is not an Aodh event alarm we can act on."""


def _as_dict(value):
    return dict(value) if isinstance(value, Mapping) else None


def _unwrap(notification):
    """Return the alarm dict inside ``notification`` (raises MalformedAlarm)."""
    if notification is None or notification == "":
        raise MalformedAlarm("no notification: the workflow was not started by a Zaqar "
                             "subscription (env().notification is empty)")
    if isinstance(notification, (str, bytes)):
        try:
            notification = json.loads(notification)
        except ValueError:
            raise MalformedAlarm("the notification is not JSON: "
                                 f"{str(notification)[:80]!r}") from None
    message = _as_dict(notification)
    if message is None:
        raise MalformedAlarm(f"the notification is a {type(notification).__name__}, "
                             "not a Zaqar message or an Aodh alarm")
    body = message.get("body", message)
    if body is None:
        raise MalformedAlarm("the message body is null, not an Aodh alarm (a JSON object)")
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            raise MalformedAlarm("the message body is not JSON: "
                                 f"{str(body)[:80]!r}") from None
    alarm = _as_dict(body)
    if alarm is None:
        kind = "list" if isinstance(body, (list, tuple)) else type(body).__name__
        raise MalformedAlarm(f"the message body is a {kind}, not an Aodh alarm (a JSON object)")
    if "reason_data" not in alarm:
        keys = sorted(str(k) for k in alarm)
        raise MalformedAlarm("the message is not an Aodh alarm (no reason_data; keys: "
                             f"{shown(keys)})")
    return alarm


def traits_of(event):
    """``{name: value}`` from an event's ``[name, type, value]`` triples."""
    traits = event.get("traits")
    if not isinstance(traits, Sequence) or isinstance(traits, (str, bytes)) or not traits:
        raise MalformedAlarm("the alarm's event has no traits (reason_data.event.traits)")
    result = {}
    for trait in traits:
        if isinstance(trait, Mapping) and "name" in trait:
            result[str(trait["name"])] = trait.get("value")
        elif (isinstance(trait, Sequence) and not isinstance(trait, (str, bytes))
              and len(trait) == 3):
            result[str(trait[0])] = trait[2]
        else:
            raise MalformedAlarm(f"a trait is not a [name, type, value] triple: {shown(trait)}")
    return result


def read_alarm(notification):
    """Parse ``notification`` into the facts a healing workflow needs.

    :param notification: the Zaqar message (dict or JSON string), or the
        Aodh alarm body itself.
    :returns: ``{"valid": True, "member": <instance id>, "alarm_id",
        "alarm_name", "current", "severity", "event_type", "generated",
        "traits": {...}, "error": None}``, or ``{"valid": False, "error":
        "<what is wrong>", "member": None, ...}``.
    """
    result = {"valid": False, "error": None, "member": None, "alarm_id": None,
              "alarm_name": None, "current": None, "severity": None, "event_type": None,
              "generated": None, "traits": {}}
    try:
        alarm = _unwrap(notification)
        reason_data = _as_dict(alarm.get("reason_data")) or {}
        if reason_data.get("type") != "event":
            raise MalformedAlarm(f"the alarm is not an event alarm "
                                 f"(reason_data.type is {reason_data.get('type')!r})")
        event = _as_dict(reason_data.get("event"))
        if event is None:
            raise MalformedAlarm("the alarm has no event (reason_data.event)")
        traits = traits_of(event)
        trait = next((t for t in MEMBER_TRAITS if traits.get(t)), None)
        member = traits[trait] if trait else None
        if not isinstance(member, str) or not member.strip():
            raise MalformedAlarm(f"no member in the event's traits (looked for "
                                 f"{', '.join(MEMBER_TRAITS)}; traits: {shown(sorted(traits))})")
        if len(member.strip()) > MAX_MEMBER:
            raise MalformedAlarm(f"the member ({trait} trait) is {len(member.strip())} "
                                 f"characters long; at most {MAX_MEMBER}: {shown(member, 40)}")
        result.update(
            valid=True, member=member.strip(), traits=traits,
            alarm_id=alarm.get("alarm_id"), alarm_name=alarm.get("alarm_name"),
            current=alarm.get("current"), severity=alarm.get("severity"),
            event_type=event.get("event_type"), generated=event.get("generated"))
    except MalformedAlarm as e:
        result["error"] = f"malformed alarm notification: {e}"
    return result
