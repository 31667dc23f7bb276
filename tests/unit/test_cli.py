# SPDX-License-Identifier: Apache-2.0
import pytest

from selfheal_tools import cli
from selfheal_tools import data
from selfheal_tools import platform_parsers


@pytest.fixture
def no_platform_parsers(monkeypatch):
    monkeypatch.setattr(platform_parsers, "find_python", lambda platform, given=None: None)


def test_validate_passes_on_the_shipped_files_and_says_what_was_skipped(
        no_platform_parsers, capsys):
    assert cli.main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "mistral parser: SKIPPED" in out and "vitrage parser: SKIPPED" in out
    assert "0 problem(s)" in out


def test_validate_names_the_file_and_the_fix_and_fails(no_platform_parsers, tmp_path, capsys):
    broken = tmp_path / "host_failure.yaml"
    text = (data.workbooks_dir() / "host_failure.yaml").read_text()
    broken.write_text(text.replace("action: selfheal.evacuate_and_verify",
                                   "action: selfheal.evacuate_and_verfy", 1))
    assert cli.main(["validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert (f"{broken}: workflow evacuate_host, task evacuate: unknown action "
            "'selfheal.evacuate_and_verfy'") in out


def test_validate_missing_file_is_one_clear_line(capsys):
    assert cli.main(["validate", "/nonexistent.yaml"]) == 2
    assert capsys.readouterr().err.strip() == \
        "selfheal validate: no such file or directory: /nonexistent.yaml"


def test_the_lab_commands_point_to_the_lab_distribution(capsys):
    assert cli.main(["demo"]) == 2
    assert cli.main(["lab", "up", "--auth"]) == 2
    err = capsys.readouterr().err
    assert "selfheal demo: the lab is not part of the product" in err
    assert "`selfheal-lab lab`" not in err and "`selfheal-lab demo`" in err
