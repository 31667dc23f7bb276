# SPDX-License-Identifier: Apache-2.0
"""selfheal.mark_unhealthy's decisions, on an in-memory Heat."""

import datetime
import itertools

import pytest

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.heat import mark_unhealthy
from tests.unit.fake_heat import FakeHeat


def args(**overrides):
    base = {"stack": "web", "member": "1", "reason": None, "since": None,
            "timeout": 60, "nested_depth": 5, "dry_run": False}
    base.update(overrides)
    return base


def heal(heat, **overrides):
    ticks = itertools.count(0, 1.0)  # each clock read is one second later
    healing = mark_unhealthy.MemberHealing(heat, args(**overrides), "test reason",
                                     clock=lambda: next(ticks), sleep=lambda s: None)
    return healing.run(), healing


def test_member_by_name_is_marked_updated_and_verified():
    heat = FakeHeat()
    old = heat.members["1"]["physical_id"]
    result, _ = heal(heat)
    assert result["outcome"] == "replaced"
    assert result["member"]["old_physical_id"] == old
    assert result["member"]["new_physical_id"] == heat.members["1"]["physical_id"] != old
    assert [c["change"] for c in result["changes"]] == ["marked_unhealthy", "updated"]
    assert heat.count("mark_unhealthy") == 1 and heat.count("update_existing") == 1
    # the others were left alone
    assert heat.members["0"]["physical_id"] == "server-1"


def test_member_by_physical_id_is_found_in_the_nested_stack():
    heat = FakeHeat()
    server = heat.members["2"]["physical_id"]
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "replaced"
    assert result["member"]["name"] == "2"
    assert heat.members["2"]["physical_id"] != server


def test_already_marked_member_is_not_marked_again():
    heat = FakeHeat()
    heat.members["1"]["status"] = "CHECK_FAILED"
    result, _ = heal(heat)
    assert result["outcome"] == "replaced"
    assert heat.count("mark_unhealthy") == 0
    assert [c["change"] for c in result["changes"]] == ["updated"]


def test_repeated_alarm_for_a_replaced_member_is_a_no_op():
    heat = FakeHeat()
    server = heat.members["1"]["physical_id"]
    heal(heat, member=server)
    calls = len(heat.calls)
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "already_replaced"
    assert result["changes"] == []
    assert result["member"]["new_physical_id"] == heat.members["1"]["physical_id"]
    assert len(heat.calls) == calls  # nothing marked or updated


def test_alarm_during_the_update_that_replaces_its_member_waits_and_does_nothing():
    heat = FakeHeat(update_polls=3)
    server = heat.members["1"]["physical_id"]
    heat.members["1"]["status"] = "CHECK_FAILED"  # an earlier alarm marked it...
    heat.start_update()  # ...and its update runs
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "already_replaced"
    assert result["waited_for_updates"] == 1
    assert heat.count("update_existing") == 0


def test_alarm_for_another_member_during_an_update_heals_it_afterwards():
    heat = FakeHeat()
    heat.members["0"]["status"] = "CHECK_FAILED"
    heat.start_update()  # replacing member 0
    server = heat.members["2"]["physical_id"]
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "replaced"
    assert result["waited_for_updates"] == 1
    assert heat.members["2"]["physical_id"] != server
    assert heat.members["0"]["physical_id"] not in ("server-1",)


def test_conflict_on_update_waits_for_the_other_update_then_decides_again():
    class RacingHeat(FakeHeat):
        """Another execution starts its update between our mark and ours."""

        def update_existing(self, identity):
            if not any(c[0] == "update_existing" for c in self.calls):
                self.start_update()
            super().update_existing(identity)

    heat = RacingHeat()
    server = heat.members["1"]["physical_id"]
    result, _ = heal(heat, member=server)
    # the other update replaced our marked member: no second update
    assert result["outcome"] == "already_replaced"
    assert heat.count("update_existing") == 1
    assert result["waited_for_updates"] == 1
    assert [c["change"] for c in result["changes"]] == ["marked_unhealthy"]


def test_name_given_member_created_after_the_failure_is_left_alone():
    heat = FakeHeat()
    heat.members["1"]["creation_time"] = "2026-11-22T10:05:00Z"
    since = datetime.datetime(2026, 11, 22, 10, 0, tzinfo=datetime.timezone.utc)
    result, _ = heal(heat, since=since)
    assert result["outcome"] == "already_replaced"
    assert heat.calls == []
    # a failure seen after it was built is healed
    result, _ = heal(heat, since=since.replace(minute=10))
    assert result["outcome"] == "replaced"


