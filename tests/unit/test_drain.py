# SPDX-License-Identifier: Apache-2.0
"""The drain: plan decisions, the runner and the action, on the fake Nova."""

import pytest

from selfheal_actions.common import markers
from selfheal_actions.maintenance import drain
from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.maintenance import drain_run
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.test_evacuation_run import Clock
from tests.unit.test_fencing import Context

HOST = "maint-1"


def cloud(servers, hosts=("ok-1", "ok-2", "ok-3"), disabled=True, **kwargs):
    reason = markers.make(markers.MAINTENANCE, "exec-1", "disk swap") if disabled else None
    services = [service(HOST, status="disabled" if disabled else "enabled", reason=reason)]
    services += [service(h) for h in hosts]
    return FakeNova(servers=[dict(s, **{"OS-EXT-SRV-ATTR:host": HOST}) for s in servers],
                    services=services, **kwargs)


def run(nova, options=None, cold_migration=plans.COLD_STOPPED):
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.migrations_from(HOST),
                         cold_migration)
    clock = Clock()
    opts = options or drain_run.DrainOptions(candidate_hosts=["ok-1", "ok-2", "ok-3"],
                                             cold_migration=cold_migration)
    drain_run.DrainRun(nova, HOST, entries, opts, clock=clock, sleep=clock.sleep).run()
    return {e["name"]: e for e in entries}, clock


def act(**kwargs):
    kwargs.setdefault("host", HOST)
    kwargs.setdefault("poll_interval", 0.1)
    return drain.DrainHostAction(**kwargs).run(Context())


# plan ----------------------------------------------------------------------

@pytest.mark.parametrize("vm, task, cold, expected", [
    ("active", None, "stopped", ("move", "live")),
    ("paused", None, "never", ("move", "live")),
    ("stopped", None, "stopped", ("move", "cold")),
    ("stopped", None, "fallback", ("move", "cold")),
    ("stopped", None, "never", ("leave", None)),
    ("error", None, "stopped", ("leave", None)),
    ("suspended", None, "fallback", ("leave", None)),
    ("shelved", None, "stopped", ("leave", None)),
    ("active", "powering-off", "stopped", ("leave", None)),
    ("active", "deleting", "stopped", ("skip", None)),
])
def test_decisions(vm, task, cold, expected):
    decision, method, reason = plans.decide(server("x", vm_state=vm, task_state=task), None, cold)
    assert (decision, method) == expected
    assert (reason is None) == (decision == "move")


def test_in_flight_migrations_are_adopted_with_their_method():
    live = {"id": 7, "instance_uuid": "x", "migration_type": "live-migration",
            "status": "running"}
    cold = {"id": 8, "instance_uuid": "y", "migration_type": "migration", "status": "finished"}
    assert plans.decide(server("x", task_state="migrating"), live)[:2] == ("adopt", "live")
    assert plans.decide(server("y", vm_state="resized"), cold)[:2] == ("adopt", "cold")
    # a finished one is history, not something to adopt
    done = dict(live, status="completed")
    assert plans.decide(server("x"), done)[:2] == ("move", "live")


def test_migration_phases():
    def phase(kind, status):
        return plans.migration_phase({"migration_type": kind, "status": status})

    assert phase("live-migration", "completed") == plans.DONE
    assert phase("live-migration", "running") == plans.IN_FLIGHT
    assert phase("live-migration", "error") == plans.FAILED
    assert phase("migration", "finished") == plans.AWAITING_CONFIRM
    assert phase("migration", "confirmed") == plans.DONE
    # a finished cold migration is not done until it is confirmed
    assert phase("migration", "completed") == plans.IN_FLIGHT


# runner --------------------------------------------------------------------

def test_running_and_paused_are_live_migrated_stopped_cold_migrated_and_confirmed():
    nova = cloud([server("run"), server("pz", vm_state="paused"),
                  server("off", vm_state="stopped")])
    got, _ = run(nova)
    assert {n: e["outcome"] for n, e in got.items()} == {
        "run": "migrated", "pz": "migrated", "off": "cold_migrated"}
    for name, state in (("run", "active"), ("pz", "paused"), ("off", "stopped")):
        srv = nova.servers[name]
        assert srv["OS-EXT-SRV-ATTR:host"] != HOST
        assert srv["OS-EXT-STS:vm_state"] == state
        assert got[name]["destination"] == srv["OS-EXT-SRV-ATTR:host"]
    statuses = {m["instance_uuid"]: (m["migration_type"], m["status"]) for m in nova.migrations}
    assert statuses == {"run": ("live-migration", "completed"),
                        "pz": ("live-migration", "completed"),
                        "off": ("migration", "confirmed")}
    assert nova.count("confirm_migration") == 1
    assert nova.count("live_migrate") == 2 and nova.count("cold_migrate") == 1


