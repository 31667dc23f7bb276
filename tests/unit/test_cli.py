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


def _maintenance_with(extra_task, on_success="notify_operator"):
    """The shipped maintenance workbook, its drain task followed by ``extra_task``."""
    text = (data.workbooks_dir() / "maintenance.yaml").read_text()
    anchor = "        publish:\n          drain: <% task().result %>\n"
    assert anchor in text
    text = text.replace(anchor, f"        on-success:\n          - {on_success}\n" + anchor, 1)
    anchor = "  finish_maintenance:\n"
    return text.replace(anchor, extra_task + "\n" + anchor, 1)


NOTIFY_BY_HTTP = """\
      notify_operator:
        action: std.http
        input:
          url: https://chat.example.org/hooks/ops
          method: POST
          body:
            text: <% $.host %> is drained
"""


def test_validate_passes_a_workbook_that_calls_std_http(no_platform_parsers, tmp_path, capsys):
    copy = tmp_path / "maintenance.yaml"
    copy.write_text(_maintenance_with(NOTIFY_BY_HTTP))
    assert cli.main(["validate", str(copy)]) == 0, capsys.readouterr().out
    assert "0 problem(s)" in capsys.readouterr().out


def test_validate_passes_calls_to_mistral_extra_and_another_packs_workflows(
        no_platform_parsers, tmp_path, capsys):
    tasks = NOTIFY_BY_HTTP.replace("std.http", "nova.servers_list").replace(
        "          url: https://chat.example.org/hooks/ops\n          method: POST\n"
        "          body:\n            text: <% $.host %> is drained\n",
        "          search_opts: {host: <% $.host %>}\n")
    tasks += ("      ticket:\n        workflow: ops.tickets.open\n        input:\n"
              "          subject: <% $.host %>\n")
    copy = tmp_path / "maintenance.yaml"
    copy.write_text(_maintenance_with(tasks))
    assert cli.main(["validate", str(copy)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("task, expected", [
    (NOTIFY_BY_HTTP.replace("std.http", "selfheal.drain_hots"),
     "unknown action 'selfheal.drain_hots' (did you mean 'selfheal.drain_host'?)"),
    ("      notify_operator:\n        action: selfheal.enable_host\n        input:\n"
     "          host: <% $.host %>\n          hots: x\n",
     "action selfheal.enable_host has no input(s) ['hots']"),
    ("      notify_operator:\n        workflow: selfheal.maintenance.finish_maintenanse\n"
     "        input:\n          host: <% $.host %>\n",
     "unknown workflow 'selfheal.maintenance.finish_maintenanse'"),
    ("      notify_operator:\n        workflow: selfheal.host_failure.evacuate_host\n"
     "        input:\n          hots: <% $.host %>\n",
     "workflow selfheal.host_failure.evacuate_host has no input(s) ['hots']"),
])
def test_validate_still_catches_our_own_names_and_inputs(no_platform_parsers, tmp_path, capsys,
                                                         task, expected):
    copy = tmp_path / "maintenance.yaml"
    copy.write_text(_maintenance_with(task))
    assert cli.main(["validate", str(copy)]) == 1
    out = capsys.readouterr().out
    assert expected in out and f"{copy}: workflow start_maintenance, task notify_operator" in out


def test_validate_takes_directories(no_platform_parsers, tmp_path, capsys):
    for source in data.workbook_paths() + data.vitrage_template_paths():
        (tmp_path / source.parent.name).mkdir(exist_ok=True)
        (tmp_path / source.parent.name / source.name).write_text(source.read_text())
    assert cli.main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    shipped = (len(data.workbook_paths()), len(data.vitrage_template_paths()))
    assert f"cross-checks: {shipped[0]} workbook(s), {shipped[1]} template(s)" in out
    broken = tmp_path / "workbooks" / "host_failure.yaml"
    broken.write_text(broken.read_text().replace("action: selfheal.evacuate_and_verify",
                                                 "action: selfheal.evacuate_and_verfy"))
    assert cli.main(["validate", str(tmp_path / "workbooks")]) == 1
    assert "unknown action 'selfheal.evacuate_and_verfy'" in capsys.readouterr().out


def test_validate_an_empty_directory_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert "no *.yaml or *.yml file in" in capsys.readouterr().err


def test_validate_checks_action_names_against_a_mistral(no_platform_parsers, monkeypatch,
                                                        tmp_path, capsys):
    from selfheal_tools import install

    asked = []

    def absent(names, mistral_url=None):
        asked.append((tuple(names), mistral_url))
        return [n for n in names if n == "std.http"]

    monkeypatch.setattr(install, "absent_actions", absent)
    copy = tmp_path / "maintenance.yaml"
    copy.write_text(_maintenance_with(NOTIFY_BY_HTTP))
    assert cli.main(["validate", str(copy), "--mistral-url", "http://m:8989/v2"]) == 1
    out = capsys.readouterr().out
    assert asked and asked[0][1] == "http://m:8989/v2" and "selfheal.drain_host" in asked[0][0]
    assert f"{copy}: action 'std.http' is not registered in that Mistral" in out


@pytest.mark.parametrize("given, words", [
    ("{budget: 3}", "--watch-input is not JSON"),
    ("[1, 2]", "--watch-input must be a JSON object"),
])
def test_install_with_a_bad_watch_input_changes_nothing(monkeypatch, capsys, given, words):
    from selfheal_tools import install

    called = []
    monkeypatch.setattr(install, "install", lambda *a, **kw: called.append(a))
    assert cli.main(["install", "--with-watch", "--watch-input", given,
                     "--mistral-url", "http://m/v2"]) == 2
    err = capsys.readouterr().err
    assert words in err and "nothing was changed" in err
    assert called == []


def test_watch_pause_says_what_it_did(monkeypatch, capsys):
    from selfheal_tools import install_watch

    seen = []
    monkeypatch.setattr(install_watch, "set_paused",
                        lambda paused, reason="", mistral_url=None: seen.append((paused, reason)))
    assert cli.main(["watch", "pause", "--reason", "core switch upgrade"]) == 0
    assert seen == [(True, "core switch upgrade")]
    assert "kill switch ON" in capsys.readouterr().out
