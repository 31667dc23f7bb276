# SPDX-License-Identifier: Apache-2.0
import datetime

import pytest

from selfheal_actions.common import host_claim
from selfheal_actions.common.results import ActionFailure
from tests.unit.fake_nova import FakeNova
from tests.unit.test_evacuation_run import Clock


def lock(nova, owner, clock=None, stale_after=60):
    clock = clock or Clock()
    return host_claim.HostLock(nova, "h1", owner, stale_after=stale_after, clock=clock,
                              sleep=clock.sleep)


def test_first_claim_wins_and_second_waits_then_gives_up():
    nova = FakeNova()
    first = lock(nova, "exec-a")
    assert first.acquire(timeout=5)
    agg = nova.find_aggregate("selfheal-lock-h1")
    assert agg["metadata"]["owner"] == "exec-a"
    with pytest.raises(ActionFailure) as err:
        lock(nova, "exec-b").acquire(timeout=5)
    assert err.value.reason == "host_busy"
    assert "exec-a" in err.value.message


def test_release_lets_the_next_one_in():
    nova = FakeNova()
    first = lock(nova, "exec-a")
    first.acquire(timeout=5)
    first.release()
    assert nova.aggregates == {}
    second = lock(nova, "exec-b")
    assert second.acquire(timeout=1)
    assert nova.find_aggregate("selfheal-lock-h1")["metadata"]["owner"] == "exec-b"


def test_same_owner_reclaims_its_own_lock():
    nova = FakeNova()
    lock(nova, "exec-a").acquire(timeout=1)
    assert lock(nova, "exec-a").acquire(timeout=0)


def test_stale_claim_of_a_dead_owner_is_taken_over():
    nova = FakeNova()
    lock(nova, "exec-dead").acquire(timeout=1)
    agg_id = next(iter(nova.aggregates))
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=300)
    nova.aggregates[agg_id]["metadata"]["heartbeat"] = old.strftime("%Y-%m-%dT%H:%M:%SZ")
    heir = lock(nova, "exec-b")
    assert heir.acquire(timeout=1)
    assert heir.waited_for == "exec-dead" and heir.took_over_from == "exec-dead"
    # the stale claim was deleted and created again: the name is the compare-and-swap
    (only,) = nova.aggregates.values()
    assert only["id"] != agg_id and only["metadata"]["owner"] == "exec-b"


def test_refresh_is_throttled():
    nova = FakeNova()
    clock = Clock()
    owner = lock(nova, "exec-a", clock)
    owner.acquire(timeout=1)
    before = nova.count("set_aggregate_metadata")
    owner.refresh()
    clock.now += host_claim.REFRESH_EVERY + 1
    owner.refresh()
    owner.refresh()
    assert nova.count("set_aggregate_metadata") == before + 1


def _stale(nova, seconds=300):
    agg_id = next(iter(nova.aggregates))
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    nova.aggregates[agg_id]["metadata"]["heartbeat"] = old.strftime("%Y-%m-%dT%H:%M:%SZ")
    return agg_id


def test_runs_outside_a_workflow_each_get_their_own_owner():
    from selfheal_actions.common import clients

    class NoExecution:
        execution = None

    class InWorkflow:
        class execution:
            workflow_execution_id = "wf-1"
            action_execution_id = "act-1"

    first, second = clients.run_owner(NoExecution()), clients.run_owner(NoExecution())
    assert first != second and "manual" not in (first, second)
    assert clients.run_owner(InWorkflow()) == "wf-1/act-1"


def test_two_waiters_taking_over_one_stale_claim_at_once_only_one_wins():
    nova = FakeNova()
    lock(nova, "exec-dead").acquire(timeout=1)
    _stale(nova)
    seen = nova.find_aggregate("selfheal-lock-h1")
    nova.find_aggregate = lambda name: dict(seen, metadata=dict(seen["metadata"]))
    first, second = lock(nova, "exec-a"), lock(nova, "exec-b")
    # both read the same stale claim before either acts
    assert first.acquire(timeout=0)
    with pytest.raises(ActionFailure) as err:
        second.acquire(timeout=0)
    assert err.value.reason == "host_busy"
    (only,) = nova.aggregates.values()
    assert only["metadata"]["owner"] == "exec-a"


def test_a_slow_owner_that_lost_its_claim_stops_and_never_deletes_the_successors():
    nova = FakeNova()
    clock = Clock()
    slow = lock(nova, "exec-slow", clock)
    slow.acquire(timeout=1)
    _stale(nova)
    heir = lock(nova, "exec-heir")
    assert heir.acquire(timeout=1)
    clock.now += host_claim.REFRESH_EVERY + 1
    with pytest.raises(ActionFailure) as err:
        slow.refresh()
    assert err.value.reason == "claim_lost" and "exec-heir" in err.value.message
    slow.release()
    (only,) = nova.aggregates.values()
    assert only["metadata"]["owner"] == "exec-heir"


def test_the_heartbeat_beats_on_its_own_during_a_long_cycle():
    import time

    nova = FakeNova()
    owner = host_claim.HostLock(nova, "h1", "exec-a", stale_after=60)
    owner.acquire(timeout=1)
    owner.start_heartbeat(interval=0.02)
    try:
        time.sleep(0.3)  # one long cycle of the run: no refresh() call from it
    finally:
        owner.stop_heartbeat()
    beats = nova.count("set_aggregate_metadata")
    assert beats >= 4
    owner.check()  # still ours: no error


def test_the_heartbeat_notices_a_lost_claim_and_the_run_stops_at_its_next_check():
    import time

    nova = FakeNova()
    owner = host_claim.HostLock(nova, "h1", "exec-a", stale_after=60)
    owner.acquire(timeout=1)
    owner.start_heartbeat(interval=0.02)
    try:
        nova.aggregates.clear()  # an operator deleted the claim
        time.sleep(0.2)
    finally:
        owner.stop_heartbeat()
    with pytest.raises(ActionFailure) as err:
        owner.check()
    assert err.value.reason == "claim_lost"


def test_a_transient_error_on_the_heartbeat_is_not_a_lost_claim():
    nova = FakeNova()
    clock = Clock()
    owner = lock(nova, "exec-a", clock)
    owner.acquire(timeout=1)

    def unavailable(*args):
        from novaclient import exceptions as nova_exc
        raise nova_exc.ClientException(503, "Service Unavailable")

    real, nova.get_aggregate = nova.get_aggregate, unavailable
    clock.now += host_claim.REFRESH_EVERY + 1
    owner.refresh()  # logged, tried again later
    nova.get_aggregate = real
    clock.now += host_claim.REFRESH_EVERY + 1
    owner.refresh()
    owner.check()
