# SPDX-License-Identifier: Apache-2.0
"""One healer per stack: the claim (a uniquely named Mistral environment),
on an in-memory store that behaves like Mistral's environments API (names
unique per project, enforced by the database: a second create is HTTP 409)."""

import datetime
import json as jsonlib
import threading
import urllib.parse

import pytest

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.heat import mark_unhealthy
from selfheal_actions.heat import stack_claim
from tests.unit.fake_environments import FakeEnvironments
from tests.unit.fake_heat import FakeHeat


def old(seconds):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def claim(store, owner, stack="stack-id", **kwargs):
    kwargs.setdefault("sleep", lambda s: None)
    return stack_claim.StackClaim(store, stack, owner, **kwargs)


def test_two_claimers_in_the_same_instant_one_wins():
    for _ in range(20):
        store = FakeEnvironments()
        start = threading.Barrier(2)
        won = {}

        def run(owner, store=store, start=start, won=won):
            start.wait()
            won[owner] = claim(store, owner)._try_create()

        threads = [threading.Thread(target=run, args=(o,)) for o in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won.values()) == [False, True]
        [winner] = [o for o, w in won.items() if w]
        assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == winner


def test_the_wait_ends_in_stack_busy_naming_the_holder():
    store = FakeEnvironments()
    holder = claim(store, "exec-1/action-1", execution="exec-1")
    holder.acquire(timeout=1)
    ticks = iter(range(1000))
    waiter = claim(store, "exec-2/action-2", clock=lambda: next(ticks))
    with pytest.raises(ActionFailure) as err:
        waiter.acquire(timeout=5)
    assert err.value.reason == "stack_busy"
    assert "exec-1" in err.value.message and "selfheal-stack-lock-stack-id" in err.value.message
    assert err.value.details["owner"] == "exec-1/action-1"
    assert err.value.details["execution"] == "exec-1"
    # the holder's claim is untouched
    assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == (
        "exec-1/action-1")


def test_a_stale_owner_is_taken_over_and_notices_it():
    store = FakeEnvironments()
    dead = claim(store, "dead")
    dead.acquire(timeout=1)
    store.envs[stack_claim.claim_name("stack-id")]["variables"]["heartbeat"] = old(120)
    heir = claim(store, "heir", stale_after=60)
    assert heir.acquire(timeout=5) is True
    assert heir.took_over_from == "dead"
    assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == "heir"
    assert list(store.envs) == [stack_claim.claim_name("stack-id")]  # no marker left
    # the old owner, if it wakes up, finds the claim gone and never deletes it
    with pytest.raises(ActionFailure) as err:
        dead.refresh(force=True)
    assert err.value.reason == "claim_lost" and "heir" in err.value.message
    dead.release()
    assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == "heir"


def test_a_fresh_owner_is_not_taken_over():
    store = FakeEnvironments()
    claim(store, "alive").acquire(timeout=1)
    store.envs[stack_claim.claim_name("stack-id")]["variables"]["heartbeat"] = old(30)
    assert claim(store, "waiter", stale_after=60)._try_take_over() is False


def test_two_waiters_on_a_stale_claim_only_one_takes_it_over():
    for _ in range(20):
        store = FakeEnvironments()
        claim(store, "dead").acquire(timeout=1)
        store.envs[stack_claim.claim_name("stack-id")]["variables"]["heartbeat"] = old(120)
        start = threading.Barrier(3)
        won = {}

        def run(owner, store=store, start=start, won=won):
            start.wait()
            won[owner] = claim(store, owner)._try_take_over()

        threads = [threading.Thread(target=run, args=(o,)) for o in ("a", "b", "c")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won.values()) == [False, False, True], won
        [winner] = [o for o, w in won.items() if w]
        assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == winner


def test_release_deletes_only_its_own_claim():
    store = FakeEnvironments()
    mine = claim(store, "me")
    mine.acquire(timeout=1)
    store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] = "successor"
    mine.release()
    assert store.envs[stack_claim.claim_name("stack-id")]["variables"]["owner"] == "successor"
    store.envs.clear()
    again = claim(store, "me")
    again.acquire(timeout=1)
    again.release()
    assert store.envs == {}


