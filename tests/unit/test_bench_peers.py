# SPDX-License-Identifier: Apache-2.0
"""The pure parts of the host-failure peers benchmark (benchmarks/peers_logic.py):
the observer's verdicts, truthfulness, the floor's window and choice, the
statistics, request attribution, CPU seconds and the merge of parts (no lab)."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEAD = "dead"


@pytest.fixture(scope="module")
def logic():
    spec = importlib.util.spec_from_file_location(
        "peers_logic", ROOT / "benchmarks" / "peers_logic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def server(sid, host="dest", status="ACTIVE", task=None):
    return {"id": sid, "status": status, "OS-EXT-SRV-ATTR:host": host,
            "OS-EXT-STS:task_state": task}


# --- observer --------------------------------------------------------------------

@pytest.mark.parametrize(("srv", "want", "verdict"), [
    (server("a"), "ACTIVE", "recovered"),
    (server("a", status="SHUTOFF"), "SHUTOFF", "recovered"),
    # evacuated at 2.95+: Nova stopped a server that was running
    (server("a", status="SHUTOFF"), "ACTIVE", "wrong_power"),
    (server("a", host=DEAD), "ACTIVE", "on_dead_host"),
    (server("a", task="rebuild_spawning"), "ACTIVE", "busy"),
    (server("a", status="ERROR"), "ACTIVE", "error"),
    (server("a", host=DEAD, status="ERROR"), "SHUTOFF", "error"),
    (None, "ACTIVE", "gone"),
])
def test_server_verdict(logic, srv, want, verdict):
    assert logic.server_verdict(srv, DEAD, want) == verdict


def test_server_verdict_refuses_an_unknown_expected_status(logic):
    with pytest.raises(ValueError, match="expected_status"):
        logic.server_verdict(server("a"), DEAD, "PAUSED")


def test_snapshot_judges_only_the_run_servers_and_misses_the_absent(logic):
    listed = [server("a"), server("b", host=DEAD), server("other", host=DEAD)]
    verdicts = logic.snapshot(listed, DEAD, {"a": "ACTIVE", "b": "ACTIVE", "c": "SHUTOFF"})
    assert verdicts == {"a": "recovered", "b": "on_dead_host", "c": "gone"}
    assert logic.counts(verdicts) == {"gone": 1, "on_dead_host": 1, "recovered": 1}


def test_recovered_at_is_the_start_of_the_last_whole_stretch(logic):
    whole = {"a": "recovered", "b": "recovered"}
    part = {"a": "recovered", "b": "busy"}
    assert logic.recovered_at([(0.5, part), (1.0, whole), (1.5, whole)]) == 1.0
    # whole, then a duplicate evacuation rebuilds b: recovered only later
    assert logic.recovered_at([(1.0, whole), (1.5, part), (2.0, whole)]) == 2.0
    assert logic.recovered_at([(1.0, whole), (1.5, part)]) is None
    assert logic.recovered_at([]) is None
    assert logic.recovered_at([(1.0, {})]) is None


@pytest.mark.parametrize(("said", "final", "truthful", "verdict"), [
    ({"ok": True}, {"a": "recovered"}, True, "true"),
    ({"ok": True}, {"a": "recovered", "b": "wrong_power"}, False,
     "FALSE: said done, 1 not recovered"),
    ({"ok": False, "failures": 1}, {"a": "recovered", "b": "error"}, True,
     "true (1 not recovered)"),
    ({"ok": False, "failures": None}, {"a": "error"}, True, "true (1 not recovered)"),
    ({"ok": False, "failures": 1}, {"a": "error", "b": "gone"}, False,
     "FALSE: said 1 failed, 2 not recovered"),
    ({"ok": False, "failures": 2}, {"a": "recovered"}, False,
     "FALSE: said failed, all recovered"),
    ({"ok": None}, {"a": "error"}, None, "silent"),
])
def test_truthful(logic, said, final, truthful, verdict):
    assert logic.truthful(said, final) == {"truthful": truthful, "verdict": verdict}


def mig(status, created, updated, mid=1):
    return {"id": mid, "status": status, "created_at": created, "updated_at": updated}


def test_evacuated_twice(logic):
    assert not logic.evacuated_twice([mig("done", "t01", "t05")])
    # a retry after a failure that had ended
    assert not logic.evacuated_twice([mig("error", "t01", "t03", 1), mig("done", "t04", "t09", 2)])
    # a second request while the first was in flight, even if the first then failed
    assert logic.evacuated_twice([mig("error", "t01", "t06", 1), mig("done", "t04", "t09", 2)])
    # a second one after a success
    assert logic.evacuated_twice([mig("done", "t04", "t09", 2), mig("done", "t01", "t03", 1)])


def test_outcome_counts_every_verdict_and_the_records(logic):
    final = {"a": "recovered", "b": "wrong_power", "c": "recovered"}
    migrations = {"a": [mig("done", "t1", "t2")],
                  "b": [mig("error", "t1", "t2", 1), mig("done", "t3", "t4", 2)],
                  "c": [mig("done", "t1", "t5", 1), mig("done", "t2", "t6", 2)]}
    out = logic.outcome(final, migrations)
    assert out["recovered"] == 2 and out["wrong_power"] == 1 and out["error"] == 0
    assert out["evacuated_twice"] == 1 and out["failed_attempts"] == 1


# --- floor -----------------------------------------------------------------------

def test_window_step_keeps_at_most_window_in_flight(logic):
    fire, pending, flight = logic.window_step(list("abcdef"), [], set(), 2)
    assert (fire, pending, flight) == (["a", "b"], list("cdef"), ["a", "b"])
    fire, pending, flight = logic.window_step(pending, flight, set(), 2)
    assert fire == [] and flight == ["a", "b"]
    fire, pending, flight = logic.window_step(pending, flight, {"a"}, 2)
    assert (fire, pending, flight) == (["c"], list("def"), ["b", "c"])
    fire, pending, flight = logic.window_step(pending, flight, {"b", "c", "zz"}, 10)
    assert (fire, pending, flight) == (list("def"), [], list("def"))
    with pytest.raises(ValueError):
        logic.window_step([], [], set(), 0)


def test_floor_windows_end_with_all_at_once(logic):
    assert logic.floor_windows(10) == [5, 10]
    assert logic.floor_windows(50) == [5, 10, 25, 50]
    assert logic.floor_windows(100) == [5, 10, 25, 50, 100]


def test_best_picks_the_smallest_median(logic):
    assert logic.best({5: 30.0, 10: 21.5, 25: None, 50: 22.0}) == (10, 21.5)
    assert logic.best({}) == (None, None)
    assert logic.best({5: None}) == (None, None)


def run(name, seconds, recovered=10, n=10, scenario="clean", rid=None, **extra):
    return dict({"contender": name, "seconds": seconds, "recovered": recovered,
                 "instances": n, "scenario": scenario, "requests": 30,
                 "run_id": rid or f"{name}-{seconds}"}, **extra)


def test_floor_of_takes_the_window_with_the_best_median_of_whole_runs(logic):
    runs = [run("floor-w5", 9.0), run("floor-w5", 11.0), run("floor-w5", 10.0),
            run("floor-w10", 8.0), run("floor-w10", 12.0), run("floor-w10", 12.5),
            # a fast run that left servers behind does not count
            run("floor-w10", 1.0, recovered=8),
            run("selfheal", 5.0), run("floor-w5", 2.0, n=50, recovered=50)]
    name, times, median = logic.floor_of(runs, 10)
    assert name == "floor-w5" and median == 10.0 and sorted(times) == [9.0, 10.0, 11.0]
    assert logic.floor_of(runs, 100) == (None, [], None)


# --- statistics ------------------------------------------------------------------

def test_spread(logic):
    assert logic.spread([3.0, None, 1.0, 2.0]) == {"n": 3, "median": 2.0, "min": 1.0,
                                                   "max": 3.0}
    assert logic.spread([None]) is None


def test_overhead_in_seconds_and_ratio_with_its_spread(logic):
    out = logic.overhead([12.0, 14.0, 13.0], [9.0, 10.0, 11.0])
    assert out["seconds"] == {"n": 3, "median": 3.0, "min": 2.0, "max": 4.0}
    assert out["ratio"] == {"median": 1.3, "min": round(12 / 11, 3), "max": round(14 / 9, 3)}
    assert logic.overhead([None], [1.0]) is None
    assert logic.overhead([1.0], []) is None


def test_cell_summary_times_only_whole_runs_and_says_the_fraction(logic):
    runs = [run("x", 10.0, said_seconds=9.0, nova_cpu_seconds=4.0, truthful=True),
            run("x", 20.0, recovered=5, said_seconds=8.0, truthful=False)]
    s = logic.cell_summary(runs)
    assert s["repetitions"] == 2 and not s["all_recovered"]
    assert s["recovered_fraction"] == 0.75
    assert s["seconds"] == {"n": 1, "median": 10.0, "min": 10.0, "max": 10.0}
    assert s["requests_per_instance"]["median"] == 3.0
    assert s["truthful"] == ["False", "True"]


# --- requests, CPU, parts --------------------------------------------------------

def test_attributed_takes_differences_and_leaves_the_harness_out(logic):
    before = {"harness": {"GET /servers/detail": 40}, "-": {"GET /os-migrations": 3}}
    after = {"harness": {"GET /servers/detail": 90},
             "-": {"GET /os-migrations": 10, "POST /servers/{id}/action": 5},
             "naive-2.94": {"GET /os-services": 1}}
    out = logic.attributed(before, after)
    assert out == {"total": 13,
                   "by_route": {"GET /os-migrations": 7, "GET /os-services": 1,
                                "POST /servers/{id}/action": 5},
                   "by_client": {"-": 12, "naive-2.94": 1}}


def test_cpu_seconds_reads_proc_stat_with_a_spaced_name(logic):
    # pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17)
    fields = ["S"] + ["0"] * 10 + ["150", "50", "20", "30"] + ["0"] * 30
    text = "1234 (nova box x) " + " ".join(fields)
    assert logic.cpu_seconds(text, 100) == 2.5


def test_merge_keeps_each_run_once_and_every_part_meta(logic):
    a = {"meta": {"part": "sweep"}, "runs": [run("x", 1.0, rid="r1"), run("x", 2.0, rid="r2")]}
    b = {"meta": {"part": "main"}, "runs": [run("x", 2.0, rid="r2"), run("y", 3.0, rid="r3")]}
    merged = logic.merge([a, b])
    assert [r["run_id"] for r in merged["runs"]] == ["r1", "r2", "r3"]
    assert merged["parts"] == [{"part": "sweep"}, {"part": "main"}]
    # each run says its part: the sweep's runs stay out of the main table's cells
    assert [r["part"] for r in merged["runs"]] == ["sweep", "sweep", "main"]
    assert [r["run_id"] for r in logic.main_table_runs(merged["runs"])] == ["r3"]
    assert logic.main_table_runs([dict(r, part="sweep") for r in merged["runs"]]) == [
        dict(r, part="sweep") for r in merged["runs"]]


# --- the harness's summaries (benchmarks/peers.py, no lab) -------------------------

@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean(name, kind, config, seconds, recovered=50, n=50, rid=None):
    return {"contender": name, "kind": kind, "config": config, "seconds": seconds,
            "recovered": recovered, "instances": n, "scenario": "clean", "requests": 100,
            "said_seconds": seconds, "nova_cpu_seconds": 1.0, "truthful": True,
            "run_id": rid or f"{name}-{seconds}-{recovered}"}


def test_choices_from_the_sweep_ignore_settings_that_left_servers_behind(peers):
    runs = [clean("selfheal-w5", "selfheal", {"concurrency": 5}, 30.0),
            clean("selfheal-w25", "selfheal", {"concurrency": 25}, 20.0),
            clean("selfheal-w50", "selfheal", {"concurrency": 50}, 10.0, recovered=49),
            clean("floor-w10", "floor", {"window": 10}, 12.0),
            clean("floor-w50", "floor", {"window": 50}, 15.0)]
    assert peers.choices_from(runs) == {"selfheal": 25, "masakari": None, "floor": 10}


def test_summarise_against_the_best_floor_and_only_whole_cells_get_an_overhead(peers):
    runs = [clean("floor-w10", "floor", {"window": 10}, s) for s in (10.0, 11.0, 12.0)]
    runs += [clean("floor-w50", "floor", {"window": 50}, s) for s in (20.0, 21.0, 22.0)]
    runs += [clean("selfheal", "selfheal", {}, s) for s in (13.0, 14.0, 15.0)]
    runs += [clean("naive-latest", "naive", {}, None, recovered=40, rid=f"n{i}")
             for i in range(3)]
    rows = {r["contender"]: r for r in peers.summarise(runs)}
    assert rows["selfheal"]["floor"] == "floor-w10"
    assert rows["selfheal"]["overhead"]["seconds"]["median"] == 3.0
    assert rows["selfheal"]["overhead"]["ratio"]["median"] == round(14 / 11, 3)
    assert rows["naive-latest"]["overhead"] is None
    assert rows["naive-latest"]["recovered_fraction"] == 0.8
    assert "naive-latest" in peers.table(list(rows.values()))


def test_the_plot_leaves_out_contenders_that_did_not_recover_everything(peers, tmp_path,
                                                                       monkeypatch):
    pytest.importorskip("matplotlib")
    runs = [clean("floor-w10", "floor", {"window": 10}, 10.0),
            clean("floor-w50", "floor", {"window": 50}, 20.0),
            clean("naive-latest", "naive", {}, None, recovered=40)]
    plotted = []
    from matplotlib.axes import Axes
    original = Axes.errorbar

    def spy(self, *args, **kwargs):
        plotted.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    peers.plot(peers.summarise(runs), tmp_path / "p.png")
    assert plotted == ["floor (best window)"]
    assert (tmp_path / "p.png").stat().st_size > 0


def test_main_runs_defaults_the_sweep_choices_and_the_floor_at_its_window_and_all_at_once(
        peers):
    names = [c.name for c in peers.contenders_for(
        "main", 100, {"selfheal": 10, "masakari": 5, "floor": 25}, True, 25)]
    assert names == ["floor-w25", "floor-w100", "selfheal", "naive-2.94", "naive-latest",
                     "selfheal-w10", "masakari", "masakari-t5"]
    # the best window is the default: not run twice; no sweep: every floor window
    names = [c.name for c in peers.contenders_for("main", 10, {"selfheal": 25}, False, 25)]
    assert names == ["floor-w5", "floor-w10", "selfheal", "naive-2.94", "naive-latest"]
    sweep = [c.name for c in peers.contenders_for("sweep", 50, {}, True)]
    assert sweep == ["floor-w5", "floor-w10", "floor-w25", "floor-w50", "selfheal-w5",
                     "selfheal-w10", "selfheal-w25", "selfheal-w50", "masakari-t3",
                     "masakari-t5", "masakari-t10", "masakari-t25"]
    assert peers.selfheal_default_window() == 25


def test_the_main_table_is_saved_per_size_and_every_part_of_one_label_is_merged(peers, tmp_path):
    assert peers.part_name("main", 100) == "main-n100"
    assert peers.part_name("sweep", 50) == "sweep"
    assert peers.part_name("faults", 50) == "faults"
    for stem in ("sweep", "main-n10", "main-n100", "main", "faults", "latest", "trial-main",
                 "trial-main-n10", "main-nx"):
        (tmp_path / f"peers-{stem}.json").write_text("{}")
    found = [p.stem for p in peers.part_files(tmp_path)]
    assert found == ["peers-faults", "peers-main-n10", "peers-main-n100", "peers-main",
                     "peers-sweep"]
    assert [p.stem for p in peers.part_files(tmp_path, "trial-")] == ["peers-trial-main-n10",
                                                                      "peers-trial-main"]


def test_a_part_run_for_some_contenders_keeps_the_others_runs_of_that_part(peers, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(peers, "RESULTS", tmp_path)
    monkeypatch.setattr(peers, "_nova_timings", lambda: {})
    earlier = {"meta": {"part": "sweep", "command": "the first sweep"},
               "runs": [clean("floor-w10", "floor", {"window": 10}, 20.0),
                        clean("masakari-t5", "masakari", {}, 150.0)]}
    (tmp_path / "peers-sweep.json").write_text(peers.json.dumps(earlier))
    args = peers.argparse.Namespace(argv=["--only", "sweep", "--contenders", "masakari"],
                                    seed=1, label="", observe=0.5, contenders=["masakari"])
    new = [clean("masakari-t10", "masakari", {}, 30.0)]
    peers._save("sweep", new, args)
    peers._save("sweep", new + [clean("masakari-t5", "masakari", {}, 31.0)], args)
    saved = peers.json.loads((tmp_path / "peers-sweep.json").read_text())
    assert [(r["contender"], r["seconds"]) for r in saved["runs"]] == [
        ("floor-w10", 20.0), ("masakari-t10", 30.0), ("masakari-t5", 31.0)]
    assert saved["meta"]["kept"] == {"runs": 1, "meta": earlier["meta"]}
    # without --contenders a part's file holds only this run's runs
    args = peers.argparse.Namespace(argv=["--only", "sweep"], seed=1, label="", observe=0.5,
                                    contenders=[])
    peers._save("sweep", new, args)
    saved = peers.json.loads((tmp_path / "peers-sweep.json").read_text())
    assert [r["contender"] for r in saved["runs"]] == ["masakari-t10"]
