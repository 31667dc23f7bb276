# SPDX-License-Identifier: Apache-2.0
"""Heat resources for the lab: a member whose creation fails on demand, and
a scaling policy that needs no Keystone.

Loaded by the lab's heat-engine from ``[DEFAULT] plugin_dirs`` (this folder);
never part of what Mistral or a cloud installs. ``Selfheal::Lab::Member``
is ``OS::Heat::TestResource`` (same properties) plus one fault the lab can
inject: the next ``n`` creations of members of one root stack fail, as a
replacement server does when Nova finds no valid host. The faults are a JSON
file, ``{"<root stack id>": {"failures": n, "message": "..."}}``, at the path
in the engine's environment variable ``SELFHEAL_LAB_HEAT_FAULTS``
(:func:`selfheal_lab.services.heat.fail_member_creates` writes it).

``Selfheal::Lab::ScalingPolicy`` is Heat's ``OS::Heat::ScalingPolicy``
without the Keystone user its creation makes for the signed signal URL (the
no-auth lab has no Keystone catalog, so the real one cannot be created). A
signal through the API (``openstack stack resource signal``) runs Heat's own
``ScalingPolicy.handle_signal`` and ``AutoScalingGroup.adjust``, as an
alarm's does; ``signal_url`` names that API call's URL path. A signal runs
in the stack's stored context, which asks Keystone for the user's domain and
roles; the no-auth lab has none, so the policy fills in what the no-auth API
gives every request (domain ``default``, role ``admin``) first.
"""

import fcntl
import json
import os

from heat.engine.resources.openstack.heat import scaling_policy
from heat.engine.resources.openstack.heat import test_resource

FAULTS_ENV = "SELFHEAL_LAB_HEAT_FAULTS"


def take_fault(root_stack_id):
    """The fault message for one creation in ``root_stack_id`` (consumed),
    or None."""
    path = os.environ.get(FAULTS_ENV)
    if not path or not os.path.exists(path):
        return None
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            faults = json.loads(f.read() or "{}")
        except ValueError:
            return None
        fault = faults.get(root_stack_id)
        if not fault or fault.get("failures", 0) <= 0:
            return None
        fault["failures"] -= 1
        fault["taken"] = fault.get("taken", 0) + 1
        f.seek(0)
        f.truncate()
        f.write(json.dumps(faults))
        return fault.get("message") or "injected by the lab"


class LabMember(test_resource.TestResource):
    """``OS::Heat::TestResource`` whose creation fails while the lab says so."""

    def handle_create(self):
        message = take_fault(self.stack.root_stack_id())
        if message:
            raise RuntimeError(message)
        return super().handle_create()


class LabScalingPolicy(scaling_policy.AutoScalingPolicy):
    """``OS::Heat::ScalingPolicy`` without a Keystone user (signals through
    the API only)."""

    def handle_create(self):
        self.resource_id_set(self.physical_resource_name())

    def handle_delete(self):
        return None

    def handle_signal(self, details=None):
        context = self.stack.context
        for name in ("user_domain_id", "project_domain_id"):
            if getattr(context, "_" + name, None) is None:
                setattr(context, name, "default")
        if getattr(context, "_roles", None) is None:
            context.roles = ["admin"]
        return super().handle_signal(details)

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        return (f"/stacks/{self.stack.name}/{self.stack.id}/resources/{self.name}/signal"
                if name in (self.ALARM_URL, self.SIGNAL_URL) else None)


def resource_mapping():
    return {"Selfheal::Lab::Member": LabMember,
            "Selfheal::Lab::ScalingPolicy": LabScalingPolicy}