# --- the claim in selfheal.mark_unhealthy ----------------------------------


def heal_with_claims(heat, store, owner, **overrides):
    args = {"stack": "web", "member": "1", "reason": None, "since": None, "timeout": 30,
            "nested_depth": 5, "dry_run": False, "stale_after": 60}
    args.update(overrides)
    ticks = iter(range(100_000))
    healing = mark_unhealthy.MemberHealing(
        heat, args, "test", clock=lambda: next(ticks), sleep=lambda s: None,
        claims=lambda stack_id, clock, sleep, stack_name=None: claim(
            store, owner, stack_id, clock=clock, sleep=sleep, stack_name=stack_name))
    return healing.run()


def test_manual_heals_by_name_and_alarm_heals_by_id_take_the_same_claim():
    heat = FakeHeat()
    store = FakeEnvironments()
    claim(store, "alarm-heal", stack="root-id").acquire(timeout=1)  # keyed by the stack id
    with pytest.raises(ActionFailure) as err:
        heal_with_claims(heat, store, "manual-heal", stack="web", timeout=5)  # by name
    assert err.value.reason == "stack_busy" and err.value.details["owner"] == "alarm-heal"
    assert heat.calls == [] and err.value.changes == []


def test_the_heal_holds_the_claim_while_it_changes_the_stack_and_releases_it():
    class WatchingHeat(FakeHeat):
        def mark_unhealthy(self, *args):
            held.append(stack_claim.claim_name("root-id") in store.envs)
            super().mark_unhealthy(*args)

        def update_existing(self, identity):
            held.append(stack_claim.claim_name("root-id") in store.envs)
            super().update_existing(identity)

    held = []
    store = FakeEnvironments()
    result = heal_with_claims(WatchingHeat(), store, "me")
    assert result["outcome"] == "replaced"
    assert held == [True, True]
    assert result["claim"]["name"] == "selfheal-stack-lock-root-id"
    assert store.envs == {}  # released


def test_a_dry_run_takes_no_claim():
    store = FakeEnvironments()
    claim(store, "other", stack="root-id").acquire(timeout=1)
    result = heal_with_claims(FakeHeat(), store, "me", dry_run=True)
    assert result["outcome"] == "would_replace"
    assert store.calls == [("create", "selfheal-stack-lock-root-id")]  # the other's own


def test_a_lost_claim_stops_the_heal_before_it_changes_the_stack():
    class StolenHeat(FakeHeat):
        def mark_unhealthy(self, *args):
            super().mark_unhealthy(*args)
            store.envs[stack_claim.claim_name("root-id")]["variables"]["owner"] = "thief"

    store = FakeEnvironments()
    heat = StolenHeat()
    with pytest.raises(ActionFailure) as err:
        heal_with_claims(heat, store, "me")
    assert err.value.reason == "claim_lost"
    assert heat.count("update_existing") == 0
    assert [c["change"] for c in err.value.changes] == ["marked_unhealthy"]


def test_two_manual_heals_of_one_member_by_name_replace_it_once():
    """The second waited for the first's claim: the member it names was
    rebuilt meanwhile, so it is left alone (no second replacement)."""
    heat = FakeHeat()
    store = FakeEnvironments()
    first = claim(store, "first", stack="root-id")
    first.acquire(timeout=1)

    def release_after_heal(seconds):
        if first.held:  # the first heal replaces member 1, then releases
            heat.members["1"]["status"] = "CHECK_FAILED"
            heat.start_update()
            heat._finish_update()
            first.release()

    args = {"stack": "web", "member": "1", "reason": None, "since": None, "timeout": 30,
            "nested_depth": 5, "dry_run": False, "stale_after": 60}
    ticks = iter(range(100_000))
    healing = mark_unhealthy.MemberHealing(
        heat, args, "test", clock=lambda: next(ticks), sleep=release_after_heal,
        claims=lambda stack_id, clock, sleep, stack_name=None: claim(
            store, "second", stack_id, clock=clock, sleep=sleep))
    healing.started = datetime.datetime(2026, 11, 22, 9, 30, tzinfo=datetime.timezone.utc)
    result = healing.run()
    assert result["outcome"] == "already_replaced"
    assert result["claim"]["waited_for"] == "first"
    assert heat.count("update_existing") == 0