def test_failed_live_migration_is_retried_on_another_host():
    nova = cloud([server("a")])
    nova.fail_next("ok-1", 1)
    got, _ = run(nova)
    entry = got["a"]
    assert entry["outcome"] == "migrated" and entry["attempts"] == 2
    assert entry["attempt_log"][0]["destination"] == "ok-1"
    assert entry["attempt_log"][1]["target"] in ("ok-2", "ok-3")
    assert entry["destination"] == entry["attempt_log"][1]["target"]


def test_fallback_to_cold_migration_only_when_allowed():
    nova = cloud([server("a")], hosts=("ok-1",))
    nova.fail_next("ok-1", 3)
    got, _ = run(nova, drain_run.DrainOptions(max_attempts=3, candidate_hosts=["ok-1"]))
    assert got["a"]["outcome"] == "failed"
    assert nova.count("cold_migrate") == 0

    nova = cloud([server("a")], hosts=("ok-1",))
    nova.fail_next("ok-1", 3)
    got, _ = run(nova, drain_run.DrainOptions(max_attempts=3, candidate_hosts=["ok-1"],
                                              cold_migration=plans.COLD_FALLBACK),
                 cold_migration=plans.COLD_FALLBACK)
    assert got["a"]["outcome"] == "cold_migrated"
    assert got["a"]["method"] == "cold"
    assert got["a"]["fallback_reason"].startswith("live_migration_error")
    assert nova.servers["a"]["OS-EXT-STS:vm_state"] == "active"
    assert nova.servers["a"]["OS-EXT-SRV-ATTR:host"] == "ok-1"


def test_concurrency_window_is_respected():
    nova = cloud([server(f"s{i:02d}") for i in range(12)], steps_to_finish=3)
    most = 0
    original = nova.live_migrate

    def counting(uuid, target_host=None):
        nonlocal most
        original(uuid, target_host)
        most = max(most, sum(1 for m in nova.migrations if m["status"] == "queued"))

    nova.live_migrate = counting
    got, _ = run(nova, drain_run.DrainOptions(concurrency=4))
    assert most == 4
    assert all(e["outcome"] == "migrated" for e in got.values())


def test_polling_is_per_host_not_per_instance():
    nova = cloud([server(f"s{i:02d}") for i in range(40)], steps_to_finish=2)
    run(nova, drain_run.DrainOptions(concurrency=40))
    polls = nova.count("migrations_from") + nova.count("servers_changed_since")
    assert polls < 20, polls
    assert nova.count("get_server") == 0


def test_a_few_migrated_instances_are_read_one_by_one_many_with_one_list():
    # one migration done at a time among twelve: a GET each beats listing every server
    nova = cloud([server(f"s{i:02d}") for i in range(12)])
    got, _ = run(nova, drain_run.DrainOptions(concurrency=1))
    assert all(e["outcome"] == "migrated" for e in got.values())
    assert nova.count("get_server") == 12
    assert nova.count("servers_changed_since") == 0
    # twelve done at once: one list
    nova = cloud([server(f"s{i:02d}") for i in range(12)])
    run(nova, drain_run.DrainOptions(concurrency=12))
    assert nova.count("servers_changed_since") >= 1
    assert nova.count("get_server") == 0


def test_in_flight_migration_is_adopted_without_a_second_request():
    nova = cloud([server("a")], steps_to_finish=2)
    nova.live_migrate("a")  # an earlier run that died after asking Nova
    nova.calls.clear()
    got, _ = run(nova)
    assert got["a"]["outcome"] == "migrated"
    assert nova.count("live_migrate") == 0 and len(nova.migrations) == 1


def test_a_conflicting_request_is_adopted_not_repeated():
    nova = cloud([server("a")])
    entries = plans.plan(HOST, nova.servers_on_host(HOST), [], plans.COLD_STOPPED)
    nova.live_migrate("a")  # another execution got there between our plan and our request
    clock = Clock()
    drain_run.DrainRun(nova, HOST, entries, drain_run.DrainOptions(), clock=clock,
                       sleep=clock.sleep).run()
    assert entries[0]["outcome"] == "migrated"
    assert len(nova.migrations) == 1


