# SPDX-License-Identifier: Apache-2.0
import pytest

from selfheal_actions.common import markers
from selfheal_actions.hosts import evacuation
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.test_evacuation_run import Clock
from tests.unit.test_fencing import Context

HOST = "failed-1"


def cloud(fenced=True, reason=None):
    services = [service(HOST, state="down", status="disabled" if fenced else "enabled",
                        forced_down=fenced,
                        reason=reason or (markers.make(markers.FENCED, "e") if fenced else None)),
                service("ok-1"), service("ok-2")]
    return FakeNova(servers=[server("a"), server("b", vm_state="stopped"),
                             server("e", vm_state="error")], services=services)


def act(**kwargs):
    kwargs.setdefault("host", HOST)
    kwargs.setdefault("poll_interval", 0.1)
    return evacuation.EvacuateAndVerifyAction(**kwargs).run(Context())


def test_evacuates_and_reports_per_instance(use_fake):
    nova = use_fake(cloud())
    result = act()
    assert result.error is None, result.error
    outcomes = {i["id"]: i["outcome"] for i in result.data["instances"]}
    assert outcomes == {"a": "evacuated", "b": "evacuated", "e": "skipped"}
    assert result.data["totals"] == {"evacuated": 2, "skipped": 1}
    for item in result.data["instances"]:
        assert {"id", "name", "source", "destination", "migration_id", "attempts",
                "seconds", "outcome", "reason"} <= set(item)
    assert result.data["changed"] is True
    # a rerun finds nothing left and evacuates nothing twice
    rerun = act()
    assert nova.count("evacuate") == 2
    assert {i["id"]: i["outcome"] for i in rerun.data["instances"]} == {
        "a": "already_evacuated", "b": "already_evacuated", "e": "skipped"}
    assert rerun.data["changed"] is False


def test_refuses_an_unfenced_host_and_changes_nothing(use_fake):
    nova = use_fake(cloud(fenced=False))
    result = act()
    assert result.error["reason"] == "host_not_fenced"
    assert nova.count("evacuate") == 0


def test_dry_run_returns_the_plan_and_changes_nothing(use_fake):
    nova = use_fake(cloud(fenced=False))
    result = act(dry_run=True)
    assert result.error is None
    assert {i["id"]: i["outcome"] for i in result.data["instances"]} == {
        "a": "planned", "b": "planned", "e": "skipped"}
    assert "not fenced" in result.data["note"]
    assert nova.count("evacuate") == 0 and result.data["changed"] is False


def test_incomplete_evacuation_is_an_error_with_a_summary(use_fake):
    nova = use_fake(cloud())
    nova.fail_next("ok-1", 10)
    nova.fail_next("ok-2", 10)
    result = act(max_attempts=2)
    assert result.error["reason"] == "evacuation_incomplete"
    assert "2 of 3 instances" in result.error["message"]
    assert result.error["details"]["totals"] == {"failed": 2, "skipped": 1}
    assert result.error["changed"] is True


def test_maintenance_host_is_refused(use_fake):
    nova = use_fake(cloud(reason=markers.make(markers.MAINTENANCE, "e")))
    result = act()
    assert result.error["reason"] == "host_in_maintenance"
    assert nova.count("evacuate") == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"concurrency": 0}, "'concurrency' must be at least 1"),
    ({"concurrency": 2.5}, "whole number"),
    ({"target_hosts": "nope"}, "unknown hosts"),
    ({"target_hosts": [HOST]}, "names the failed host"),
    ({"instance_ids": ["zzz"]}, "not on host"),
    ({"exclude_flavors": [1]}, "list of non-empty strings"),
    ({"timeout": 5}, "'timeout' must be at least 10"),
    # a typo must never switch a safety guard off
    ({"max_down_ratio": "nan", "fence": True}, "'max_down_ratio' must be a finite number"),
    ({"max_down_ratio": float("nan"), "fence": True}, "must be a finite number"),
    ({"max_down_ratio": "inf", "fence": True}, "must be a finite number"),
    ({"concurrency": "NaN"}, "'concurrency' must be a finite number"),
    ({"timeout": 1e12}, "'timeout' must be at most 3600"),
    ({"timeout": "1e400"}, "must be a finite number"),
    ({"timeout": "abc"}, "'timeout' must be a number"),
    ({"timeout": -5}, "'timeout' must be at least 10"),
    ({"dry_run": "nope"}, "'dry_run' must be true or false"),
    ({"fence": 1}, "'fence' must be true or false"),
    ({"host": "x" * 10000}, "at most 255 characters"),
])
def test_bad_input(use_fake, kwargs, fragment):
    nova = use_fake(cloud())
    result = act(**kwargs)
    assert result.error["reason"] == "invalid_input"
    assert fragment in result.error["message"]
    assert len(result.error["message"]) < 400  # a 10 kB input is not echoed whole
    assert nova.count("evacuate") == 0 and nova.aggregates == {}
    assert [c for c in nova.calls if c[0] not in (
        "compute_services", "servers_on_host", "evacuations_from")] == []


def test_instance_ids_not_on_the_host_are_refused_before_the_claim(use_fake):
    nova = use_fake(cloud())
    result = act(instance_ids=["a", "zzz"])
    assert result.error["reason"] == "invalid_input" and "['zzz']" in result.error["message"]
    assert nova.count("create_aggregate") == 0 and nova.count("delete_aggregate") == 0


