# SPDX-License-Identifier: Apache-2.0
"""The pure parts of benchmarks/watch_detection.py: the timeline of a run,
the cron phase, the summary and its table (no lab)."""

import argparse
import datetime
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "watch_detection", ROOT / "benchmarks" / "watch_detection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


UTC = datetime.timezone.utc
DIED = datetime.datetime(2026, 12, 1, 23, 50, 3, 500000, tzinfo=UTC)


def at(seconds):
    return DIED + datetime.timedelta(seconds=seconds)


def mistral_time(seconds):
    """Mistral's format: whole seconds, no zone."""
    return at(seconds).strftime("%Y-%m-%d %H:%M:%S")


def heal(host, created, updated, state="SUCCESS"):
    return {"input": {"host": host}, "created_at": mistral_time(created),
            "updated_at": mistral_time(updated), "state": state}


def journal(off_requested, off_applied):
    return [{"at": at(off_requested).isoformat(), "event": "requested", "power": "off"},
            {"at": at(off_applied).isoformat(), "event": "applied", "power": "off"}]


def test_moment_reads_mistral_nova_and_iso_times(bench):
    assert bench.moment("2026-12-01 23:50:03") == datetime.datetime(
        2026, 12, 1, 23, 50, 3, tzinfo=UTC)
    assert bench.moment("2026-12-01T23:50:03.250000") == datetime.datetime(
        2026, 12, 1, 23, 50, 3, 250000, tzinfo=UTC)
    assert bench.moment("2026-12-01T23:50:03Z") == bench.moment("2026-12-01 23:50:03")
    assert bench.moment("2026-12-01T23:50:03+01:00").hour == 22
    assert bench.moment(None) is None


def test_the_timeline_of_one_host(bench):
    result = bench.timeline(
        DIED, [heal("h1", 41, 70)], {"h1": journal(42, 47.25)},
        {"h1": [at(49).strftime("%Y-%m-%dT%H:%M:%S.000000"),
                at(51).strftime("%Y-%m-%dT%H:%M:%S.000000")]}, ["h1"])
    # Mistral's and Nova's whole seconds truncate: 3.5 s after the minute died
    assert result["decision_s"] == 40.5
    assert result["power_off_s"] == 47.25
    assert result["first_evacuation_s"] == 48.5
    assert result["all_verified_s"] == 69.5
    assert result["healed"] == ["h1"]
    assert result["last_decision_s"] == result["decision_s"]


def test_the_timeline_of_a_rack_takes_the_first_start_and_the_last_end(bench):
    heals = [heal("a", 30, 60), heal("b", 31, 62), heal("c", 65, 90)]
    journals = {"a": journal(31, 33), "b": journal(32, 40), "c": journal(66, 70)}
    migrations = {"a": [mistral_time(35)], "b": [mistral_time(41)], "c": [mistral_time(71)]}
    result = bench.timeline(DIED, heals, journals, migrations, ["a", "b", "c"])
    assert result["decision_s"] == 29.5 and result["last_decision_s"] == 64.5
    assert result["power_off_s"] == 33 and result["last_power_off_s"] == 70
    assert result["first_evacuation_s"] == 34.5
    assert result["all_verified_s"] == 89.5
    assert result["per_host"]["c"]["decision_s"] == 64.5


def test_no_all_verified_while_a_host_is_not_healed(bench):
    heals = [heal("a", 30, 60), heal("b", 31, 62, state="ERROR")]
    result = bench.timeline(DIED, heals, {}, {}, ["a", "b", "c"])
    assert result["all_verified_s"] is None
    assert result["healed"] == ["a"]
    assert result["per_host"]["c"] == {"heals": 0, "state": None, "decision_s": None,
                                       "power_off_s": None, "first_evacuation_s": None,
                                       "ended_s": None}
    assert result["power_off_s"] is None and result["first_evacuation_s"] is None


def test_a_power_off_before_the_death_is_not_this_runs(bench):
    old = [{"at": at(-300).isoformat(), "event": "applied", "power": "off"}]
    result = bench.timeline(DIED, [heal("a", 30, 60)], {"a": old}, {}, ["a"])
    assert result["power_off_s"] is None


def test_the_first_heal_of_a_host_counts_and_a_running_one_has_not_ended(bench):
    heals = [heal("a", 50, 80), heal("a", 30, 40, state="RUNNING")]
    result = bench.timeline(DIED, heals, {}, {}, ["a"])
    assert result["per_host"]["a"]["heals"] == 2
    assert result["decision_s"] == 29.5
    assert result["per_host"]["a"]["ended_s"] is None
    assert result["all_verified_s"] is None


