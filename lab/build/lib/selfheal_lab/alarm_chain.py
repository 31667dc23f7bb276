# SPDX-License-Identifier: Apache-2.0
"""The production autohealing chain in the authenticated lab, as one user.

    an instance event on the bus (as Ceilometer publishes it)
      -> aodh-listener: the user's event alarm matches
      -> aodh-notifier: ``trust+zaqar://?queue_name=Q`` posts with a trust token
      -> Zaqar (Keystone): the user's queue Q
      -> its ``trust+http`` subscription posts to Mistral with a trust token
      -> Mistral (Keystone): ``selfheal.autoheal.heal_from_alarm`` in the
         user's project, whose actions call Heat (Keystone) with that token.

Everything runs as the Keystone user given (by default the lab's non-admin
``member``); Aodh and Zaqar create their trusts from that user's token.
Needs ``lab.up_authenticated(with_alarms=True)``.

:meth:`AlarmChainLab.create_shipped_group` lets Heat build the same wiring
from the shipped ``heat_templates/autohealing_group.yaml``: its queue, its
``OS::Zaqar::MistralTrigger`` and, per member, the shipped member
template's three ``OS::Aodh::EventAlarm``. Only the member's
``OS::Nova::Server`` is swapped for an ``OS::Heat::TestResource`` named
``server``: the lab has no Glance or Neutron API for Heat to resolve the
image and network with (Nova in a box keeps them as in-process fixtures).
"""

import datetime
import time
import uuid

import yaml

from selfheal_lab import autoheal_scenario
from selfheal_lab import http_json
from selfheal_lab import state
from selfheal_lab.services import aodh
from selfheal_lab.services import keystone

#: what Nova's notifications give the alarm to match (the shipped member
#: template's stopped_alarm)
EVENT_TYPE = "compute.instance.update"


class AlarmChainLab(autoheal_scenario.AutohealLab):
    """:class:`~selfheal_lab.autoheal_scenario.AutohealLab` on the
    authenticated services, plus Aodh alarms and events on the bus.

    :param user: Keystone user; :param project: the project of its token.
    """

    trust_prefix = "trust+"

    def __init__(self, user=keystone.MEMBER["user"], project=keystone.MEMBER["project"]):
        self.token, body = keystone.token(user, project)
        self.project_id = body["project"]["id"]
        self.user_id = body["user"]["id"]
        endpoints = state.read_endpoints()
        self.mistral_url = endpoints["mistral_auth"]["url"]
        self.heat_url = endpoints["heat_auth"]["orchestration_url"].replace(
            "$(project_id)s", self.project_id)
        self.aodh_url = endpoints["aodh"]["url"]
        self._heat = None

    def create_shipped_group(self, name, size=3, timeout=180):
        """A stack of the shipped autohealing group (see the module); returns its id."""
        from selfheal_tools import data

        folder = data.heat_templates_dir()
        member = yaml.safe_load((folder / "autohealing_member.yaml").read_text())
        member["resources"]["server"] = {"type": "OS::Heat::TestResource",
                                         "properties": {"value": "lab stand-in of a server"}}
        created = self.heat().stacks.create(
            stack_name=name, template=(folder / "autohealing_group.yaml").read_text(),
            files={"autohealing_member.yaml": yaml.safe_dump(member)},
            parameters={"image": "lab", "flavor": "m1.tiny", "network": "lab", "size": size})
        stack_id = created["stack"]["id"]
        self.wait_stack(stack_id, "CREATE_COMPLETE", timeout)
        return stack_id

    def servers(self, stack_id):
        """``{member index: physical id of its server}`` of a shipped group."""
        return {r.parent_resource: r.physical_resource_id
                for r in self.heat().resources.list(stack_id, nested_depth=3)
                if r.resource_name == "server"}

    def alarms(self):
        """The user's Aodh alarms (trust ids scrubbed from the actions by Aodh)."""
        return self._aodh("GET", "/v2/alarms")

    def create_event_alarm(self, queue, instance_id, state_trait="stopped"):
        """An Aodh event alarm on ``instance_id`` reaching ``state_trait``, whose
        action posts to ``queue`` with a trust (Aodh creates it); returns its id."""
        body = {"name": f"{state_trait}-{instance_id}", "type": "event",
                "repeat_actions": True,
                "event_rule": {"event_type": EVENT_TYPE, "query": [
                    {"field": "traits.instance_id", "op": "eq", "type": "string",
                     "value": instance_id},
                    {"field": "traits.state", "op": "eq", "type": "string",
                     "value": state_trait}]},
                "alarm_actions": [f"trust+zaqar://?queue_name={queue}"]}
        return self._aodh("POST", "/v2/alarms", body)["alarm_id"]

    def alarm(self, alarm_id):
        return self._aodh("GET", f"/v2/alarms/{alarm_id}")

    def delete_alarm(self, alarm_id):
        self._aodh("DELETE", f"/v2/alarms/{alarm_id}")

    def wait_alarm_visible(self):
        """Aodh's listener caches each project's alarms for a while: wait it out."""
        time.sleep(aodh.EVENT_ALARM_CACHE_TTL + 0.5)

    def publish_instance_event(self, instance_id, state_trait="stopped"):
        """The event Nova's ``compute.instance.update`` becomes in Ceilometer's
        pipeline, published on the bus; returns when it was sent (``time.time()``)."""
        generated = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.%f")
        return aodh.publish_event({
            "message_id": str(uuid.uuid4()), "event_type": EVENT_TYPE,
            "generated": generated, "raw": {},
            "traits": [["instance_id", 1, instance_id], ["state", 1, state_trait],
                       ["project_id", 1, self.project_id], ["user_id", 1, self.user_id]]})

    def _aodh(self, method, path, body=None):
        return http_json.call(self.aodh_url, method, path, body, timeout=30, what="Aodh",
                              headers={"X-Auth-Token": self.token})
