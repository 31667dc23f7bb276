# SPDX-License-Identifier: Apache-2.0
"""Per-instance maintenance policies, owners' own moves and server groups in
the drain, on the fake Nova."""

import pytest

from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.maintenance import drain_run
from tests.unit.fake_nova import server
from tests.unit.test_drain import HOST
from tests.unit.test_drain import act
from tests.unit.test_drain import cloud
from tests.unit.test_drain import run


def with_policy(uuid, policy, **kwargs):
    return server(uuid, metadata={plans.POLICY_KEY: policy}, **kwargs)


# pure decisions -------------------------------------------------------------

@pytest.mark.parametrize("vm, policy, expected", [
    ("active", plans.LIVE_MIGRATE, ("move", "live")),
    ("stopped", plans.LIVE_MIGRATE, ("move", "cold")),
    ("active", plans.COLD_MIGRATE, ("move", "cold")),
    ("stopped", plans.COLD_MIGRATE, ("move", "cold")),
    ("paused", plans.COLD_MIGRATE, ("leave", None)),
    ("active", plans.STOP_START, ("stop", "stop")),
    ("stopped", plans.STOP_START, ("stay", "stop")),
    ("paused", plans.STOP_START, ("leave", None)),
    ("active", plans.LEAVE_TO_OWNER, ("owner", None)),
    ("error", plans.LEAVE_TO_OWNER, ("owner", None)),
])
def test_decisions_by_policy(vm, policy, expected):
    decision, method, _ = plans.decide(server("x", vm_state=vm), None, policy=policy,
                                       host=HOST)
    assert (decision, method) == expected


def test_policy_comes_from_metadata_or_owner_list_and_typos_are_named():
    assert plans.policy_of(server("a")) == (plans.LIVE_MIGRATE, None)
    assert plans.policy_of(with_policy("a", "stop_start")) == (plans.STOP_START, None)
    assert plans.policy_of(server("a"), owner_instances=["a"]) == (plans.LEAVE_TO_OWNER, None)
    bad = plans.bad_policies([with_policy("a", "live-migrate"), server("b"),
                              with_policy("c", "")])
    assert [b["id"] for b in bad] == ["a", "c"]
    assert "'live-migrate' is not one of live_migrate" in bad[0]["reason"]
    # the owner's reply wins over a typo in the metadata
    assert plans.bad_policies([with_policy("a", "oops")], owner_instances=["a"]) == []


def test_only_spread_groups_are_limited():
    groups = [{"id": "g1", "name": "web", "policy": "anti-affinity", "members": ["a", "b"]},
              {"id": "g2", "name": "db", "policies": ["soft-anti-affinity"], "members": ["c"]},
              {"id": "g3", "name": "cache", "policy": "affinity", "members": ["d"]}]
    limits = plans.group_limits(groups, 2)
    assert set(limits) == {"a", "b", "c"}
    assert limits["a"]["limit"] == 2 and limits["c"]["policy"] == "soft-anti-affinity"


def test_disrupted_means_moving_awaiting_confirmation_or_stopped_by_a_drain():
    assert plans.disrupted(server("a", task_state="migrating"))
    assert plans.disrupted(server("a", vm_state="resized"))
    assert plans.disrupted(server("a", vm_state="stopped",
                                  metadata={plans.STOPPED_KEY: "h"}))
    assert not plans.disrupted(server("a", vm_state="stopped"))  # its owner's doing
    assert not plans.disrupted(server("a"))


# the runner -----------------------------------------------------------------

def test_each_instance_is_handled_by_its_policy():
    nova = cloud([server("live"), with_policy("cold", "cold_migrate"),
                  with_policy("stop", "stop_start"),
                  with_policy("off", "stop_start", vm_state="stopped")])
    got, _ = run(nova)
    assert {n: (e["method"], e["outcome"]) for n, e in got.items()} == {
        "live": ("live", "migrated"), "cold": ("cold", "cold_migrated"),
        "stop": ("stop", "stopped"), "off": ("stop", "stopped")}
    assert nova.servers["cold"]["OS-EXT-STS:vm_state"] == "active"  # confirmed, as it was
    stopped = nova.servers["stop"]
    assert stopped["OS-EXT-SRV-ATTR:host"] == HOST
    assert stopped["OS-EXT-STS:vm_state"] == "stopped"
    assert stopped["metadata"][plans.STOPPED_KEY] == HOST
    # stopped by its owner: not marked, so finish_maintenance will not start it
    assert plans.STOPPED_KEY not in nova.servers["off"]["metadata"]
    assert [c[1] for c in nova.calls if c[0] == "stop"] == ["stop"]
    assert nova.count("live_migrate") == 1 and nova.count("cold_migrate") == 1


class OwnerMoves:
    """The owner moves ``uuid`` to ``dest`` after ``reads`` host listings."""

    def __init__(self, nova, uuid, dest, reads):
        self.nova, self.uuid, self.dest, self.reads = nova, uuid, dest, reads
        self.listed = nova.servers_on_host

    def __call__(self, host):
        self.reads -= 1
        if self.reads == 0:
            self.nova.servers[self.uuid]["OS-EXT-SRV-ATTR:host"] = self.dest
        return self.listed(host)


