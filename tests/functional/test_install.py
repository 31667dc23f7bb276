# SPDX-License-Identifier: Apache-2.0
"""`selfheal install` against the lab's real Mistral and Vitrage."""

import time
from unittest import mock

import pytest
import yaml

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab.services import vitrage
from selfheal_tools import cli
from selfheal_tools import data
from selfheal_tools import install
from selfheal_tools import install_vitrage


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


# --- Vitrage -------------------------------------------------------------------

TEMPLATE_NAME = "selfheal_install_test_host_failure"
NIC_DOWN = "selfheal.install_test.nic.down"
HOST_DOWN = "selfheal.install_test.host.down"
HOST_WF = "selfheal.host_failure.evacuate_host"


@pytest.fixture(scope="module")
def vitrage_lab(lab_info):
    yield lab.up_vitrage()["vitrage"]
    # stopped like tests/functional/test_vitrage.py does: the tests after
    # these (planned maintenance) expect a lab without Vitrage
    vitrage.down()


def _rest(url):
    return install_vitrage.RestTemplates(*install_vitrage.vitrage_session(url))


def _loaded(url, name):
    return [t for t in _rest(url).list() if t["name"] == name]


def _test_template(tmp_path):
    """The shipped host template under its own name and alarm names, so the
    lab's selfheal_host_failure stays as it is and only this one fires."""
    text = (data.vitrage_templates_dir() / "host_failure.yaml").read_text()
    text = text.replace("name: selfheal_host_failure", f"name: {TEMPLATE_NAME}", 1)
    text = text.replace("default: nic.down", f"default: {NIC_DOWN}", 1)
    assert TEMPLATE_NAME in text and NIC_DOWN in text
    path = tmp_path / "host_failure.yaml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize("use_client", [False, True], ids=["rest", "vitrageclient"])
def test_install_loads_vitrage_templates_once_updates_changed_ones_and_dry_run_changes_nothing(
        vitrage_lab, tmp_path, use_client):
    url = vitrage_lab["url"]
    path, text = _test_template(tmp_path)
    for row in _loaded(url, TEMPLATE_NAME):   # a kept lab
        _rest(url).delete(row["uuid"])

    dry_new = install_vitrage.install_templates(url, dry_run=True, template_paths=[path],
                                                use_client=use_client)
    assert [t["change"] for t in dry_new["templates"]] == ["would create"]
    assert _loaded(url, TEMPLATE_NAME) == []

    first = install_vitrage.install_templates(url, template_paths=[path], use_client=use_client)
    second = install_vitrage.install_templates(url, template_paths=[path], use_client=use_client)
    assert first["via"] == ("python-vitrageclient" if use_client else "REST")
    assert [t["change"] for t in first["templates"]] == ["created"]
    assert [t["change"] for t in second["templates"]] == ["unchanged"]
    (row,) = _loaded(url, TEMPLATE_NAME)
    assert row["status"] == "ACTIVE" and row["uuid"] == first["templates"][0]["uuid"]
    # what Vitrage stored is what the file means: parameters resolved, the rest as written
    stored = _rest(url).show(row["uuid"])
    assert stored == install_vitrage.stored_form(text)
    assert stored["entities"]["nic_down"]["name"] == NIC_DOWN

    path.write_text(text.replace("default: compute.host.down", f"default: {HOST_DOWN}", 1))
    dry = install_vitrage.install_templates(url, dry_run=True, template_paths=[path],
                                            use_client=use_client)
    assert [t["change"] for t in dry["templates"]] == ["would update"]
    assert _loaded(url, TEMPLATE_NAME) == [row]

    third = install_vitrage.install_templates(url, template_paths=[path], use_client=use_client)
    assert [t["change"] for t in third["templates"]] == ["updated"]
    (new_row,) = _loaded(url, TEMPLATE_NAME)
    assert new_row["status"] == "ACTIVE" and new_row["uuid"] != row["uuid"]
    assert _rest(url).show(new_row["uuid"])["entities"]["host_down"]["name"] == HOST_DOWN


def test_install_rejects_what_vitrages_validator_rejects(vitrage_lab, tmp_path):
    url = vitrage_lab["url"]
    path, text = _test_template(tmp_path)
    path.write_text(text.replace(f"name: {TEMPLATE_NAME}", "name: selfheal_install_test_bad", 1)
                    .replace("[on] host", "[on] hots", 1))
    with pytest.raises(install.InstallError, match=r"Vitrage rejected .*host_failure.yaml: "):
        install_vitrage.install_templates(url, template_paths=[path], use_client=False)
    for row in _loaded(url, "selfheal_install_test_bad"):   # Vitrage keeps it in ERROR
        assert row["status"] == "ERROR"
        _rest(url).delete(row["uuid"])
    assert _loaded(url, "selfheal_install_test_bad") == []


def test_an_installed_template_drives_vitrages_evaluator(vitrage_lab, tmp_path, cloud,
                                                         make_hosts, capsys):
    url = vitrage_lab["url"]
    path, text = _test_template(tmp_path)
    path.write_text(text.replace("default: compute.host.down", f"default: {HOST_DOWN}", 1))
    for row in _loaded(url, TEMPLATE_NAME):
        _rest(url).delete(row["uuid"])
    # through the command line, as an operator would, with the shipped
    # workbooks into the lab's Mistral and this template into its Vitrage
    argv = ["install", "--mistral-url", cloud.mistral_url, "--vitrage-url", url]
    with mock.patch.object(data, "vitrage_template_paths", lambda: [path]):
        assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"template {TEMPLATE_NAME}: created" in out

    failed, _, _ = make_hosts(3)
    server = cloud.boot("vm-1", failed)
    cloud.fail_host(failed)
    vitrage.refresh()
    vitrage.post_event(HOST_DOWN, failed)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        calls = [n for n in vitrage.notifications()
                 if n["workflow"] == HOST_WF and n["input"].get("host") == failed]
        if calls:
            break
        time.sleep(0.2)
    assert len(calls) == 1, vitrage.notifications()
    assert calls[0]["input"] == {"host": failed, "reason": HOST_DOWN}
    execution = cloud.wait_workflow(calls[0]["execution_id"], timeout=300)
    assert execution["state"] == "SUCCESS", execution.get("output")
    assert getattr(cloud.server(server), "OS-EXT-SRV-ATTR:host") != failed

    _rest(url).delete(_loaded(url, TEMPLATE_NAME)[0]["uuid"])
    assert _loaded(url, TEMPLATE_NAME) == []