# --- coalescing: waiting heals mark their members -------------------------


def waiting_heal(heat, store, member, on_sleep, owner="waiter", **overrides):
    args = {"stack": "web", "member": member, "reason": None, "since": None, "timeout": 30,
            "nested_depth": 5, "dry_run": False, "stale_after": 60, "gather_seconds": 0}
    args.update(overrides)
    ticks = iter(range(100_000))
    return mark_unhealthy.MemberHealing(
        heat, args, "test", clock=lambda: next(ticks), sleep=on_sleep,
        claims=lambda stack_id, clock, sleep, stack_name=None: claim(
            store, owner, stack_id, clock=clock, sleep=sleep))


def test_a_waiting_alarm_heal_marks_its_member_so_the_holders_update_replaces_it():
    heat = FakeHeat()
    store = FakeEnvironments()
    holder = claim(store, "holder", stack="root-id")
    holder.acquire(timeout=1)
    server = heat.members["1"]["physical_id"]
    seen = []

    def holder_updates(seconds):
        seen.append(heat.members["1"]["status"])
        if holder.held:  # the holder's one update replaces every marked member
            heat.start_update()
            heat._finish_update()
            holder.release()

    result = waiting_heal(heat, store, server, holder_updates).run()
    assert seen[0] == "CHECK_FAILED"  # marked while it waited
    assert result["outcome"] == "already_replaced"
    assert heat.count("update_existing") == 0  # no update of its own
    assert [c["change"] for c in result["changes"]] == ["marked_unhealthy"]
    assert heat.members["1"]["physical_id"] != server


def test_a_waiting_heal_does_not_mark_during_an_update_nor_by_resource_name():
    heat = FakeHeat(update_polls=10_000)
    store = FakeEnvironments()
    claim(store, "holder", stack="root-id").acquire(timeout=1)
    heat.start_update()
    with pytest.raises(ActionFailure) as err:
        waiting_heal(heat, store, heat.members["1"]["physical_id"], lambda s: None,
                     timeout=5).run()
    assert err.value.reason == "stack_busy" and heat.count("mark_unhealthy") == 0
    heat = FakeHeat()
    with pytest.raises(ActionFailure) as err:  # by name: the holder may be replacing it
        waiting_heal(heat, store, "1", lambda s: None, timeout=5).run()
    assert err.value.reason == "stack_busy" and heat.calls == []


def test_a_heal_that_waited_gathers_before_its_update():
    heat = FakeHeat()
    store = FakeEnvironments()
    holder = claim(store, "holder", stack="root-id")
    holder.acquire(timeout=1)
    slept = []

    def release(seconds):
        slept.append(seconds)
        holder.release()

    result = waiting_heal(heat, store, heat.members["2"]["physical_id"], release,
                          gather_seconds=1.5).run()
    assert result["outcome"] == "replaced"
    assert 1.5 in slept  # after the claim, before its own update


# --- the store: Mistral's environments API ----------------------------------


class FakeResponse:
    def __init__(self, status, body=None):
        self.status_code = status
        self.text = "" if body is None else jsonlib.dumps(body)

    def json(self):
        return jsonlib.loads(self.text)


class EnvironmentsSession:
    """A keystoneauth-like session in front of one Mistral's environments."""

    def __init__(self):
        self.envs = {}
        self.requests = []

    def request(self, url, method, json=None, **kwargs):
        self.requests.append((method, url))
        name = urllib.parse.unquote(url.rsplit("/environments", 1)[1].lstrip("/"))
        if method == "POST":
            if json["name"] in self.envs:
                return FakeResponse(409, {"faultstring": "Duplicate entry for Environment"})
            self.envs[json["name"]] = json
            return FakeResponse(201, json)
        if method == "PUT":
            if json["name"] not in self.envs:
                return FakeResponse(404, {"faultstring": "not found"})
            self.envs[json["name"]].update(json)
            return FakeResponse(200, self.envs[json["name"]])
        if name not in self.envs:
            return FakeResponse(404, {"faultstring": "Environment not found"})
        if method == "DELETE":
            del self.envs[name]
            return FakeResponse(204)
        return FakeResponse(200, dict(self.envs[name], variables=self.envs[name]["variables"]))


