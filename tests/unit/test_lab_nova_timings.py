# SPDX-License-Identifier: Apache-2.0
"""Nova in a box with other heartbeat timings: the arguments, the
environment and the fingerprint that replaces a box started with others."""

import importlib.util

import pytest

from selfheal_lab.services import nova


def box_module():
    spec = importlib.util.spec_from_file_location("nova_box_script", nova.BOX_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lab_timings_stay_the_default():
    assert nova.wanted_timings(environ={}) == {"report_interval": 1, "service_down_time": 6}
    args = box_module().parse_args(["--port", "1", "--control-port", "2", "--state-dir", "d"])
    assert (args.report_interval, args.service_down_time) == (1, 6)


def test_arguments_win_over_the_environment():
    environ = {"SELFHEAL_LAB_REPORT_INTERVAL": "10", "SELFHEAL_LAB_SERVICE_DOWN_TIME": "60"}
    assert nova.wanted_timings(environ=environ) == {"report_interval": 10,
                                                    "service_down_time": 60}
    assert nova.wanted_timings(5, 30, environ=environ) == {"report_interval": 5,
                                                           "service_down_time": 30}


@pytest.mark.parametrize("given", [(6, 6), (0, 6), ("ten", 60), (10, 5)])
def test_bad_timings_are_refused(given):
    with pytest.raises(ValueError):
        nova.wanted_timings(*given, environ={})


def test_the_box_takes_production_timings():
    box = box_module()
    args = box.parse_args(["--port", "1", "--control-port", "2", "--state-dir", "d",
                           "--report-interval", "10", "--service-down-time", "60"])
    assert (args.report_interval, args.service_down_time) == (10, 60)
    with pytest.raises(SystemExit):
        box.parse_args(["--port", "1", "--control-port", "2", "--state-dir", "d",
                        "--report-interval", "60", "--service-down-time", "10"])


class Started(Exception):
    pass


@pytest.fixture
def running_box(monkeypatch):
    """A healthy running box started with the lab's timings; ``up`` raises
    :class:`Started` instead of starting another."""
    info = {"pid": 1, "source": nova.managed.source_of(nova.BOX_SCRIPT),
            "report_interval": 1, "service_down_time": 6}
    monkeypatch.setattr(nova, "_endpoint", lambda: info)
    monkeypatch.setattr(nova, "_healthy", lambda i: True)
    monkeypatch.delenv("SELFHEAL_LAB_REPORT_INTERVAL", raising=False)
    monkeypatch.delenv("SELFHEAL_LAB_SERVICE_DOWN_TIME", raising=False)

    def stop(*args):
        raise Started()

    monkeypatch.setattr(nova.processes, "stop", stop)
    return info


def test_a_running_box_with_the_same_timings_is_kept(running_box):
    assert nova.up() is running_box


def test_a_running_box_with_other_timings_is_replaced(running_box, monkeypatch):
    with pytest.raises(Started):
        nova.up(report_interval=10, service_down_time=60)
    monkeypatch.setenv("SELFHEAL_LAB_REPORT_INTERVAL", "10")
    monkeypatch.setenv("SELFHEAL_LAB_SERVICE_DOWN_TIME", "60")
    with pytest.raises(Started):
        nova.up()