def test_dry_run_reports_and_changes_nothing():
    heat = FakeHeat()
    before = {k: dict(v) for k, v in heat.members.items()}
    result, _ = heal(heat, dry_run=True)
    assert result["outcome"] == "would_replace"
    assert [c["change"] for c in result["changes"]] == ["marked_unhealthy", "updated"]
    assert heat.calls == [] and heat.members == before


@pytest.mark.parametrize("setup, overrides, reason", [
    (lambda h: None, {"stack": "nope"}, "stack_not_found"),
    (lambda h: None, {"member": "no-such-server"}, "member_not_found"),
    (lambda h: None, {"member": "group"}, "member_not_replaceable"),
    (lambda h: setattr(h, "root_status", "UPDATE_FAILED"), {}, "stack_failed"),
    (lambda h: h.members["1"].update(status="DELETE_IN_PROGRESS"), {}, "member_not_replaceable"),
])
def test_refusals_change_nothing(setup, overrides, reason):
    heat = FakeHeat()
    setup(heat)
    with pytest.raises(ActionFailure) as err:
        heal(heat, **overrides)
    assert err.value.reason == reason
    assert err.value.message
    assert heat.calls == [] and err.value.changes == []


def test_a_member_that_is_a_nested_stack_is_replaced_by_its_name():
    """The shipped template's members are nested stacks (a server and its
    alarms): the README's ``{"member": "2"}`` names one, and it is the member
    to replace, not a group to refuse."""
    heat = FakeHeat(member_type="autohealing_member.yaml")
    old = heat.members["2"]["physical_id"]
    result, _ = heal(heat, member="2")
    assert result["outcome"] == "replaced"
    assert result["member"]["old_physical_id"] == old != heat.members["2"]["physical_id"]
    assert heat.calls[0] == ("mark_unhealthy", "2")
    # its server's physical id (what an alarm names) finds the server itself
    heat = FakeHeat(member_type="autohealing_member.yaml")
    result, _ = heal(heat, member="vm-of-" + heat.members["1"]["physical_id"], dry_run=True)
    assert result["outcome"] == "would_replace" and result["member"]["name"] == "server"


def test_naming_the_whole_group_says_which_names_to_give():
    heat = FakeHeat(members=8)
    with pytest.raises(ActionFailure) as err:
        heal(heat, member="group")
    assert err.value.reason == "member_not_replaceable"
    assert "Name one member of the group: its resource name" in err.value.message
    assert "'0', '1', '2', '3', '4', ..." in err.value.message
    assert "physical id" in err.value.message
    assert heat.calls == []


def test_a_huge_member_id_is_refused_with_a_bounded_message():
    result = mark_unhealthy.MarkUnhealthyAction(stack="web", member="x" * 100_000).run(None)
    assert result.error["reason"] == "invalid_input"
    assert len(repr(result.error)) < 1000


@pytest.mark.parametrize("template", ["autohealing_group.yaml",
                                      "autohealing_autoscaling_group.yaml"])
def test_the_shipped_trigger_asks_mistral_not_to_evaluate_the_message(template):
    """OS::Zaqar::MistralTrigger puts the Zaqar message in the execution's
    env, and Mistral evaluates every expression in an env unless the
    execution's params say ``evaluate_env: false``: tenant text such as a
    server named ``web-{{ index }}`` would be evaluated (or fail the start).
    Built the way Heat's MistralTrigger builds its post_data
    (heat/engine/resources/openstack/zaqar/subscription.py)."""
    import json

    import yaml

    from selfheal_tools import data

    group = yaml.safe_load((data.heat_templates_dir() / template).read_text())
    trigger = group["resources"]["heal_trigger"]
    assert trigger["type"] == "OS::Zaqar::MistralTrigger"
    post_data = json.loads(autoheal_trigger_post_data(trigger["properties"]))
    assert post_data["params"] == {"evaluate_env": False,
                                   "env": {"notification": "$zaqar_message$"}}


def autoheal_trigger_post_data(properties):
    """Heat 27's MistralTrigger._subscription_options, on template properties."""
    import json

    params = dict(properties.get("params") or {})
    params.setdefault("env", {})
    params["env"]["notification"] = "$zaqar_message$"
    return json.dumps({"workflow_id": properties["workflow_id"], "params": params,
                       "input": properties.get("input") or {}})


def test_ambiguous_name_is_refused_with_candidates():
    resources = [{"name": "0", "physical_id": "a", "stack": "s1/1"},
                 {"name": "0", "physical_id": "b", "stack": "s2/2"}]
    with pytest.raises(ActionFailure) as err:
        mark_unhealthy.find_member(resources, "0")
    assert err.value.reason == "ambiguous_member"
    assert {c["physical_id"] for c in err.value.details["candidates"]} == {"a", "b"}
    assert mark_unhealthy.find_member(resources, "b")["stack"] == "s2/2"


