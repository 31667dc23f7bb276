# SPDX-License-Identifier: Apache-2.0
"""The drain and evacuation benchmarks' floor (benchmarks/floor.py): a
sliding window of moves, driven against a fake Nova that finishes each move a
few reads after it was asked (no lab)."""

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def floor():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("floor", ROOT / "benchmarks" / "floor.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


class FakeMoves:
    """A source host whose moves finish ``reads_to_finish`` reads after being
    asked; ``fail`` ids end in error."""

    def __init__(self, reads_to_finish=2, fail=()):
        self.asked, self.age, self.fail = [], {}, set(fail)
        self.reads_to_finish = reads_to_finish
        self.in_flight_seen = []
        self.now = 0.0

    def fire(self, server_id):
        self.asked.append(server_id)
        self.age[server_id] = 0
        self.in_flight_seen.append(sum(a < self.reads_to_finish for a in self.age.values()))

    def read(self):
        for sid in self.age:
            self.age[sid] += 1
        done = {s for s, a in self.age.items() if a >= self.reads_to_finish}
        return done - self.fail, done & self.fail

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_floor_keeps_at_most_its_window_in_flight_and_asks_each_once(floor):
    moves = FakeMoves(reads_to_finish=3)
    servers = [f"s{i}" for i in range(23)]
    result = floor.run_window(servers, 5, moves.fire, moves.read, clock=moves.clock,
                              sleep=moves.sleep)
    assert moves.asked == servers
    assert max(moves.in_flight_seen) == 5 == result["max_in_flight"]
    assert result["window"] == 5 and result["reads"] >= 23 // 5 * 3


def test_a_window_of_all_fires_everything_before_the_first_read(floor):
    moves = FakeMoves()
    servers = [f"s{i}" for i in range(10)]
    result = floor.run_window(servers, 10, moves.fire, moves.read, clock=moves.clock,
                              sleep=moves.sleep)
    assert moves.in_flight_seen == list(range(1, 11))
    assert result["reads"] == 2
    # a window wider than the host's servers is reported as used
    assert floor.run_window(["a", "b"], 10, moves.fire, moves.read, clock=moves.clock,
                            sleep=moves.sleep)["window"] == 2


def test_a_failed_move_stops_the_floor_with_its_id(floor):
    moves = FakeMoves(fail={"s3"})
    with pytest.raises(RuntimeError, match="1 moves failed.*s3"):
        floor.run_window([f"s{i}" for i in range(6)], 2, moves.fire, moves.read,
                         clock=moves.clock, sleep=moves.sleep)


def test_moves_that_never_finish_end_at_the_timeout(floor):
    moves = FakeMoves(reads_to_finish=10 ** 6)
    with pytest.raises(RuntimeError, match="0 of 4 moves finished within 5"):
        floor.run_window([f"s{i}" for i in range(4)], 2, moves.fire, moves.read, poll=1,
                         timeout=5, clock=moves.clock, sleep=moves.sleep)
    assert moves.asked == ["s0", "s1"]
