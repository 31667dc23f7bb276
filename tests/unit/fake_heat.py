# SPDX-License-Identifier: Apache-2.0
"""A small in-memory Heat with the methods of ``orchestration.HeatApi``.

A root stack ``web`` holds a ResourceGroup ``group`` whose nested stack has
members ``"0"``, ``"1"``, ... An update replaces every CHECK_FAILED member
(new physical id) after ``update_polls`` reads of the stack, like a real
update that takes a while; changes during an update raise UpdateInProgress.
"""

import itertools

from selfheal_actions.heat.orchestration import UpdateInProgress

ROOT = {"id": "root-id", "name": "web"}
NESTED = "web-group-abc/nested-id"


class FakeHeat:
    def __init__(self, members=3, update_polls=2, root_status="CREATE_COMPLETE",
                 update_result="UPDATE_COMPLETE", member_type="OS::Heat::TestResource",
                 fail_updates=0):
        #: ``OS::Heat::TestResource`` members, or a template name: each member
        #: is then a nested stack holding a ``server`` (the shipped template)
        self.member_type = member_type
        self._ids = itertools.count(1)
        self.clock = itertools.count(1)  # seconds after 2026-11-22T10:00:00Z
        self.root_status = root_status
        self.root_reason = ""
        self.updated_time = None
        self.update_polls = update_polls
        self.update_result = update_result
        #: the next updates that fail (then update_result again), like a
        #: replacement Nova cannot place for a while
        self.fail_updates = fail_updates
        self.polls_left = None
        self.members = {str(i): self._new_member(str(i)) for i in range(members)}
        self.events = []
        #: members a scale-in deleted whole (nested stacks): ``{"name",
        #: "physical_id" (their stack's id), "server"}``; their stacks'
        #: events stay readable, as Heat's do
        self.removed = []
        #: reads of the group's nested stack left that find it
        #: UPDATE_IN_PROGRESS (a scaling signal resizing the group)
        self.resizing_reads = 0
        self.group_status_reads = 0
        self.calls = []

    def _now(self):
        tick = next(self.clock)
        return f"2026-11-22T10:{tick // 60:02d}:{tick % 60:02d}Z"

    def _new_member(self, name):
        return {"name": name, "physical_id": f"server-{next(self._ids)}",
                "type": self.member_type, "status": "CREATE_COMPLETE",
                "status_reason": "", "stack": NESTED, "updated_time": None,
                "creation_time": "2026-11-22T09:00:00Z",
                "nested": self.member_type.endswith(".yaml")}

    # --- HeatApi ---------------------------------------------------------

    def _group_stack(self):
        """The group's nested stack: UPDATE_IN_PROGRESS for the next
        ``resizing_reads`` reads."""
        self.group_status_reads += 1
        status = "UPDATE_COMPLETE"
        if self.resizing_reads > 0:
            self.resizing_reads -= 1
            status = "UPDATE_IN_PROGRESS"
        return {"id": "nested-id", "name": "web-group-abc", "identity": NESTED,
                "status": status, "status_reason": "", "updated_time": None,
                "creation_time": "2026-11-22T09:00:00Z"}

    def stack(self, stack):
        if stack == "nested-id":
            return self._group_stack()
        if stack not in (ROOT["id"], ROOT["name"]):
            return None
        if self.polls_left is not None:
            self.polls_left -= 1
            if self.polls_left <= 0:
                self._finish_update()
        return {"id": ROOT["id"], "name": ROOT["name"],
                "identity": f"{ROOT['name']}/{ROOT['id']}", "status": self.root_status,
                "status_reason": self.root_reason, "updated_time": self.updated_time,
                "creation_time": "2026-11-22T09:00:00Z"}

    def resources(self, identity, nested_depth):
        group = {"name": "group", "physical_id": "nested-id",
                 "type": "OS::Heat::ResourceGroup", "status": "CREATE_COMPLETE",
                 "status_reason": "", "stack": f"{ROOT['name']}/{ROOT['id']}",
                 "updated_time": None, "creation_time": None, "nested": True}
        found = [group] + [dict(m) for m in self.members.values()]
        if self.member_type.endswith(".yaml"):  # each member's own server
            found += [{"name": "server", "physical_id": f"vm-of-{m['physical_id']}",
                       "type": "OS::Nova::Server", "status": "CREATE_COMPLETE",
                       "status_reason": "", "stack": f"web-group-{n}/{m['physical_id']}",
                       "updated_time": None, "creation_time": m["creation_time"],
                       "nested": False} for n, m in self.members.items()]
        return found

    def events_of_physical_id(self, identity, physical_id, nested_depth):
        for gone in self.removed:
            if identity == gone["physical_id"]:
                return ([{"name": "server", "status": "DELETE_COMPLETE", "time": None,
                          "stack": f"web-group-{gone['name']}/{identity}"}]
                        if physical_id == gone["server"] else [])
        return [e for e in self.events if e["physical_id"] == physical_id]

    def deleted_members(self, group_stack_id):
        return [{"name": g["name"], "physical_id": g["physical_id"], "time": None}
                for g in self.removed if group_stack_id == "nested-id"][::-1]

    def mark_unhealthy(self, stack_identity, resource_name, reason):
        self.calls.append(("mark_unhealthy", resource_name))
        if self.root_status.endswith("IN_PROGRESS"):
            raise UpdateInProgress("Stack web already has an action (UPDATE) in progress.")
        member = self.members[resource_name]
        member.update(status="CHECK_FAILED", status_reason=reason)
        self.events.append({"name": resource_name, "physical_id": member["physical_id"],
                            "status": "CHECK_FAILED", "stack": NESTED})

    def update_existing(self, identity):
        self.calls.append(("update_existing", identity))
        if self.root_status.endswith("IN_PROGRESS"):
            raise UpdateInProgress("Stack web already has an action (UPDATE) in progress.")
        self.start_update()

    # --- test controls -----------------------------------------------------

    def start_update(self):
        self.root_status = "UPDATE_IN_PROGRESS"
        self.updated_time = self._now()
        self.polls_left = self.update_polls

    def _finish_update(self):
        self.polls_left = None
        self.root_status = self.update_result
        if self.fail_updates > 0:
            self.fail_updates -= 1
            self.root_status = "UPDATE_FAILED"
        if self.root_status != "UPDATE_COMPLETE":
            self.root_reason = "Resource UPDATE failed: boom"
            return
        self.root_reason = "Stack UPDATE completed successfully"
        for name, member in list(self.members.items()):
            if member["status"] == "CHECK_FAILED":
                self.events.append({"name": name, "physical_id": member["physical_id"],
                                    "status": "DELETE_COMPLETE", "stack": NESTED})
                fresh = self._new_member(name)
                fresh["creation_time"] = self._now()
                self.members[name] = fresh

    def scale_in(self, name):
        """A scale-in deletes member ``name`` (a nested stack) whole."""
        member = self.members.pop(name)
        self.removed.append({"name": name, "physical_id": member["physical_id"],
                             "server": f"vm-of-{member['physical_id']}"})
        return f"vm-of-{member['physical_id']}"

    def count(self, call):
        return sum(1 for c in self.calls if c[0] == call)
