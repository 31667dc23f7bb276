# SPDX-License-Identifier: Apache-2.0
"""The Heat autohealing chain on the lab, step by step, for tests, the demo
and the benchmark: a stack with a group of members, a Zaqar queue whose
subscription starts ``selfheal.autoheal.heal_from_alarm`` the way Heat's
``OS::Zaqar::MistralTrigger`` does, and Aodh-format event alarms posted to
that queue.

Needs python-heatclient in the calling Python (the project's test extra has
it through the runtime requirements).
"""

import datetime
import json
import time
import uuid

from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab import zaqar_client

TRIGGERED_WORKFLOW = "selfheal.autoheal.heal_from_alarm"
#: the lab's member whose creations fail on demand
#: (:func:`selfheal_lab.services.heat.fail_member_creates`)
FLAKY_MEMBER = "Selfheal::Lab::Member"
MEMBER_TYPES = ("OS::Heat::TestResource", FLAKY_MEMBER)
PLAIN_WORKFLOW = "selfheal.autoheal.mark_unhealthy"


#: the shape of the shipped member template (heat_templates/autohealing_member.yaml):
#: each member a nested stack holding a ``server`` (here a TestResource)
MEMBER_TEMPLATE = {
    "heat_template_version": "2018-08-31",
    "parameters": {"index": {"type": "string"}},
    "resources": {"server": {"type": "OS::Heat::TestResource",
                             "properties": {"value": {"get_param": "index"}}}},
}


#: stand-ins for what the shipped auto-scaling template needs from services the
#: no-auth lab's Heat cannot reach (no Keystone catalog): the lab subscribes
#: the queue itself (:meth:`AutohealLab.subscribe_trigger`)
SCALING_REGISTRY = {"OS::Zaqar::Queue": "OS::Heat::None",
                    "OS::Zaqar::MistralTrigger": "OS::Heat::None",
                    "OS::Heat::ScalingPolicy": "Selfheal::Lab::ScalingPolicy"}

def lab_member_template(create_seconds=0, delete_seconds=0):
    """heat_templates/autohealing_member.yaml's interface, its server a
    :data:`FLAKY_MEMBER` (no Nova, no Aodh in the lab's Heat) that takes
    ``create_seconds`` to build and ``delete_seconds`` to delete."""
    return {
        "heat_template_version": "2018-08-31",
        "parameters": {name: {"type": "string"}
                       for name in ("image", "flavor", "network", "alarm_queue")},
        "resources": {"server": {"type": FLAKY_MEMBER, "properties": {
            "value": {"get_param": "image"},
            "action_wait_secs": {"create": create_seconds, "delete": delete_seconds}}}},
        "outputs": {"OS::stack_id": {"value": {"get_resource": "server"}}},
    }


def shipped_scaling_stack(min_size=3, max_size=6, cooldown=0, create_seconds=0,
                          delete_seconds=0):
    """``stacks.create`` arguments for heat_templates/autohealing_autoscaling_group.yaml
    on the lab: the shipped template itself, its members' servers lab
    members (:func:`lab_member_template`) and the service resources
    stand-ins (:data:`SCALING_REGISTRY`)."""
    path = state.SOURCE_ROOT / "heat_templates" / "autohealing_autoscaling_group.yaml"
    member = lab_member_template(create_seconds, delete_seconds)
    return {"template": path.read_text(),
            "files": {"autohealing_member.yaml": json.dumps(member)},
            "environment": {"resource_registry": dict(SCALING_REGISTRY), "parameters": {
                "image": "lab", "flavor": "lab", "network": "lab", "min_size": min_size,
                "max_size": max_size, "cooldown": cooldown}}}


def group_template(count, nested_members=False, member_type="OS::Heat::TestResource"):
    """A ResourceGroup of ``count`` OS::Heat::TestResource members (no Nova
    needed); ``nested_members``: each member a nested stack of
    :data:`MEMBER_TEMPLATE` (``member.yaml`` in the files); ``member_type``:
    e.g. :data:`FLAKY_MEMBER`, whose creations the lab can make fail."""
    if nested_members:
        definition = {"type": "member.yaml", "properties": {"index": "%index%"}}
    else:
        definition = {"type": member_type, "properties": {"value": "member %index%"}}
    return {
        "heat_template_version": "2018-08-31",
        "resources": {"group": {"type": "OS::Heat::ResourceGroup", "properties": {
            "count": count, "resource_def": definition}}},
    }