def test_state_lost_in_the_move_is_restored():
    nova = cloud([server("pz", vm_state="paused")])
    nova.live_migrated_state = {"paused": "active"}
    got, _ = run(nova)
    assert got["pz"]["outcome"] == "migrated"
    assert nova.count("pause") == 1
    assert nova.servers["pz"]["OS-EXT-STS:vm_state"] == "paused"


def test_timeout_bounds_the_run():
    nova = cloud([server("a")], steps_to_finish=10**6)
    got, clock = run(nova, drain_run.DrainOptions(timeout=30, poll_interval=2))
    assert got["a"]["outcome"] == "timed_out"
    assert 30 <= clock.now < 33


# action --------------------------------------------------------------------

def test_drain_empties_the_host_and_reports_per_instance(use_fake):
    nova = use_fake(cloud([server("a"), server("b", vm_state="stopped")]))
    result = act()
    assert result.error is None, result.error
    assert result.data["emptied"] is True
    assert {i["id"]: (i["method"], i["outcome"]) for i in result.data["instances"]} == {
        "a": ("live", "migrated"), "b": ("cold", "cold_migrated")}
    for item in result.data["instances"]:
        assert {"id", "name", "source", "destination", "method", "migration_id",
                "migration_status", "attempts", "seconds", "outcome", "reason"} <= set(item)
    assert result.data["changed"] is True
    assert not nova.aggregates  # the claim on the host was released
    # a rerun moves nothing and reports what the first one moved
    rerun = act()
    assert rerun.error is None and rerun.data["changed"] is False
    assert {i["id"]: i["outcome"] for i in rerun.data["instances"]} == {
        "a": "already_migrated", "b": "already_migrated"}
    assert nova.count("live_migrate") == 1 and nova.count("cold_migrate") == 1


def test_not_enough_capacity_stops_with_what_moved_left_where_it_went(use_fake):
    nova = use_fake(cloud([server("a"), server("b"), server("c")], hosts=("ok-1",)))
    nova.capacity["ok-1"] = 2
    result = act(max_attempts=2)
    assert result.error["reason"] == "host_not_emptied"
    details = result.error["details"]
    assert details["emptied"] is False
    assert details["totals"] == {"migrated": 2, "failed": 1}
    assert "1 of 3 instances are still on 'maint-1'" in result.error["message"]
    assert "stay where they went" in result.error["message"]
    on_ok = [s for s in nova.servers.values() if s["OS-EXT-SRV-ATTR:host"] == "ok-1"]
    assert len(on_ok) == 2
    assert result.error["changed"] is True


def test_instances_nova_cannot_move_are_named(use_fake):
    use_fake(cloud([server("a"), server("bad", vm_state="error")]))
    result = act()
    assert result.error["reason"] == "host_not_emptied"
    assert "bad (bad): in ERROR" in result.error["message"]
    assert {i["id"]: i["outcome"] for i in result.error["details"]["instances"]} == {
        "a": "migrated", "bad": "left"}


def test_refuses_an_enabled_host_but_plans_it_in_dry_run(use_fake):
    nova = use_fake(cloud([server("a")], disabled=False))
    result = act()
    assert result.error["reason"] == "host_not_disabled"
    plan = act(dry_run=True)
    assert plan.error is None and "not disabled" in plan.data["note"]
    assert {i["id"]: i["outcome"] for i in plan.data["instances"]} == {"a": "planned"}
    assert plan.data["changed"] is False
    assert nova.count("live_migrate") == 0 and not nova.aggregates


def test_refuses_a_down_host(use_fake):
    nova = use_fake(cloud([server("a")]))
    nova.services[0]["state"] = "down"
    result = act()
    assert result.error["reason"] == "host_down"
    assert "evacuate_host" in result.error["message"]
    assert nova.count("live_migrate") == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"concurrency": 0}, "'concurrency' must be at least 1"),
    ({"cold_migration": "always"}, "'cold_migration' must be one of"),
    ({"target_hosts": ["nope"]}, "unknown hosts"),
    ({"target_hosts": [HOST]}, "names the host to empty"),
    ({"timeout": "soon"}, "'timeout' must be a number"),
    ({"host": ""}, "'host' is required"),
])
def test_bad_input(use_fake, kwargs, fragment):
    nova = use_fake(cloud([server("a")]))
    result = act(**kwargs)
    assert result.error["reason"] == "invalid_input"
    assert fragment in result.error["message"]
    assert nova.count("live_migrate") == 0 and result.error["changed"] is False
