# SPDX-License-Identifier: Apache-2.0
from selfheal_actions.hosts import evacuation_plan as plans
from selfheal_actions.hosts import evacuation_run
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service

HOST = "failed-1"


class Clock:
    """Fake time: sleeping advances it, so timeouts are exercised instantly."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.01)


def cloud(servers, stops_evacuated=True, hosts=("ok-1", "ok-2", "ok-3"), **kwargs):
    services = [service(HOST, state="down", status="disabled", forced_down=True)]
    services += [service(h) for h in hosts]
    return FakeNova(servers=servers, services=services, stops_evacuated=stops_evacuated, **kwargs)


def run(nova, options=None, **plan_options):
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.evacuations_from(HOST),
                         plans.PlanOptions(**plan_options))
    clock = Clock()
    opts = options or evacuation_run.RunOptions(candidate_hosts=["ok-1", "ok-2", "ok-3"])
    evacuation_run.EvacuationRun(nova, HOST, entries, opts, clock=clock, sleep=clock.sleep).run()
    return {e["name"]: e for e in entries}, clock


def test_every_instance_lands_in_its_previous_power_state_at_2_96():
    nova = cloud([server("run", vm_state="active"), server("off", vm_state="stopped")])
    got, _ = run(nova)
    assert {n: e["outcome"] for n, e in got.items()} == {"run": "evacuated", "off": "evacuated"}
    assert nova.servers["run"]["OS-EXT-STS:vm_state"] == "active"
    assert nova.servers["off"]["OS-EXT-STS:vm_state"] == "stopped"
    # Nova 2.95+ stopped the running one: it was started, the stopped one was not.
    assert [c for c in nova.calls if c[0] == "start"] == [("start", "run")]
    assert all(e["destination"] != HOST for e in got.values())
    assert nova.count("evacuate") == 2


def test_below_2_95_no_start_is_needed():
    nova = cloud([server("run")], stops_evacuated=False)
    got, _ = run(nova)
    assert got["run"]["outcome"] == "evacuated"
    assert nova.count("start") == 0


def test_failed_evacuation_is_retried_on_another_host():
    nova = cloud([server("a")])
    nova.fail_next("ok-1", 1)
    got, _ = run(nova)
    entry = got["a"]
    assert entry["outcome"] == "evacuated"
    assert entry["attempts"] == 2
    assert entry["attempt_log"][0]["destination"] == "ok-1"
    assert entry["attempt_log"][1]["target"] in ("ok-2", "ok-3")
    assert entry["destination"] == entry["attempt_log"][1]["target"]


def test_gives_up_after_max_attempts_with_a_reason():
    nova = cloud([server("a")], hosts=("ok-1",))
    nova.fail_next("ok-1", 10)
    got, _ = run(nova, evacuation_run.RunOptions(max_attempts=2, candidate_hosts=["ok-1"]))
    assert got["a"]["outcome"] == "failed"
    assert got["a"]["attempts"] == 2
    assert got["a"]["reason"].startswith("migration_failed")


def test_reserved_hosts_are_tried_in_order_and_exhausted():
    nova = cloud([server("a")])
    nova.fail_next("ok-2", 1)
    got, _ = run(nova, evacuation_run.RunOptions(target_hosts=["ok-2", "ok-3"]))
    assert [c[2] for c in nova.calls if c[0] == "evacuate"] == ["ok-2", "ok-3"]
    assert got["a"]["destination"] == "ok-3"
    nova = cloud([server("b")])
    nova.fail_next("ok-2", 5)
    got, _ = run(nova, evacuation_run.RunOptions(target_hosts=["ok-2"], max_attempts=3))
    assert got["b"]["outcome"] == "failed" and got["b"]["reason"] == "no_target_left"


def test_concurrency_window_is_respected():
    nova = cloud([server(f"s{i:02d}") for i in range(12)], steps_to_finish=3)
    in_flight_max = 0
    original = nova.evacuate

    def counting(uuid, target_host=None):
        nonlocal in_flight_max
        original(uuid, target_host)
        busy = sum(1 for m in nova.migrations if m["status"] == "accepted")
        in_flight_max = max(in_flight_max, busy)

    nova.evacuate = counting
    got, _ = run(nova, evacuation_run.RunOptions(concurrency=4))
    assert in_flight_max == 4
    assert all(e["outcome"] == "evacuated" for e in got.values())


def test_in_flight_migration_is_adopted_without_a_second_request():
    nova = cloud([server("a")])
    nova.evacuate("a")  # an earlier run that died after asking Nova
    nova.calls.clear()
    got, _ = run(nova)
    assert got["a"]["outcome"] == "evacuated"
    assert nova.count("evacuate") == 0
    assert len(nova.migrations) == 1


def test_nova_accepts_a_second_evacuation_of_a_server_being_rebuilt():
    # Nova 34 (compute/api.py): check_instance_state(task_state=None) and a
    # save without expected task state. No 409 tells a second healer to stop:
    # only the host claim (one healer per host) and the plan's reading of the
    # migrations in flight do.
    nova = cloud([server("a")])
    nova.evacuate("a")
    nova.evacuate("a")
    assert [m["instance_uuid"] for m in nova.migrations] == ["a", "a"]


def _age(nova, seconds):
    """Make every migration look created and last updated ``seconds`` ago."""
    import datetime
    then = (datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for migration in nova.migrations:
        migration["created_at"] = then
        if migration.get("updated_at"):
            migration["updated_at"] = then


def test_a_rerun_long_after_an_evacuation_began_waits_for_it_and_never_redoes_it():
    # The first run asked Nova and died; the spawn on the destination takes
    # minutes, so the record sits in pre-migrating, last updated long ago:
    # Nova's changes-since no longer lists it.
    nova = cloud([server("a")])
    nova.stalled.add("a")
    nova.evacuate("a")
    nova.evacuations_from(HOST)  # accepted -> pre-migrating
    _age(nova, 600)
    nova.calls.clear()
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.evacuations_from(HOST),
                         plans.PlanOptions())
    assert entries[0]["decision"] == "adopt"
    clock = Clock()
    run_ = evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(
        timeout=evacuation_run.ADOPT_GRACE * 4), clock=clock, sleep=clock.sleep)
    run_.run()
    assert nova.count("evacuate") == 0 and nova.count("reset_to_error") == 0
    assert len(nova.migrations) == 1
    assert entries[0]["outcome"] == "timed_out"
    assert entries[0]["migration_status"] == "pre-migrating"


def test_an_adopted_slow_evacuation_that_finishes_later_is_verified():
    nova = cloud([server("a")])
    nova.stalled.add("a")
    nova.evacuate("a")
    nova.evacuations_from(HOST)
    _age(nova, 600)
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.evacuations_from(HOST),
                         plans.PlanOptions())
    clock = Clock()
    polls = []

    def sleep(seconds):
        clock.sleep(seconds)
        polls.append(seconds)
        if len(polls) == 20:
            nova.stalled.discard("a")  # the spawn ends

    nova.calls.clear()
    evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(),
                                 clock=clock, sleep=sleep).run()
    assert entries[0]["outcome"] == "evacuated"
    assert nova.count("evacuate") == 0 and len(nova.migrations) == 1
    # it was running before the failure: it is proven running where it landed
    assert entries[0]["power_after"] == "running"
    assert nova.servers["a"]["OS-EXT-STS:vm_state"] == "active"


def test_a_poll_that_fails_is_retried_next_cycle():
    nova = cloud([server("a"), server("b")])
    entries = plans.plan(HOST, nova.servers_on_host(HOST), [], plans.PlanOptions())
    nova.fail_reads("evacuations_from", 3)
    nova.fail_reads("servers_changed_since", 2)
    clock = Clock()
    run_ = evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(),
                                        clock=clock, sleep=clock.sleep)
    run_.run()
    assert [e["outcome"] for e in entries] == ["evacuated", "evacuated"]
    assert nova.count("evacuate") == 2 and run_.read_errors == 5


def test_reads_failing_for_the_whole_run_time_out_with_the_reason():
    nova = cloud([server("a")])
    entries = plans.plan(HOST, nova.servers_on_host(HOST), [], plans.PlanOptions())
    nova.fail_reads("evacuations_from", 10 ** 6)
    clock = Clock()
    evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(timeout=30),
                                 clock=clock, sleep=clock.sleep).run()
    assert entries[0]["outcome"] == "timed_out"
    assert "503" in entries[0]["reason"] and nova.count("evacuate") == 1


def test_already_moved_by_someone_else_is_verified_not_repeated():
    nova = cloud([server("a")])
    entries = plans.plan(HOST, nova.servers_on_host(HOST), [], plans.PlanOptions())
    nova.evacuate("a")
    nova.evacuations_from(HOST)  # the other run's evacuation finished
    clock = Clock()
    evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(), clock=clock,
                             sleep=clock.sleep).run()
    assert entries[0]["outcome"] == "already_evacuated"
    assert len(nova.migrations) == 1


def test_unfenced_host_is_never_evacuated():
    nova = cloud([server("a")])
    nova.services[0].update(state="up", forced_down=False)
    got, _ = run(nova)
    assert got["a"]["outcome"] == "failed" and got["a"]["reason"] == "host_not_fenced"
    assert not nova.migrations


def test_timeout_bounds_the_run():
    nova = cloud([server("a")], steps_to_finish=10**6)
    got, clock = run(nova, evacuation_run.RunOptions(timeout=30, poll_interval=2))
    assert got["a"]["outcome"] == "timed_out"
    assert 30 <= clock.now < 33


def test_polling_is_per_host_not_per_instance():
    nova = cloud([server(f"s{i:02d}") for i in range(40)], steps_to_finish=2)
    run(nova, evacuation_run.RunOptions(concurrency=40))
    polls = nova.count("evacuations_from") + nova.count("servers_changed_since")
    assert polls < 20, polls
    assert nova.count("get_server") == 0


def test_paused_instance_is_reset_then_evacuated_and_running():
    nova = cloud([server("p", vm_state="paused")])
    got, _ = run(nova)
    assert nova.calls.index(("reset_to_error", "p")) < nova.calls.index(("evacuate", "p", None))
    assert got["p"]["outcome"] == "evacuated"
    assert nova.servers["p"]["OS-EXT-STS:vm_state"] == "active"


def test_deleted_server_is_reported_skipped():
    nova = cloud([server("a")])
    entries = plans.plan(HOST, nova.servers_on_host(HOST), [], plans.PlanOptions())
    del nova.servers["a"]
    clock = Clock()
    evacuation_run.EvacuationRun(nova, HOST, entries, evacuation_run.RunOptions(), clock=clock,
                             sleep=clock.sleep).run()
    assert entries[0]["outcome"] == "skipped" and entries[0]["reason"] == "server_deleted"


def test_polls_pause_at_most_a_tenth_of_the_run_so_far():
    nova = cloud([server(f"s{i}") for i in range(5)], steps_to_finish=40)
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.evacuations_from(HOST),
                         plans.PlanOptions())
    clock = Clock()
    pauses = []

    def sleep(seconds):
        pauses.append((clock.now, seconds))
        clock.sleep(seconds)

    opts = evacuation_run.RunOptions(candidate_hosts=["ok-1"], poll_interval=2.0)
    evacuation_run.EvacuationRun(nova, HOST, entries, opts, clock=clock, sleep=sleep).run()
    assert all(e["outcome"] == "evacuated" for e in entries)
    assert pauses[0][1] == evacuation_run.FAST_POLL
    for elapsed, pause in pauses:
        assert pause <= max(evacuation_run.FAST_POLL, 0.1 * elapsed) + 1e-9
        assert pause <= 2.0
    # later pauses are longer: a long run does not poll Nova at the fast rate
    assert pauses[-1][1] > 4 * evacuation_run.FAST_POLL


def test_a_full_window_is_refilled_without_waiting_for_the_slow_poll():
    nova = cloud([server(f"s{i}") for i in range(12)], steps_to_finish=30)
    entries = plans.plan(HOST, nova.servers_on_host(HOST), nova.evacuations_from(HOST),
                         plans.PlanOptions())
    clock = Clock()
    pauses = []

    def sleep(seconds):
        waiting = sum(1 for e in entries if e.get("phase") == evacuation_run.PENDING)
        pauses.append((waiting, seconds))
        clock.sleep(seconds)

    opts = evacuation_run.RunOptions(concurrency=2, candidate_hosts=["ok-1"], poll_interval=5.0)
    evacuation_run.EvacuationRun(nova, HOST, entries, opts, clock=clock, sleep=sleep).run()
    assert all(e["outcome"] == "evacuated" for e in entries)
    assert all(p <= evacuation_run.WINDOW_POLL for waiting, p in pauses if waiting)
    assert any(p > evacuation_run.WINDOW_POLL for waiting, p in pauses if not waiting)


def test_a_few_landed_instances_are_read_one_by_one_many_with_one_list():
    # one instance done at a time among twelve: a GET each beats listing every server
    nova = cloud([server(f"s{i:02d}") for i in range(12)], stops_evacuated=False)
    run(nova, evacuation_run.RunOptions(concurrency=1))
    assert nova.count("get_server") == 12
    assert nova.count("servers_changed_since") == 0
    # twelve landing at once: one list
    nova = cloud([server(f"s{i:02d}") for i in range(12)], stops_evacuated=False)
    run(nova, evacuation_run.RunOptions(concurrency=12))
    assert nova.count("servers_changed_since") >= 1
    assert nova.count("get_server") == 0
