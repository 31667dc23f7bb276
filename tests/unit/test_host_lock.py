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
    assert heir.waited_for == "exec-dead"
    assert nova.aggregates[agg_id]["metadata"]["owner"] == "exec-b"


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