def test_owners_move_is_waited_for_and_not_repeated():
    nova = cloud([with_policy("mine", "leave_to_owner"), server("theirs")])
    nova.servers_on_host = OwnerMoves(nova, "mine", "ok-3", reads=3)
    got, _ = run(nova, drain_run.DrainOptions(owner_window=60, timeout=120))
    assert got["mine"]["outcome"] == "moved_by_owner"
    assert got["mine"]["destination"] == "ok-3"
    assert got["theirs"]["outcome"] == "migrated"
    assert [c[1] for c in nova.calls if c[0] == "live_migrate"] == ["theirs"]


def test_after_the_window_an_owners_instance_gets_the_default():
    nova = cloud([with_policy("mine", "leave_to_owner")])
    got, clock = run(nova, drain_run.DrainOptions(owner_window=30, timeout=120,
                                                  poll_interval=2))
    assert got["mine"]["outcome"] == "migrated" and got["mine"]["method"] == "live"
    assert "owner window" in got["mine"]["reason"]
    assert 30 <= clock.now < 40


def test_anti_affinity_members_are_disrupted_one_at_a_time():
    nova = cloud([server("a"), server("b"), server("c")], steps_to_finish=3)
    nova.groups = [{"id": "g", "name": "web", "policy": "soft-anti-affinity",
                    "members": ["a", "b", "c"]}]
    in_flight = []
    live = nova.live_migrate

    def counting(uuid, target_host=None):
        moving = [m for m in nova.migrations if m["status"] == "queued"]
        in_flight.append(len(moving))
        live(uuid, target_host)

    nova.live_migrate = counting
    opts = drain_run.DrainOptions(concurrency=4, groups=plans.group_limits(
        nova.server_groups(), 1))
    got, _ = run(nova, opts)
    assert {e["outcome"] for e in got.values()} == {"migrated"}
    assert in_flight == [0, 0, 0]  # each started only once the previous one landed


def test_a_member_disrupted_elsewhere_holds_this_one_back():
    nova = cloud([server("a")])
    nova.servers["b"] = server("b", host="ok-1", task_state="migrating")
    nova.groups = [{"id": "g", "name": "web", "policy": "anti-affinity",
                    "members": ["a", "b"]}]
    got, _ = run(nova, drain_run.DrainOptions(timeout=20, groups=plans.group_limits(
        nova.server_groups(), 1)))
    assert got["a"]["outcome"] == "timed_out"
    assert "1 of server group web (anti-affinity) disrupted, at most 1" in got["a"]["reason"]
    assert nova.count("live_migrate") == 0


# the action -----------------------------------------------------------------

def test_a_bad_policy_refuses_the_host_before_anything_changes(use_fake):
    nova = use_fake(cloud([server("a"), with_policy("typo", "live")]))
    for dry_run in (True, False):
        result = act(dry_run=dry_run)
        assert result.error["reason"] == "invalid_instance_policy"
        assert "typo (typo): metadata selfheal:maintenance='live'" in result.error["message"]
        assert result.error["details"]["instances"][0]["value"] == "live"
        assert result.error["changed"] is False
    assert nova.count("live_migrate") == 0 and not nova.aggregates


def test_action_reports_owners_and_stopped_instances(use_fake):
    nova = use_fake(cloud([server("a"), server("b"), with_policy("s", "stop_start")]))
    nova.servers_on_host = OwnerMoves(nova, "b", "ok-2", reads=4)
    result = act(owner_instances=["b", "elsewhere"], owner_window=20, timeout=60)
    assert result.error is None, result.error
    assert result.data["moved_by_owner"] == ["b"]
    assert result.data["stopped_on_host"] == ["s"]
    assert result.data["owner_instances_not_on_host"] == ["elsewhere"]
    assert result.data["emptied"] is True
    plan = act(dry_run=True)
    assert {i["id"]: i["outcome"] for i in plan.data["instances"]} == {
        "a": "already_migrated", "s": "stopped"}


def test_owner_window_must_leave_time_to_move(use_fake):
    nova = use_fake(cloud([server("a")]))
    # no owners' instances on the host: the window does not matter
    assert act(owner_window=600, timeout=300).error is None
    nova.servers["b"] = dict(with_policy("b", "leave_to_owner"), **{"OS-EXT-SRV-ATTR:host": HOST})
    for dry_run in (True, False):
        result = act(owner_window=600, timeout=600, dry_run=dry_run)
        assert result.error["reason"] == "invalid_input"
        assert "'owner_window' (600 s) must be less than 'timeout'" in result.error["message"]
    assert nova.count("live_migrate") == 1


def test_a_groups_turnstile_held_elsewhere_holds_the_member_back_until_stale():
    nova = cloud([server("a")])
    nova.groups = [{"id": "g", "name": "web", "policy": "anti-affinity", "members": ["a"]}]
    nova.create_aggregate("selfheal-lock-group-g")  # another host's drain, deciding now
    opts = drain_run.DrainOptions(timeout=20, groups=plans.group_limits(nova.server_groups(), 1))
    got, _ = run(nova, opts)
    assert got["a"]["outcome"] == "timed_out"
    assert "server group web busy" in got["a"]["reason"]
    # a turnstile left by a run that died is taken over
    held = nova.find_aggregate("selfheal-lock-group-g")
    nova.aggregates[held["id"]]["created_at"] = "2020-01-01T00:00:00.000000"
    got, _ = run(nova, drain_run.DrainOptions(timeout=60, groups=opts.groups))
    assert got["a"]["outcome"] == "migrated"
    assert not nova.aggregates  # every turnstile released
