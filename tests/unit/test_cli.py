import pytest

from selfheal_actions import cli
from selfheal_actions import data
from selfheal_actions import validation


@pytest.fixture
def no_platform_parsers(monkeypatch):
    monkeypatch.setattr(validation, "find_python", lambda platform, given=None: None)


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
        "selfheal validate: no such file: /nonexistent.yaml"


def test_demo_runs_the_chosen_scenario(monkeypatch):
    import types

    from selfheal_actions import cli

    ran = []
    for module in ("demo", "demo_autoheal"):
        fake = types.ModuleType(f"selfheal_lab.{module}")
        fake.run = lambda keep_lab, module=module: ran.append((module, keep_lab)) or 0
        monkeypatch.setitem(__import__("sys").modules, f"selfheal_lab.{module}", fake)
        monkeypatch.setattr(__import__("selfheal_lab"), module, fake, raising=False)
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "autoheal", "--keep-lab"]) == 0
    assert ran == [("demo", False), ("demo_autoheal", True)]