def test_the_claim_on_mistrals_environments_api():
    from selfheal_actions.common import mistral_api

    api = mistral_api.MistralApi(EnvironmentsSession(), "http://mistral:8989/v2")
    first = claim(api, "first")
    assert first.acquire(timeout=1)
    assert api.session.envs["selfheal-stack-lock-stack-id"]["scope"] == "private"
    second = claim(api, "second", clock=iter(range(100)).__next__)
    with pytest.raises(ActionFailure) as err:
        second.acquire(timeout=3)
    assert err.value.reason == "stack_busy" and err.value.details["owner"] == "first"
    first.refresh(force=True)
    assert api.get_environment("nope") is None and api.delete_environment("nope") is False
    with pytest.raises(mistral_api.EnvironmentGone):
        api.update_environment("nope", {})
    first.release()
    assert api.session.envs == {}
    assert second.acquire(timeout=1)


def test_a_waiting_heal_whose_member_was_replaced_ends_without_the_claim():
    heat = FakeHeat()
    store = FakeEnvironments()
    holder = claim(store, "holder", stack="root-id")
    holder.acquire(timeout=1)  # and keeps it (verifying, gathering...)
    server = heat.members["1"]["physical_id"]

    def holder_updates(seconds):
        if heat.members["1"]["status"] == "CHECK_FAILED":
            heat.start_update()
            heat._finish_update()

    result = waiting_heal(heat, store, server, holder_updates).run()
    assert result["outcome"] == "already_replaced"
    assert result["claim"]["waited_for"] == "holder"
    assert heat.count("update_existing") == 0
    assert ("create", "selfheal-stack-lock-root-id") in store.calls
    assert store.envs[stack_claim.claim_name("root-id")]["variables"]["owner"] == "holder"


# --- coalescing: the holder's next rounds ------------------------------------


def test_the_holder_replaces_members_marked_while_it_held_the_claim_in_a_next_round():
    heat = FakeHeat(members=4)
    store = FakeEnvironments()
    waiting = {"2": heat.members["2"]["physical_id"], "3": heat.members["3"]["physical_id"]}

    def sleep(seconds):
        # heals waiting for the claim mark their members once no update runs
        if heat.root_status == "UPDATE_COMPLETE" and "2" in waiting:
            for name in waiting:
                heat.members[name]["status"] = "CHECK_FAILED"
            waiting.clear()

    ticks = iter(range(100_000))
    args = {"stack": "web", "member": "1", "reason": None, "since": None, "timeout": 60,
            "nested_depth": 5, "dry_run": False, "stale_after": 60, "gather_seconds": 1.5,
            "rounds": 2}
    healing = mark_unhealthy.MemberHealing(
        heat, args, "test", clock=lambda: next(ticks), sleep=sleep,
        claims=lambda stack_id, clock, sleep, stack_name=None: claim(
            store, "holder", stack_id, clock=clock, sleep=sleep))
    old = {n: m["physical_id"] for n, m in heat.members.items()}
    result = healing.run()
    assert result["outcome"] == "replaced"
    rounds = [c for c in result["changes"] if c["change"] == "updated"]
    assert [c.get("round") for c in rounds] == [None, 2]
    assert rounds[1]["marked"] == ["2", "3"]
    assert heat.count("update_existing") == 2  # no third: nothing marked after round 2
    assert all(heat.members[n]["physical_id"] != old[n] for n in ("1", "2", "3"))
    assert heat.members["0"]["physical_id"] == old["0"]
    assert result["stack"]["status"] == "UPDATE_COMPLETE"
    assert store.envs == {}  # released after the rounds


@pytest.mark.parametrize("rounds", [0, 2])
def test_no_rounds_when_nothing_was_marked_or_rounds_is_zero(rounds):
    heat = FakeHeat()
    result = heal_with_claims(heat, FakeEnvironments(), "holder", gather_seconds=1.5,
                              rounds=rounds, timeout=60)
    assert heat.count("update_existing") == 1 and result["outcome"] == "replaced"