def test_spread(bench):
    assert bench.spread([3, None, 1, 2]) == {"median": 2, "min": 1, "max": 3,
                                             "values": [3, 1, 2]}
    assert bench.spread([None]) is None


@pytest.mark.parametrize("interval, period, offsets, gap", [
    (10, 50, [0, 10, 20, 30, 40], 20),   # the defaults: 20 s blind each minute
    (5, 55, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50], 10),
    (5, 50, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45], 15),
    (7, 50, [0, 7, 14, 21, 28, 35, 42, 49], 11),
    (10, 0, [0], 60),
])
def test_when_a_watch_execution_observes(bench, interval, period, offsets, gap):
    assert bench.cycle_offsets(interval, period) == offsets
    assert bench.blind_gap(interval, period) == gap


def test_the_kill_comes_at_the_phase_of_the_next_minute_it_fits_in(bench):
    now = datetime.datetime(2026, 12, 1, 23, 50, 10, tzinfo=UTC)
    assert bench.next_kill_at(now, 25) == now.replace(second=25)
    assert bench.next_kill_at(now, 12) == now.replace(minute=51, second=12)  # < margin
    assert bench.next_kill_at(now, 3) == now.replace(minute=51, second=3)
    # the trigger's input changed at 23:50:05: not before the minute after
    assert bench.next_kill_at(now, 25, not_before=now.replace(second=5)) == now.replace(
        minute=51, second=25)
    assert bench.next_kill_at(now, 25, not_before=now.replace(second=0)) == now.replace(
        second=25)


def test_the_phase_that_comes_first_is_run_first(bench):
    now = datetime.datetime(2026, 12, 1, 23, 50, 10, tzinfo=UTC)
    assert bench.pick_phase(now, [3, 25, 45]) == (25, now.replace(second=25))
    assert bench.pick_phase(now, [3, 45]) == (45, now.replace(second=45))
    late = now.replace(second=50)
    assert bench.pick_phase(late, [25, 3]) == (3, now.replace(minute=51, second=3))


def run(bench, first, phase, case="host", error=None):
    record = {"case": case, "setting": "production", "run": 1, "hosts": 1, "instances": 20,
              "phase_s": phase, "verified": 20, "error": error,
              "timeline": {"decision_s": first - 6, "last_decision_s": first - 6,
                           "power_off_s": first - 1, "first_evacuation_s": first,
                           "all_verified_s": first + 20}}
    return record


def test_summary_and_table_say_whether_the_target_is_met(bench):
    runs = [run(bench, 40, 3), run(bench, 50, 25), run(bench, 44, 45)]
    row = bench.summarize("host", "production", runs)
    assert row["first_evacuation_s"] == {"median": 44, "min": 40, "max": 50,
                                         "values": [40, 50, 44]}
    assert row["target_met_runs"] == 2 and row["target_met_median"] is True
    assert (row["verified"], row["expected"]) == (60, 60)
    text = bench.table([row])
    assert "| host (1 x 20)" in text
    assert "44.0 (40.0-50.0)" in text and "yes (2/3 runs)" in text
    assert text.splitlines()[1].startswith("|--")


def test_failed_runs_are_counted_and_left_out_of_the_medians(bench):
    runs = [run(bench, 60, 3), run(bench, 70, 25), run(bench, 10, 45, error="not healed")]
    row = bench.summarize("host", "tuned", runs)
    assert row["failed_runs"] == 1
    assert row["first_evacuation_s"]["values"] == [60, 70]
    assert row["target_met_median"] is False
    assert "3 (1 failed)" in bench.table([row]) and "no (0/3 runs)" in bench.table([row])


def test_every_run_is_listed_with_its_phase_and_signals(bench):
    record = run(bench, 40, 3.2)
    record.update(watch_started_s=-2.1, last_report_s=-4.0, cycle_wait_s=7.5,
                  signals=["h1: selfheal watch: nova stale 31s, exporter down"])
    failed = {"case": "rack", "setting": "tuned", "run": 2, "phase_s": None,
              "error": "RuntimeError: boom"}
    text = bench.runs_table([record, failed])
    assert "nova stale 31s, exporter down" in text and "RuntimeError: boom" in text
    assert "| 3.2 " in text and "| -2.1 " in text and "| 7.5 " in text


