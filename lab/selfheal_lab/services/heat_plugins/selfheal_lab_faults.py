# SPDX-License-Identifier: Apache-2.0
"""A Heat resource for the lab whose creation fails on demand.

Loaded by the lab's heat-engine from ``[DEFAULT] plugin_dirs`` (this folder);
never part of what Mistral or a cloud installs. ``Selfheal::Lab::Member``
is ``OS::Heat::TestResource`` (same properties) plus one fault the lab can
inject: the next ``n`` creations of members of one root stack fail, as a
replacement server does when Nova finds no valid host. The faults are a JSON
file, ``{"<root stack id>": {"failures": n, "message": "..."}}``, at the path
in the engine's environment variable ``SELFHEAL_LAB_HEAT_FAULTS``
(:func:`selfheal_lab.services.heat.fail_member_creates` writes it).
"""

import fcntl
import json
import os

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


def resource_mapping():
    return {"Selfheal::Lab::Member": LabMember}