def shipped_trigger_params():
    """The ``params`` of the shipped template's OS::Zaqar::MistralTrigger."""
    import yaml

    path = state.SOURCE_ROOT / "heat_templates" / "autohealing_group.yaml"
    trigger = yaml.safe_load(path.read_text())["resources"]["heal_trigger"]
    return dict(trigger["properties"].get("params") or {})


def trigger_post_data(workflow_id, params, workflow_input):
    """The ``post_data`` Heat 27's OS::Zaqar::MistralTrigger subscribes with
    (``_subscription_options`` in heat/engine/resources/openstack/zaqar/
    subscription.py): the message goes into ``params.env.notification``."""
    params = json.loads(json.dumps(params or {}))
    params.setdefault("env", {})
    params["env"]["notification"] = "$zaqar_message$"
    return json.dumps({"workflow_id": workflow_id, "params": params,
                       "input": workflow_input})


def aodh_event_alarm(instance_id, state_trait="stopped",
                     event_type="compute.instance.update", generated=None, extra_traits=()):
    """The message body Aodh's Zaqar notifier posts for an event alarm."""
    generated = generated or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")
    return {
        "alarm_id": str(uuid.uuid4()), "alarm_name": f"{state_trait}_event_alarm",
        "severity": "low", "previous": "insufficient data", "current": "alarm",
        "reason": f"Event <event_type={event_type}> hits the query",
        "reason_data": {"type": "event", "event": {
            "message_id": str(uuid.uuid4()), "event_type": event_type,
            "generated": generated, "raw": {},
            "traits": [["instance_id", 1, instance_id], ["state", 1, state_trait],
                       ["tenant_id", 1, "admin"], *[list(t) for t in extra_traits]]}},
    }


