# SPDX-License-Identifier: Apache-2.0
"""Small, explicit calls to the Heat API, returning plain dicts.

Everything the actions read from or do to Heat goes through
:class:`HeatApi`, so the decision logic works on plain data and unit tests
drive it with a fake that has the same methods.

Heat addresses a stack as ``<name>/<id>`` in URLs that change something
(an id alone is answered with a redirect that a PATCH does not follow), so
every method here takes that *identity*; :meth:`HeatApi.stack` returns it.
"""

from heatclient import exc as heat_exc

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import forbidden

#: resource types whose replacement would rebuild a whole group or stack
NESTED_TYPES = ("OS::Heat::ResourceGroup", "OS::Heat::AutoScalingGroup",
                "AWS::AutoScaling::AutoScalingGroup", "OS::Heat::Stack",
                "OS::Heat::InstanceGroup")
#: the groups among them: their members are what a heal replaces
GROUP_TYPES = ("OS::Heat::ResourceGroup", "OS::Heat::AutoScalingGroup",
               "AWS::AutoScaling::AutoScalingGroup", "OS::Heat::InstanceGroup")


class UpdateInProgress(Exception):
    """Heat answered 409: the stack (or a nested one) is being changed."""


def _stack_identity(links):
    """``name/id`` of the stack a resource belongs to, from its links."""
    for link in links or ():
        if link.get("rel") == "stack":
            parts = link["href"].rstrip("/").split("/")
            return f"{parts[-2]}/{parts[-1]}"
    return None


class HeatApi:
    """The Heat calls selfheal makes, on a python-heatclient client."""

    def __init__(self, heat):
        self.heat = heat

    def stack(self, stack):
        """The stack named or identified by ``stack`` as a dict, or None.

        Keys: ``id``, ``name``, ``identity`` (``name/id``), ``status``
        (e.g. ``UPDATE_COMPLETE``), ``status_reason``, ``updated_time``.
        """
        try:
            found = self.heat.stacks.get(stack)
        except heat_exc.HTTPNotFound:
            return None
        return {"id": found.id, "name": found.stack_name,
                "identity": f"{found.stack_name}/{found.id}",
                "status": found.stack_status,
                "status_reason": getattr(found, "stack_status_reason", ""),
                "updated_time": getattr(found, "updated_time", None),
                "creation_time": getattr(found, "creation_time", None)}

    def resources(self, identity, nested_depth):
        """Every resource of the stack and its nested stacks, as dicts.

        Keys: ``name``, ``physical_id``, ``type``, ``status`` (e.g.
        ``CHECK_FAILED``), ``status_reason``, ``stack`` (the identity of the
        stack holding it), ``updated_time``, ``creation_time``, ``nested`` (has a nested stack).
        """
        found = []
        for res in self.heat.resources.list(identity, nested_depth=nested_depth):
            links = getattr(res, "links", [])
            found.append({
                "name": res.resource_name,
                "physical_id": res.physical_resource_id or "",
                "type": res.resource_type,
                "status": res.resource_status,
                "status_reason": getattr(res, "resource_status_reason", ""),
                "stack": _stack_identity(links) or identity,
                "updated_time": getattr(res, "updated_time", None),
                "creation_time": getattr(res, "creation_time", None),
                "nested": any(link.get("rel") == "nested" for link in links)
                or res.resource_type in NESTED_TYPES,
            })
        return found

    def events_of_physical_id(self, identity, physical_id, nested_depth):
        """Events (any nested stack) of the resource that had ``physical_id``."""
        events = self.heat.events.list(identity, nested_depth=nested_depth)
        return [{"name": e.resource_name, "status": e.resource_status,
                 "time": e.event_time, "stack": _stack_identity(getattr(e, "links", []))}
                for e in events if getattr(e, "physical_resource_id", None) == physical_id]

    def deleted_members(self, group_stack_id):
        """Members deleted from a group's nested stack (a scale-in, a
        replacement), newest first: ``name``, ``physical_id`` (a nested
        member's stack id, whose events Heat keeps after the delete)."""
        events = self.heat.events.list(group_stack_id, sort_dir="desc")
        return [{"name": e.resource_name, "physical_id": e.physical_resource_id,
                 "time": e.event_time}
                for e in events if e.resource_status == "DELETE_COMPLETE"
                and getattr(e, "physical_resource_id", None)]

    def mark_unhealthy(self, stack_identity, resource_name, reason):
        """Mark a resource unhealthy (``CHECK_FAILED``).

        :raises UpdateInProgress: the stack is being changed (HTTP 409).
        """
        try:
            self.heat.resources.mark_unhealthy(stack_identity, resource_name, True, reason)
        except heat_exc.HTTPConflict as e:
            raise UpdateInProgress(str(e)) from None

    def update_existing(self, identity):
        """Start a stack update with the existing template (``PATCH``).

        :raises UpdateInProgress: an update is already running (HTTP 409).
        """
        try:
            self.heat.stacks.update(identity, existing=True)
        except heat_exc.HTTPConflict as e:
            raise UpdateInProgress(str(e)) from None


def heat_failure(error, doing, changes=()):
    """An :class:`ActionFailure` for an unexpected Heat API error
    (``forbidden`` for a 403), with the ``changes`` made before it."""
    code = getattr(error, "code", None)
    if code == 403:
        return forbidden(error, changes)
    return ActionFailure("heat_error", f"Heat refused to {doing}: HTTP {code}: {error}. "
                         "Check the stack with `openstack stack show`.", changes=changes,
                         http_status=code)