def test_failed_update_reports_what_was_changed():
    heat = FakeHeat(update_result="UPDATE_FAILED")
    with pytest.raises(ActionFailure) as err:
        heal(heat)
    assert err.value.reason == "update_failed"
    assert [c["change"] for c in err.value.changes] == ["marked_unhealthy", "updated"]


def test_update_that_never_ends_times_out():
    heat = FakeHeat(update_polls=10_000)
    with pytest.raises(ActionFailure) as err:
        heal(heat, timeout=5)
    assert err.value.reason == "update_timeout"
    assert "UPDATE_IN_PROGRESS" in err.value.message


def test_update_that_does_not_replace_the_member_is_not_verified():
    class LazyHeat(FakeHeat):
        def _finish_update(self):
            self.polls_left = None
            self.root_status = "UPDATE_COMPLETE"  # but nothing replaced

    heat = LazyHeat()
    with pytest.raises(ActionFailure) as err:
        heal(heat)
    assert err.value.reason == "replacement_not_verified"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"stack": ""}, "'stack' is required"),
    ({"member": None}, "'member' is required"),
    ({"timeout": 0}, "'timeout' must be at least 1"),
    ({"since": "yesterday"}, "'since' must be an ISO 8601 time"),
    ({"dry_run": "maybe"}, "'dry_run' must be true or false"),
    ({"nested_depth": 1.5}, "'nested_depth' must be a whole number"),
])
def test_bad_input_is_refused_before_heat_is_asked(kwargs, fragment, monkeypatch):
    def no_client(context):
        raise AssertionError("Heat must not be reached with bad input")

    monkeypatch.setattr(mark_unhealthy.clients, "heat", no_client)
    params = {"stack": "web", "member": "1"}
    params.update(kwargs)
    result = mark_unhealthy.MarkUnhealthyAction(**params).run(context=None)
    assert result.is_error()
    assert result.error["reason"] == "invalid_input"
    assert fragment in result.error["message"]
    assert result.error["changed"] is False


def test_update_after_another_alarm_replaced_the_member_is_not_called_a_replacement():
    class LateHeat(FakeHeat):
        """Another execution's whole update runs between our read and our update."""

        def update_existing(self, identity):
            if not any(c[0] == "update_existing" for c in self.calls):
                self.calls.append(("update_existing", identity))
                self.start_update()
                self._finish_update()  # ...it replaced the member we marked
            super().update_existing(identity)

    heat = LateHeat()
    server = heat.members["1"]["physical_id"]
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "already_replaced"
    assert result["member"]["new_physical_id"] == heat.members["1"]["physical_id"] != server


def test_own_update_followed_at_once_by_another_is_still_ours():
    class BusyHeat(FakeHeat):
        """Another alarm's update starts the moment ours ends."""

        def _finish_update(self):
            first = not any(c == ("other",) for c in self.calls)
            super()._finish_update()
            if first:
                self.calls.append(("other",))
                self.update_polls = 10_000
                self.start_update()

    heat = BusyHeat()
    server = heat.members["1"]["physical_id"]
    result, _ = heal(heat, member=server, timeout=30)
    assert result["outcome"] == "replaced"
    assert result["member"]["new_physical_id"] == heat.members["1"]["physical_id"] != server


def test_unreachable_heat_is_a_clear_error_not_a_traceback(monkeypatch):
    from keystoneauth1 import exceptions as ks_exc

    class DownHeat(FakeHeat):
        def stack(self, stack):
            raise ks_exc.ConnectFailure("Unable to establish connection")

    monkeypatch.setattr(mark_unhealthy.clients, "heat", lambda context: None)
    monkeypatch.setattr(mark_unhealthy.orchestration, "HeatApi", lambda client: DownHeat())
    result = mark_unhealthy.MarkUnhealthyAction(stack="web", member="1").run(context=None)
    assert result.is_error()
    assert result.error["reason"] == "service_unreachable"
    assert "orchestration API" in result.error["message"]


@pytest.mark.parametrize("workflow", ["selfheal.autoheal.heal_from_alarm",
                                      "selfheal.autoheal.mark_unhealthy"])
@pytest.mark.parametrize("value, expected", [
    ("600", 600), (600, 600), (600.0, 600),
    ("abc", "'timeout' must be a number"), (-5, "'timeout' must be at least 1"),
    (1.5, "'timeout' must be a whole number"), (None, "'timeout' must be a number")])