class AutohealLab:
    """Handles on the lab's Heat, Zaqar and Mistral (after ``lab.up_autoheal``)."""

    #: sent to Mistral and Zaqar (None: their no-auth APIs)
    token = None
    #: the subscriber scheme's prefix: ``trust+`` makes Zaqar post with a trust
    trust_prefix = ""

    def __init__(self):
        endpoints = state.read_endpoints()
        self.mistral_url = endpoints["mistral"]["url"]
        self.heat_url = endpoints["heat"]["orchestration_url"]
        self._heat = None

    def heat(self):
        if self._heat is None:
            from heatclient import client

            self._heat = client.Client("1", endpoint=self.heat_url, token=self.token or "lab")
        return self._heat

    # --- stacks ------------------------------------------------------------

    def create_group(self, name, count=3, timeout=120, nested_members=False,
                     member_type="OS::Heat::TestResource"):
        """Create a stack with a group of ``count`` members; return its id."""
        files = {"member.yaml": json.dumps(MEMBER_TEMPLATE)} if nested_members else {}
        created = self.heat().stacks.create(
            stack_name=name, template=group_template(count, nested_members, member_type),
            files=files)
        stack_id = created["stack"]["id"]
        self.wait_stack(stack_id, "CREATE_COMPLETE", timeout)
        return stack_id

    def create_scaling_group(self, name, min_size=3, timeout=180, **params):
        """Create a stack from the shipped auto-scaling template
        (:func:`shipped_scaling_stack`); return its id."""
        created = self.heat().stacks.create(stack_name=name,
                                            **shipped_scaling_stack(min_size, **params))
        stack_id = created["stack"]["id"]
        self.wait_stack(stack_id, "CREATE_COMPLETE", timeout)
        return stack_id

    def signal(self, stack_id, policy):
        """Signal a scaling policy (``scale_up_policy``, ``scale_down_policy``)
        through Heat's API, as an alarm action does."""
        self.heat().resources.signal(stack_id, policy)

    def scaling(self, stack_id):
        """True while the group applies a scaling signal."""
        return bool(self.heat().resources.metadata(stack_id, "members").get(
            "scaling_in_progress"))

    def wait_scaled(self, stack_id, size, timeout=120):
        """Wait until the group has ``size`` members and no scaling runs."""
        deadline = time.monotonic() + timeout
        while len(self.servers(stack_id)) != size or self.scaling(stack_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"group of {stack_id}: {len(self.servers(stack_id))} "
                                   f"members, waited for {size}")
            time.sleep(0.3)

    def servers(self, stack_id):
        """``{server physical id: member name}`` of a scaling group's members."""
        resources = self.heat().resources.list(stack_id, nested_depth=3)
        names = {r.physical_resource_id: r.resource_name for r in resources}
        found = {}
        for r in resources:
            if r.resource_type == FLAKY_MEMBER and r.physical_resource_id:
                parent = next((link["href"].rstrip("/").rsplit("/", 1)[-1]
                               for link in r.links if link.get("rel") == "stack"), None)
                found[r.physical_resource_id] = names.get(parent)
        return found

    def stack(self, stack_id):
        return self.heat().stacks.get(stack_id)

    def wait_stack(self, stack_id, status, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            stack = self.stack(stack_id)
            if stack.stack_status == status:
                return stack
            if stack.stack_status.endswith("FAILED") or time.monotonic() > deadline:
                raise RuntimeError(f"stack {stack_id} is {stack.stack_status} "
                                   f"({stack.stack_status_reason}), waited for {status}")
            time.sleep(0.3)

    def members(self, stack_id):
        """``{member name: physical id}`` of the stack's group (of its
        members' servers when the members are nested stacks:
        ``{"0/server": ...}``)."""
        found = {}
        resources = self.heat().resources.list(stack_id, nested_depth=3)
        names = {r.physical_resource_id: r.resource_name for r in resources}
        for r in resources:
            if r.resource_type not in MEMBER_TYPES:
                continue
            parent = next((link["href"].rstrip("/").rsplit("/", 1)[-1]
                           for link in r.links if link.get("rel") == "stack"), None)
            if r.resource_name == "server" and parent in names:
                found[f"{names[parent]}/server"] = r.physical_resource_id
            else:
                found[r.resource_name] = r.physical_resource_id
        return found

    def group_members(self, stack_id):
        """``{member name: physical id}`` of the group's own members."""
        return {r.resource_name: r.physical_resource_id
                for r in self.heat().resources.list(self.nested_stack_id(stack_id))}

    def nested_stack_id(self, stack_id):
        group = self.heat().resources.get(stack_id, "group")
        return group.physical_resource_id

    def delete(self, stack_id):
        self.heat().stacks.delete(stack_id)

    # --- the Zaqar -> Mistral trigger ----------------------------------------

    def subscribe_trigger(self, queue, stack_id, root_stack_id=None, extra_input=None,
                          params=None):
        """A queue whose messages start ``heal_from_alarm``, subscribed with
        the ``post_data`` that OS::Zaqar::MistralTrigger creates from the
        shipped template's properties (``params``: other trigger params,
        e.g. ``{}`` for a stock trigger without ``evaluate_env: false``)."""
        workflow_id = mistral_client.get_workflow(self.mistral_url, TRIGGERED_WORKFLOW,
                                                  token=self.token)["id"]
        workflow_input = {"stack_id": stack_id, "root_stack_id": root_stack_id or stack_id}
        workflow_input.update(extra_input or {})
        post_data = trigger_post_data(
            workflow_id, shipped_trigger_params() if params is None else params,
            workflow_input)
        zaqar_client.create_queue(queue, token=self.token)
        return zaqar_client.subscribe(
            queue, self.trust_prefix + self.mistral_url.rstrip("/") + "/executions",
            post_data=post_data, token=self.token)

    def post_alarm(self, queue, instance_id, **alarm):
        return zaqar_client.post(queue, aodh_event_alarm(instance_id, **alarm),
                                 token=self.token)[0]

    def triggered_executions(self, stack_id):
        """Executions of ``heal_from_alarm`` started for ``stack_id``."""
        return [e for e in mistral_client.list_executions(self.mistral_url, TRIGGERED_WORKFLOW,
                                                          token=self.token)
                if (e.get("input") or {}).get("stack_id") == stack_id]

    def wait_triggered(self, stack_id, count, timeout=120):
        """Wait until ``count`` executions for ``stack_id`` exist and all ended."""
        deadline = time.monotonic() + timeout
        while True:
            executions = self.triggered_executions(stack_id)
            done = [e for e in executions if e["state"] in mistral_client.TERMINAL_STATES]
            if len(executions) >= count and len(done) == len(executions):
                return [mistral_client.get_execution(self.mistral_url, e["id"], token=self.token)
                        for e in executions]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(executions)} executions for stack {stack_id} "
                                   f"({len(done)} ended), expected {count}")
            time.sleep(0.3)
