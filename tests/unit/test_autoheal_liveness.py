# SPDX-License-Identifier: Apache-2.0
"""Liveness of autohealing (issue 19, test 4): a stack that selfheal's own
update left UPDATE_FAILED is retried a bounded number of times, by the heal
itself and by the next heals; a stack failed by someone else is reported and
left untouched."""

import itertools

import pytest

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.heat import mark_unhealthy
from selfheal_actions.heat import update_record
from tests.unit.fake_environments import FakeEnvironments
from tests.unit.fake_heat import FakeHeat


def heal(heat, store=None, **overrides):
    args = {"stack": "web", "member": "1", "reason": None, "since": None, "timeout": 600,
            "nested_depth": 5, "dry_run": False, "retries": 2, "retry_delay": 5}
    args.update(overrides)
    ticks = itertools.count(0, 1.0)
    slept = []
    records = None
    if store is not None:
        def records(stack_id, stack_name=None):
            return update_record.UpdateRecord(store, stack_id, stack_name=stack_name)

    healing = mark_unhealthy.MemberHealing(
        heat, args, "test reason", clock=lambda: next(ticks), sleep=slept.append,
        records=records, execution="exec-1", owner="owner-1")
    return healing.run(), slept


def updates(changes):
    return [c for c in changes if c["change"] == "updated"]


# --- the decision -------------------------------------------------------------


@pytest.mark.parametrize("stack, record, decision, attempts", [
    ({"status": "UPDATE_FAILED", "updated_time": "T1"}, {"updated_time": "T1", "attempts": 1},
     "retry", 1),
    ({"status": "UPDATE_FAILED", "updated_time": "T1"}, {"updated_time": "T1", "attempts": 2},
     "retry", 2),
    ({"status": "UPDATE_FAILED", "updated_time": "T1"}, {"updated_time": "T1", "attempts": 3},
     "exhausted", 3),
    # someone else updated after ours (another updated_time), or no record
    ({"status": "UPDATE_FAILED", "updated_time": "T2"}, {"updated_time": "T1", "attempts": 1},
     "not_ours", 0),
    ({"status": "UPDATE_FAILED", "updated_time": "T1"}, None, "not_ours", 0),
    ({"status": "UPDATE_FAILED", "updated_time": None}, {"updated_time": None}, "not_ours", 0),
    # not an update's failure at all
    ({"status": "CREATE_FAILED", "updated_time": "T1"}, {"updated_time": "T1"}, "not_ours", 0),
    ({"status": "UPDATE_FAILED", "updated_time": "T1"},
     {"updated_time": "T1", "attempts": "garbage"}, "retry", 1),
])
def test_whose_failure_and_what_to_do(stack, record, decision, attempts):
    found = update_record.decide(stack, record, retries=2)
    assert found == {"decision": decision, "attempts": attempts}


# --- within one heal -------------------------------------------------------------


def test_an_update_of_ours_that_fails_once_is_retried_and_the_member_replaced():
    heat, store = FakeHeat(fail_updates=1), FakeEnvironments()
    old = heat.members["1"]["physical_id"]
    result, slept = heal(heat, store)
    assert result["outcome"] == "replaced"
    assert result["member"]["old_physical_id"] == old != heat.members["1"]["physical_id"]
    assert result["member"]["new_physical_id"] == heat.members["1"]["physical_id"]
    assert [c["attempt"] for c in updates(result["changes"])] == [1, 2]
    assert heat.count("update_existing") == 2 and heat.count("mark_unhealthy") == 1
    assert 5 in slept  # retry_delay between the failure and the retry
    assert store.envs == {}  # the record goes once an update of ours completed
    assert heat.root_status == "UPDATE_COMPLETE"


def test_an_update_of_ours_that_keeps_failing_is_run_at_most_one_plus_retries_times():
    heat, store = FakeHeat(fail_updates=100), FakeEnvironments()
    with pytest.raises(ActionFailure) as err:
        heal(heat, store, retries=2)
    assert err.value.reason == "update_failed"
    assert heat.count("update_existing") == 3
    assert "3 updates of selfheal in a row" in err.value.message
    assert "openstack stack update --existing web" in err.value.message
    assert err.value.details["attempts"] == 3
    assert len(updates(err.value.changes)) == 3
    # the record stays: the next heal knows the failure is ours and spent
    record = store.envs[update_record.record_name("root-id")]["variables"]
    assert record["attempts"] == 3 and record["updated_time"] == heat.updated_time
    assert record["execution"] == "exec-1"


