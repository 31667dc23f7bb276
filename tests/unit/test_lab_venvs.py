# SPDX-License-Identifier: Apache-2.0
"""The lab's service venvs: built once, and never by two commands at once."""

import threading
import time

import pytest

from selfheal_lab import venvs


@pytest.fixture
def builds(tmp_path, monkeypatch):
    """Replace the pip build by one that takes a while and records itself."""
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    record = {"started": 0, "running": 0, "overlapped": False}

    def slow_build(name, extra_requirements):
        record["started"] += 1
        record["running"] += 1
        if record["running"] > 1:
            record["overlapped"] = True
        time.sleep(0.3)
        python = venvs.python(name)
        python.parent.mkdir(parents=True, exist_ok=True)
        python.write_text("")
        record["running"] -= 1

    monkeypatch.setattr(venvs, "_build", slow_build)
    return record


def test_two_commands_needing_the_same_venv_build_it_once_not_over_each_other(builds):
    threads = [threading.Thread(target=venvs.ensure, args=("nova",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert builds == {"started": 1, "running": 0, "overlapped": False}


def test_a_venv_is_rebuilt_when_its_requirements_change(builds):
    venvs.ensure("nova")
    venvs.ensure("nova")
    venvs.ensure("nova", extra_requirements=("extra-package",))

    assert builds["started"] == 2
