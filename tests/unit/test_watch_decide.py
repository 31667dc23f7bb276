# SPDX-License-Identifier: Apache-2.0
"""The host watch's decision, cycle by cycle: signals, streaks and gates."""

import pytest

from selfheal_actions.watch import decide as deciding

NOVA_ONLY = deciding.Settings(samples=3, max_failed_ratio=0.5, max_starts=2, budget=20,
                              per_host_concurrency=10, use_exporter=False)
BOTH = NOVA_ONLY._replace(use_exporter=True)


def host(name, nova="up", exporter=None, status="enabled", marker=None, age=1.0):
    return {"host": name, "nova": nova, "exporter": exporter, "status": status,
            "marker": marker, "age": age}


def cloud(n=8, **failing):
    """``n`` healthy hosts c0..c(n-1), some replaced by ``failing`` {name: host}."""
    hosts = {f"c{i}": host(f"c{i}", exporter=True) for i in range(n)}
    hosts.update(failing)
    return list(hosts.values())


def world(**kw):
    base = {"paused": None, "scheduler_up": True, "prometheus_error": None, "healing": {},
            "aggregates": []}
    base.update(kw)
    return base


def run_cycles(count, observations, settings=BOTH, **world_kw):
    streaks, decision = {}, None
    for _ in range(count):
        decision = deciding.decide(observations, streaks, settings, world(**world_kw))
        streaks = decision["streaks"]
    return decision


def verdict(decision, name):
    return next(h for h in decision["hosts"] if h["host"] == name)


def test_a_host_is_failed_only_after_samples_consecutive_failed_cycles():
    observations = cloud(c1=host("c1", nova="stale", exporter=False, age=40))
    assert verdict(run_cycles(2, observations), "c1")["verdict"] == "suspect"
    decision = run_cycles(3, observations)
    assert decision["start"] == [{"host": "c1", "concurrency": 10,
                                  "signals": "nova stale 40s, exporter down"}]
    line = deciding.decision_line(3, decision)
    assert "c1 [nova stale 40s, exporter down; 3] start" in line
    assert line.endswith("start c1 (concurrency 10)")


def test_one_good_cycle_resets_the_count():
    failing = cloud(c1=host("c1", nova="down", exporter=False))
    streaks = {}
    for observations in (failing, failing, cloud(), failing, failing):
        decision = deciding.decide(observations, streaks, BOTH, world())
        streaks = decision["streaks"]
    assert decision["start"] == [] and streaks == {"c1": 2}


def test_nova_down_but_exporter_up_is_reported_and_never_healed():
    decision = run_cycles(10, cloud(c1=host("c1", nova="down", exporter=True)))
    assert decision["start"] == []
    entry = verdict(decision, "c1")
    assert entry["verdict"] == "disagree" and "only nova-compute" in entry["reason"]
    assert "only nova-compute" in deciding.decision_line(10, decision)


@pytest.mark.parametrize("exporter, reason", [(None, "no exporter"),
                                              (False, None)])
def test_a_missing_or_a_lone_signal_never_heals(exporter, reason):
    # Nova down and no exporter target; or the exporter down and Nova fine
    nova = "down" if exporter is None else "up"
    decision = run_cycles(10, cloud(c1=host("c1", nova=nova, exporter=exporter)))
    assert decision["start"] == [] and verdict(decision, "c1")["verdict"] == "disagree"


def test_nova_alone_heals_on_novas_word():
    observations = [host("a", nova="down"), host("b"), host("c")]
    decision = run_cycles(3, observations, settings=NOVA_ONLY)
    assert [s["host"] for s in decision["start"]] == ["a"]


def test_half_the_hosts_silent_is_a_switch_blip_not_four_dead_hosts():
    silent = {f"c{i}": host(f"c{i}", nova="stale", exporter=False, age=50) for i in range(4)}
    decision = run_cycles(5, cloud(**silent))
    assert decision["start"] == [] and decision["gate"] == "global_limit"
    assert {verdict(decision, f"c{i}")["verdict"] for i in range(4)} == {"held"}
    assert "held: global_limit: 4 of 8 compute hosts" in deciding.decision_line(5, decision)


def test_hosts_fenced_earlier_count_towards_the_global_limit():
    observations = cloud(
        c1=host("c1", nova="forced_down", status="disabled", marker="fenced"),
        c2=host("c2", nova="forced_down", status="disabled", marker="fenced"),
        c3=host("c3", nova="forced_down", status="disabled", marker="fenced"),
        c4=host("c4", nova="down", exporter=False))
    decision = run_cycles(3, observations)
    assert decision["gate"] == "global_limit" and decision["start"] == []


def test_three_of_eight_dying_together_are_all_started_within_max_starts_and_budget():
    dead = {f"c{i}": host(f"c{i}", nova="down", exporter=False) for i in (1, 2, 3)}
    settings = BOTH._replace(max_starts=3, budget=25)
    decision = run_cycles(3, cloud(**dead), settings=settings)
    assert [(s["host"], s["concurrency"]) for s in decision["start"]] == [
        ("c1", 10), ("c2", 10), ("c3", 5)]