def test_no_retries_means_one_update():
    heat = FakeHeat(fail_updates=1)
    with pytest.raises(ActionFailure) as err:
        heal(heat, FakeEnvironments(), retries=0)
    assert err.value.reason == "update_failed"
    assert heat.count("update_existing") == 1


def test_without_a_record_store_the_heal_still_retries_its_own_failure():
    heat = FakeHeat(fail_updates=1)
    result, _ = heal(heat, store=None)
    assert result["outcome"] == "replaced" and heat.count("update_existing") == 2


def test_no_time_left_for_a_retry_is_update_failed_not_a_timeout():
    heat = FakeHeat(fail_updates=1)
    with pytest.raises(ActionFailure) as err:
        heal(heat, FakeEnvironments(), timeout=12, retry_delay=600)
    assert err.value.reason == "update_failed" and "no time is left" in err.value.message
    assert heat.count("update_existing") == 1


# --- across heals: the record ----------------------------------------------------


def failed_by_us(attempts, heat=None):
    """A stack whose last update (ours, recorded) failed ``attempts`` times."""
    heat = heat or FakeHeat()
    heat.members["1"]["status"] = "CHECK_FAILED"
    heat.start_update()
    heat.polls_left = None
    heat.root_status, heat.root_reason = "UPDATE_FAILED", "Resource CREATE failed: no host"
    store = FakeEnvironments()
    update_record.UpdateRecord(store, "root-id").write(heat.updated_time, attempts,
                                                       execution="an-earlier-heal")
    return heat, store


def test_the_next_heal_retries_a_stack_our_update_left_failed():
    heat, store = failed_by_us(attempts=1)
    old = heat.members["1"]["physical_id"]
    result, _ = heal(heat, store, member="0")  # another member's alarm
    assert result["outcome"] == "replaced"
    # one update replaced both: the marked member of the failed update too
    assert heat.members["1"]["physical_id"] != old
    assert [c["attempt"] for c in updates(result["changes"])] == [2]
    assert heat.root_status == "UPDATE_COMPLETE" and store.envs == {}


def test_a_stack_whose_retries_are_spent_is_reported_and_untouched():
    heat, store = failed_by_us(attempts=3)
    with pytest.raises(ActionFailure) as err:
        heal(heat, store, retries=2)
    assert err.value.reason == "stack_failed"
    assert err.value.details["failed_update"] == "retries_exhausted"
    assert "failed 3 times in a row" in err.value.message
    assert "openstack stack update --existing web" in err.value.message
    assert heat.calls == [] and err.value.changes == []


@pytest.mark.parametrize("record_time", [None, "someone-else"])
def test_a_stack_failed_by_someone_else_is_reported_and_untouched(record_time):
    heat = FakeHeat()
    heat.start_update()  # someone's update (not recorded as ours)
    heat.polls_left = None
    heat.root_status, heat.root_reason = "UPDATE_FAILED", "Property error: flavor"
    store = FakeEnvironments()
    if record_time:  # an older update of ours, before theirs
        update_record.UpdateRecord(store, "root-id").write("2026-11-22T09:59:00Z", 1)
    with pytest.raises(ActionFailure) as err:
        heal(heat, store)
    assert err.value.reason == "stack_failed"
    assert err.value.details["failed_update"] == "not_selfheal"
    message = err.value.message
    assert "did not start" in message and "untouched" in message
    assert "Property error: flavor" in message and "openstack stack event list" in message
    assert heat.calls == [] and err.value.changes == []


def test_a_dry_run_on_a_stack_our_update_left_failed_says_it_would_retry():
    heat, store = failed_by_us(attempts=1)
    result, _ = heal(heat, store, dry_run=True)
    assert result["outcome"] == "would_replace" and heat.calls == []
    assert len(store.envs) == 1  # read, not written


def test_a_long_status_reason_is_bounded_in_the_message():
    heat = FakeHeat()
    heat.root_status, heat.root_reason, heat.updated_time = "UPDATE_FAILED", "x" * 10_000, "T"
    with pytest.raises(ActionFailure) as err:
        heal(heat, FakeEnvironments())
    assert len(err.value.message) < 1500
