# SPDX-License-Identifier: Apache-2.0
"""A per-instance trigger never fences a healthy host: it repairs in place."""

from selfheal_actions.hosts import evacuation
from selfheal_actions.hosts import repair
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.test_fencing import Context


def cloud():
    return FakeNova(servers=[server("a", host="ok-1", vm_state="error"),
                             server("b", host="ok-1"), server("c", host="dead-1"),
                             server("d", host=None)],
                    services=[service("ok-1"), service("dead-1", state="down"),
                              service("ok-2")])


def test_locate_says_which_hosts_are_healthy_and_survives_an_instance_without_a_host(
        use_fake):
    use_fake(cloud())
    result = evacuation.LocateInstancesAction(instance_ids=["a", "c", "d", "zz"]).run(Context())
    assert result.error is None, result.error
    assert result.data["host_list"] == [
        {"host": "dead-1", "instance_ids": ["c"], "healthy": False},
        {"host": "ok-1", "instance_ids": ["a"], "healthy": True}]
    assert result.data["no_host"] == ["d"] and result.data["missing"] == ["zz"]


def test_instances_of_a_healthy_host_are_rebooted_in_place_and_proven_active(use_fake):
    nova = use_fake(cloud())
    dry = repair.RebootInstancesAction(host="ok-1", instance_ids=["a", "b"],
                                       dry_run=True).run(Context())
    assert [c["change"] for c in dry.data["changes"]] == ["would_hard_reboot"] * 2
    assert nova.count("reboot") == 0
    result = repair.RebootInstancesAction(host="ok-1", instance_ids=["a", "b"]).run(Context())
    assert result.error is None, result.error
    assert result.data["totals"] == {"rebooted": 2}
    assert nova.servers["a"]["OS-EXT-STS:vm_state"] == "active"
    assert [c for c in nova.calls if c[0] in ("force_down", "disable", "evacuate")] == []


def test_a_dead_host_is_never_rebooted_into_it_goes_to_the_host_flow(use_fake):
    nova = use_fake(cloud())
    result = repair.RebootInstancesAction(host="dead-1", instance_ids=["c"]).run(Context())
    assert result.error["reason"] == "host_not_healthy"
    assert "evacuate_host" in result.error["message"] and nova.count("reboot") == 0


def test_an_instance_that_does_not_come_back_is_reported(use_fake):
    nova = use_fake(cloud())
    nova.servers["b"]["reboot_fails"] = True
    result = repair.RebootInstancesAction(host="ok-1", instance_ids=["a", "b"]).run(Context())
    assert result.error["reason"] == "repair_incomplete"
    assert [c["change"] for c in result.error["changes"]] == ["hard_rebooted"] * 2
    outcomes = {e["id"]: e["outcome"] for e in result.error["details"]["instances"]}
    assert outcomes == {"a": "rebooted", "b": "failed"}