def test_string_booleans_are_read_as_meant(use_fake):
    nova = use_fake(cloud())
    result = act(dry_run="false", timeout="60")
    assert result.error is None and result.data["dry_run"] is False
    assert nova.count("evacuate") == 2


def test_locate_groups_by_host(use_fake):
    nova = use_fake(cloud())
    nova.servers["b"]["OS-EXT-SRV-ATTR:host"] = "ok-1"
    result = evacuation.LocateInstancesAction(instance_ids=["a", "b", "zz"]).run(Context())
    assert result.data["hosts"] == {HOST: ["a"], "ok-1": ["b"]}
    assert result.data["missing"] == ["zz"]


def test_a_host_claimed_by_another_execution_is_left_alone(use_fake, monkeypatch):
    from selfheal_actions.common import host_claim

    nova = use_fake(cloud())
    other = host_claim.HostLock(nova, HOST, owner="exec-other")
    other.acquire(timeout=1)
    clock = Clock()
    monkeypatch.setattr(host_claim.time, "monotonic", clock)
    monkeypatch.setattr(host_claim.time, "sleep", clock.sleep)
    result = act(timeout=10)
    assert result.error["reason"] == "host_busy"
    assert "exec-other" in result.error["message"]
    assert nova.count("evacuate") == 0


def down_but_not_fenced():
    """A dead host Nova already counts as down, not forced down or disabled yet."""
    nova = cloud(fenced=False)
    nova.services[0]["state"] = "down"
    return nova


def test_fence_true_fences_first_then_evacuates_in_one_call(use_fake):
    nova = use_fake(down_but_not_fenced())
    result = act(fence=True, reason="NIC down")
    assert result.error is None, result.error
    names = [c[0] for c in nova.calls]
    first_evacuate = names.index("evacuate")
    assert names.index("create_aggregate") < names.index("force_down") < \
        names.index("disable") < first_evacuate
    svc = nova.services[0]
    assert svc["forced_down"] is True and svc["status"] == "disabled"
    assert markers.parse(svc["disabled_reason"])["note"] == "NIC down"
    fencing = result.data["fencing"]
    assert [c["change"] for c in fencing["changes"]] == ["forced_down", "disabled"]
    assert [c["change"] for c in result.data["changes"][:2]] == ["forced_down", "disabled"]
    # the plan is what stood before anything changed, the instances what happened
    assert {i["id"]: i["outcome"] for i in result.data["plan"]["instances"]} == {
        "a": "planned", "b": "planned", "e": "skipped"}
    assert {i["id"]: i["outcome"] for i in result.data["instances"]} == {
        "a": "evacuated", "b": "evacuated", "e": "skipped"}
    # a second call finds the host fenced and nothing left to do
    again = act(fence=True)
    assert again.data["fencing"]["changes"] == [] and again.data["changed"] is False
    assert nova.count("evacuate") == 2 and nova.count("force_down") == 1


@pytest.mark.parametrize("prepare, kwargs, reason", [
    (lambda nova: nova.services[0].update(state="up"), {}, "host_still_up"),
    (lambda nova: nova.services[1].update(state="down"), {}, "too_many_hosts_down"),
    (lambda nova: None, {"instance_ids": ["zzz"]}, "invalid_input"),
    (lambda nova: nova.services[0].update(
        disabled_reason=markers.make(markers.MAINTENANCE, "e"), status="disabled"), {},
     "host_in_maintenance"),
])
def test_fence_true_refusals_change_nothing(use_fake, prepare, kwargs, reason):
    nova = use_fake(down_but_not_fenced())
    prepare(nova)
    result = act(fence=True, **kwargs)
    assert result.error["reason"] == reason, result.error
    assert result.error["changed"] is False
    for call in ("force_down", "disable", "evacuate"):
        assert nova.count(call) == 0, call
    assert nova.aggregates == {}  # no claim left behind


def test_fence_true_dry_run_says_what_fencing_would_do(use_fake):
    nova = use_fake(down_but_not_fenced())
    result = act(fence=True, dry_run=True)
    assert result.error is None, result.error
    assert [c["change"] for c in result.data["fencing"]["changes"]] == [
        "forced_down", "disabled"]
    assert result.data["changed"] is False
    assert {c[0] for c in nova.calls} <= {"compute_services", "servers_on_host",
                                          "evacuations_from"}
    # a host Nova still sees up is refused in the dry run as in the real one...
    nova.services[0]["state"] = "up"
    assert act(fence=True, dry_run=True).error["reason"] == "host_still_up"
    # ...unless a fencing workflow will have powered it off
    assert act(fence=True, dry_run=True, host_powered_off=True).error is None


def test_fence_true_keeps_an_operators_reason_and_waits_for_nova(use_fake, monkeypatch):
    from selfheal_actions.hosts import fencing

    nova = use_fake(cloud(fenced=False, reason="RMA 4711, do not enable"))
    nova.services[0].update(status="disabled", state="up")
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        nova.services[0]["state"] = "down"  # Nova notices after service_down_time

    monkeypatch.setattr(fencing.time, "sleep", sleep)
    result = act(fence=True, wait_for_down=90, settle_seconds=0)
    assert result.error is None, result.error
    assert slept and result.data["fencing"]["waited_for_down"] >= 0
    found = markers.parse(nova.services[0]["disabled_reason"])
    assert found["kind"] == markers.FENCED and found["before"] == "RMA 4711, do not enable"
    assert result.data["totals"] == {"evacuated": 2, "skipped": 1}