def test_the_files_hold_the_settings_and_every_interval(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    args = argparse.Namespace(settings=["production", "tuned"], cases=["host"], instances=20,
                              rack_instances=None, repeat=3, phases=[3, 25, 45],
                              random_phases=False)
    bench.report(DIED, "python3 tools/dev.py bench watch", args, [run(bench, 40, 3)])
    meta = json.loads((tmp_path / "watch-latest.json").read_text())
    assert meta["nova"] == {"report_interval": 10, "service_down_time": 60}
    assert meta["watch"]["production"] == {"interval": 10, "period": 50, "samples": 3,
                                           "stale_after": 30}
    assert meta["pattern"] == "* * * * *"
    text = (tmp_path / "watch-latest.md").read_text()
    assert "interval 10 s, period 50 s, samples 3, stale_after 30 s" in text
    assert "interval 5 s, period 55 s, samples 2, stale_after 25 s" in text
    assert "blind 20 s per minute" in text and "blind 10 s per minute" in text
    assert "report_interval 10 s, service_down_time 60 s" in text


def test_the_wait_for_a_cycle_is_what_is_left_after_the_signals(bench):
    production = bench.SETTINGS["production"]
    # last report 4 s before the death: stale at 26 s, confirmed at 46 s at best
    assert bench.cycle_wait(58.0, -4.0, production) == 12.0
    assert bench.cycle_wait(31.0, -9.0, bench.SETTINGS["tuned"]) == 10.0
    assert bench.cycle_wait(None, -4.0, production) is None
    assert bench.cycle_wait(58.0, None, production) is None


def test_main_runs_every_case_and_setting_with_each_phase_once(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    calls = {"bmc": [], "runs": [], "down": 0}

    class Cloud:
        mistral_url = "http://mistral"

        def add_hosts(self, *names):
            return list(names)

    monkeypatch.setattr(bench.lab, "up_with", lambda services, **kw: {
        "nova": dict(kw, compute_url="x")})
    monkeypatch.setattr(bench.lab, "down", lambda: calls.__setitem__("down", calls["down"] + 1))
    monkeypatch.setattr(bench.scenario, "LabCloud", Cloud)
    monkeypatch.setattr(bench.bmc, "add_hosts", lambda hosts: calls["bmc"].append(hosts))
    monkeypatch.setattr(bench.mistral_client, "_request", lambda *a, **kw: None)
    monkeypatch.setattr(bench.Bench, "install", lambda self, name: DIED)

    def fake_run(self, case, setting, index, dead, count, phases, not_before):
        phase = phases[0]
        calls["runs"].append((setting, case, index, tuple(dead), count, phase))
        if (setting, case, index) == ("tuned", "rack", 2):
            raise RuntimeError("boom")
        record = run(bench, 40, phase, case=case)
        record.update(setting=setting, run=index, hosts=len(dead), instances=count,
                      phase_target_s=phase)
        return record

    monkeypatch.setattr(bench.Bench, "run", fake_run)
    monkeypatch.setattr(bench.Bench, "clean", lambda self, dead: None)
    code = bench.main(["--repeat", "2", "--instances", "4", "--rack-instances", "2",
                       "--phases", "3", "45"])
    assert code == 1  # a run failed
    assert calls["down"] == 1
    assert [(s, c, i, len(d), n) for s, c, i, d, n, _ in calls["runs"]] == [
        ("production", "host", 1, 1, 4), ("production", "host", 2, 1, 4),
        ("production", "rack", 1, 3, 2), ("production", "rack", 2, 3, 2),
        ("tuned", "host", 1, 1, 4), ("tuned", "host", 2, 1, 4),
        ("tuned", "rack", 1, 3, 2), ("tuned", "rack", 2, 3, 2)]
    for first, second in zip(calls["runs"][::2], calls["runs"][1::2], strict=True):
        assert {first[5], second[5]} == {3, 45}
    every_dead = [h for r in calls["runs"] for h in r[3]]
    assert len(set(every_dead)) == 16 and calls["bmc"] == [every_dead]
    meta = json.loads((tmp_path / "watch-latest.json").read_text())
    assert meta["command"].endswith("--phases 3 45")
    assert [r["failed_runs"] for r in meta["results"]] == [0, 0, 0, 1]
    assert "boom" in (tmp_path / "watch-latest.md").read_text()
