"""`selfheal install` against the lab's real Mistral."""

import yaml

from selfheal_actions import cli
from selfheal_actions import data
from selfheal_actions import install
from selfheal_lab import mistral_client


def test_install_creates_then_changes_nothing_and_dry_run_changes_nothing(
        lab_info, tmp_path, capsys):
    url = lab_info["mistral"]["url"]
    source = data.workbooks_dir() / "host_failure.yaml"
    # a workbook of its own name, so the lab's selfheal.host_failure stays as it is
    text = source.read_text().replace("name: selfheal.host_failure",
                                      "name: selfheal_install_test.host_failure", 1)
    workbook = tmp_path / "workbook.yaml"
    workbook.write_text(text)
    mistral_client.delete_workbook(url, "selfheal_install_test.host_failure")  # a kept lab

    first = install.install(url, workbook_paths=[workbook])
    second = install.install(url, workbook_paths=[workbook])
    workbook.write_text(text.replace("reason: host failure", "reason: a changed default", 1))
    dry = install.install(url, dry_run=True, workbook_paths=[workbook])

    assert [w["change"] for w in first["workbooks"]] == ["created"]
    assert [w["change"] for w in second["workbooks"]] == ["unchanged"]
    assert [w["change"] for w in dry["workbooks"]] == ["would update"]
    stored = [w for w in mistral_client.list_workbooks(url)
              if w["name"] == "selfheal_install_test.host_failure"]
    assert yaml.safe_load(stored[0]["definition"])["workflows"]["evacuate_host"]["input"][1] == {
        "reason": "host failure"}
    assert first["missing_actions"] == []

    assert cli.main(["install", "--mistral-url", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "workbook selfheal.host_failure: unchanged" in out
    assert "every selfheal action is registered" in out


def test_install_says_what_to_do_when_mistral_is_not_there(capsys):
    assert cli.main(["install", "--mistral-url", "http://127.0.0.1:9/v2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("selfheal install: cannot reach Mistral at http://127.0.0.1:9/v2")
    assert "Traceback" not in err