def test_max_starts_defers_the_rest_to_the_next_cycle():
    dead = {f"c{i}": host(f"c{i}", nova="down", exporter=False) for i in (1, 2, 3)}
    decision = run_cycles(3, cloud(**dead))
    assert [s["host"] for s in decision["start"]] == ["c1", "c2"]
    assert verdict(decision, "c3")["reason"].startswith("max_starts")


def test_the_budget_held_by_running_heals_is_respected():
    decision = run_cycles(3, cloud(c1=host("c1", nova="down", exporter=False)),
                          healing={"c5": 20})
    assert decision["start"] == []
    assert verdict(decision, "c1")["reason"].startswith("budget: 20 of 20")


def test_a_host_being_healed_is_not_started_again():
    decision = run_cycles(5, cloud(c1=host("c1", nova="down", exporter=False)),
                          healing={"c1": 10})
    assert decision["start"] == [] and verdict(decision, "c1")["verdict"] == "healing"


def test_the_kill_switch_holds_everything_but_the_counts_go_on():
    observations = cloud(c1=host("c1", nova="down", exporter=False))
    decision = run_cycles(3, observations, paused="disk firmware upgrade")
    assert decision["start"] == [] and decision["gate"] == "paused"
    assert "kill switch is on: disk firmware upgrade" in deciding.decision_line(3, decision)
    resumed = deciding.decide(observations, decision["streaks"], BOTH, world())
    assert [s["host"] for s in resumed["start"]] == ["c1"]


def test_every_host_silent_at_once_is_the_control_plane():
    observations = [host(f"c{i}", nova="down", exporter=True) for i in range(3)]
    decision = run_cycles(3, observations, settings=NOVA_ONLY)
    assert decision["gate"] == "control_plane" and decision["start"] == []


def test_prometheus_not_answering_freezes_the_counts_and_heals_nothing():
    observations = cloud(c1=host("c1", nova="down", exporter=None))
    decision = deciding.decide(observations, {"c1": 2}, BOTH,
                               world(prometheus_error="ConnectionError"))
    assert decision["gate"] == "prometheus_unavailable" and decision["start"] == []
    assert decision["streaks"] == {"c1": 2}


def test_no_scheduler_up_holds_the_heals():
    decision = run_cycles(3, cloud(c1=host("c1", nova="down", exporter=False)),
                          scheduler_up=False)
    assert decision["gate"] == "no_scheduler"


@pytest.mark.parametrize("status, marker, reason", [
    ("disabled", "maintenance", "planned maintenance"),
    ("disabled", None, "disabled by an operator"),
    ("disabled", "fenced", "fenced by selfheal")])
def test_disabled_hosts_are_never_healed(status, marker, reason):
    observations = cloud(c1=host("c1", nova="down", exporter=False, status=status,
                                 marker=marker))
    decision = run_cycles(5, observations)
    assert decision["start"] == []
    assert verdict(decision, "c1") == {"host": "c1", "signals": "nova down, exporter down",
                                       "streak": 0, "verdict": "skipped", "reason": reason}


def test_an_aggregate_limit_holds_its_hosts_and_not_the_others():
    dead = {name: host(name, nova="down", exporter=False) for name in ("c1", "c2", "c6")}
    rack = {"name": "rack-a", "hosts": ["c0", "c1", "c2", "c3"], "limit": 1}
    settings = BOTH._replace(max_starts=5)
    decision = run_cycles(3, cloud(**dead), settings=settings, aggregates=[rack])
    assert [s["host"] for s in decision["start"]] == ["c6"]
    assert verdict(decision, "c1")["reason"] == (
        "aggregate_limit: 2 hosts of aggregate 'rack-a' failed, its selfheal:max_failures is 1")


def test_hosts_still_silent_after_a_mass_event_are_held_while_it_settles():
    late = cloud(c1=host("c1", nova="down", exporter=False))
    decision = deciding.decide(late, {"c1": 5}, BOTH, world(settling="3 s ago"))
    assert decision["start"] == [] and decision["gate"] == "settling"
    assert "not fenced for being late" in deciding.decision_line(1, decision)


def test_the_marker_the_maintenance_flow_writes_makes_the_watch_skip_the_host(use_fake):
    """End to end on fakes: selfheal.disable_monitoring's own disabled reason
    (not a hand-made marker) is read by the watch's Nova signal as planned
    maintenance, and a host that then dies is skipped, never healed. (The
    Alertmanager silence is not a signal of the watch: the Nova marker is the
    one record that the maintenance flow always writes.)"""
    from selfheal_actions.maintenance import monitoring
    from selfheal_actions.watch import signals
    from tests.unit.fake_nova import FakeNova
    from tests.unit.fake_nova import service
    from tests.unit.test_fencing import Context

    nova = use_fake(FakeNova(services=[service("c1"), service("c2"), service("c3")]))
    done = monitoring.DisableMonitoringAction(host="c1", reason="disk swap").run(Context())
    assert done.error is None, done.error
    services = [dict(s, binary="nova-compute", updated_at="2026-12-02T02:00:00")
                for s in nova.services]
    services[0].update(state="down")
    observations, _ = signals.nova_observations(services, stale_after=30)
    assert observations[0]["marker"] == "maintenance"
    decision = run_cycles(5, observations, settings=NOVA_ONLY)
    assert decision["start"] == []
    assert verdict(decision, "c1")["verdict"] == "skipped"
    assert verdict(decision, "c1")["reason"] == "planned maintenance"