def test_the_autoheal_timeout_is_checked_before_the_workflow_uses_it(workflow, value,
                                                                       expected):
    """The workflows compute a task timeout from it: a whole number, or a
    clear invalid_input from the first task (never a policy traceback)."""
    from selfheal_actions.common import workflow_inputs

    result = workflow_inputs.CheckInputsAction(workflow, {"timeout": value}).run(None)
    if isinstance(expected, int):
        assert result.data["inputs"]["timeout"] == expected
        assert type(result.data["inputs"]["timeout"]) is int
    else:
        assert result.error["reason"] == "invalid_input"
        assert expected in result.error["message"]


def test_an_alarm_for_a_member_removed_by_a_scale_in_is_a_clear_no_op():
    heat = FakeHeat()
    server = heat.members["2"]["physical_id"]
    del heat.members["2"]  # the group scaled in: Heat deleted member 2
    heat.events.append({"name": "2", "physical_id": server, "status": "DELETE_COMPLETE",
                        "stack": "web-group-abc/nested-id"})
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "member_removed"
    assert result["changes"] == [] and heat.calls == []
    assert result["member"]["old_physical_id"] == server
    assert result["member"]["new_physical_id"] is None


def test_an_alarm_for_a_server_whose_whole_member_a_scale_in_deleted_is_a_no_op():
    """An AutoScalingGroup of nested members (a server and its alarms): a
    scale-in deletes the member's stack and with it the server's events in
    the stack tree; the deleted stack's own events still name the server."""
    heat = FakeHeat(member_type="autohealing_member.yaml")
    server = heat.scale_in("2")
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "member_removed" and result["changes"] == []
    assert result["member"]["name"] == "2" and result["member"]["old_physical_id"] == server
    assert heat.calls == []
    # a server that never was in the stack is still unknown
    with pytest.raises(ActionFailure) as err:
        heal(heat, member="vm-of-nothing")
    assert err.value.reason == "member_not_found"


def test_an_alarm_for_a_member_being_deleted_by_a_scale_in_waits_and_is_a_no_op():
    class ScalingInHeat(FakeHeat):
        reads = 0

        def resources(self, identity, nested_depth):
            self.reads += 1
            if self.reads == 3:  # the scale-in's delete ends
                member = self.members.pop("2")
                self.events.append({"name": "2", "physical_id": member["physical_id"],
                                    "status": "DELETE_COMPLETE", "stack": member["stack"]})
            return super().resources(identity, nested_depth)

    heat = ScalingInHeat()
    heat.members["2"]["status"] = "DELETE_IN_PROGRESS"
    server = heat.members["2"]["physical_id"]
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "member_removed" and heat.calls == []


def test_an_alarm_for_a_server_of_a_member_being_deleted_waits_for_the_scale_in():
    class ScalingInHeat(FakeHeat):
        """Heat no longer lists the server of a member whose stack is being
        deleted; the member itself is DELETE_IN_PROGRESS for two reads."""
        reads = 0

        def resources(self, identity, nested_depth):
            self.reads += 1
            found = [r for r in super().resources(identity, nested_depth)
                     if not r["stack"].startswith("web-group-2/")]
            if self.reads <= 2:
                for r in found:
                    if r["name"] == "2":
                        r["status"] = "DELETE_IN_PROGRESS"
                return found
            if "2" in self.members:
                self.scale_in("2")
            return super().resources(identity, nested_depth)

    heat = ScalingInHeat(member_type="autohealing_member.yaml")
    server = f"vm-of-{heat.members['2']['physical_id']}"
    result, _ = heal(heat, member=server)
    assert result["outcome"] == "member_removed" and heat.calls == []
    assert heat.reads >= 3


def test_a_heal_waits_for_a_group_resize_in_progress_before_it_marks_and_updates():
    """A scaling signal resizes the group's nested stack while the root
    stack stays COMPLETE: an update then would supersede the resize (seen on
    the lab: the scale-up lost, once the heal hung)."""
    class ResizingHeat(FakeHeat):
        def mark_unhealthy(self, *args):
            self.reads_at_mark = self.group_status_reads
            assert self.resizing_reads == 0, "marked during the resize"
            super().mark_unhealthy(*args)

    heat = ResizingHeat()
    heat.resizing_reads = 3
    result, _ = heal(heat)
    assert result["outcome"] == "replaced"
    assert heat.reads_at_mark >= 4  # 3 reads found it resizing, then one did not
    assert heat.count("update_existing") == 1


def test_a_group_resize_that_never_ends_is_a_clear_error_and_nothing_changes():
    heat = FakeHeat()
    heat.resizing_reads = 10 ** 6
    with pytest.raises(ActionFailure) as failed:
        heal(heat, timeout=20)
    assert failed.value.reason == "update_timeout"
    assert "resiz" in str(failed.value) and heat.calls == []
