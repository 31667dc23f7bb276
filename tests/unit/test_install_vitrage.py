# SPDX-License-Identifier: Apache-2.0
"""`selfheal install --with-vitrage`: the stored form and the decisions.

What Vitrage really stores and accepts is tested on the lab's Vitrage
(tests/functional/test_install.py); here, the form we compare with and what
the install does for each state of a template, on a stand-in API.
"""

import pytest

from selfheal_tools import cli
from selfheal_tools import data
from selfheal_tools import install_vitrage
from selfheal_tools.install import InstallError

TEMPLATE = """
metadata:
  version: 3
  name: t1
  type: standard
parameters:
  alarm:
    description: the alarm
    default: nic.down
  nodefault:
    description: none
entities:
  host:
    type: nova.host
  alarm:
    type: doctor
    name: get_param(alarm)
    other: get_param(nodefault)
scenarios:
  - condition: alarm [on] host
    actions:
      - execute_mistral:
          workflow: wf
          input:
            host: get_attr(host, name)
            alarm: get_param(alarm)
"""


def test_stored_form_resolves_defaults_drops_parameters_and_keeps_strings():
    form = install_vitrage.stored_form(TEMPLATE)
    assert "parameters" not in form
    assert form["metadata"] == {"version": "3", "name": "t1", "type": "standard"}
    assert form["entities"]["alarm"] == {"type": "doctor", "name": "nic.down",
                                         "other": "get_param(nodefault)"}
    action = form["scenarios"][0]["actions"][0]["execute_mistral"]
    assert action["input"] == {"host": "get_attr(host, name)", "alarm": "nic.down"}


def test_stored_form_of_something_else_says_so():
    with pytest.raises(InstallError, match="no metadata"):
        install_vitrage.stored_form("a: 1\n")


class StandIn:
    """Vitrage's template API as the install sees it; stores what it is given
    in Vitrage's stored form, names unique."""

    via = "stand-in"
    url = "http://vitrage/v1/template/"

    def __init__(self, reject=()):
        self.rows, self.calls, self.reject, self.counter = {}, [], reject, 0

    def list(self):
        return [dict(r, **{"status details": None}) for r in self.rows.values()]

    def show(self, uuid):
        return self.rows[uuid]["content"]

    def add(self, text):
        form = install_vitrage.stored_form(text)
        name = form["metadata"]["name"]
        self.calls.append(("add", name))
        if name in self.reject or any(r["name"] == name for r in self.rows.values()):
            return [{"uuid": None, "name": name, "status": "ERROR",
                     "status details": "rejected"}]
        self.counter += 1
        uuid = f"u{self.counter}"
        self.rows[uuid] = {"uuid": uuid, "name": name, "status": "ACTIVE", "content": form}
        return [{"uuid": uuid, "name": name, "status": "LOADING"}]

    def delete(self, uuid):
        self.calls.append(("delete", self.rows[uuid]["name"]))
        del self.rows[uuid]


def _run(api, paths, dry_run=False):
    return install_vitrage._install(api, dry_run, paths, timeout=1)


def test_creates_keeps_replaces_and_dry_run_changes_nothing(tmp_path):
    path = tmp_path / "t1.yaml"
    path.write_text(TEMPLATE)
    api = StandIn()

    first = _run(api, [path])
    second = _run(api, [path])
    path.write_text(TEMPLATE.replace("default: nic.down", "default: nic.gone"))
    dry = _run(api, [path], dry_run=True)
    calls_before = list(api.calls)
    third = _run(api, [path])

    assert [t["change"] for t in first["templates"]] == ["created"]
    assert [t["change"] for t in second["templates"]] == ["unchanged"]
    assert [t["change"] for t in dry["templates"]] == ["would update"]
    assert calls_before == [("add", "t1")]
    assert [t["change"] for t in third["templates"]] == ["updated"]
    assert api.calls[1:] == [("delete", "t1"), ("add", "t1")]
    (row,) = api.rows.values()
    assert row["content"]["entities"]["alarm"]["name"] == "nic.gone"
    assert third["templates"][0]["status"] == "ACTIVE"


def test_a_rejected_template_fails_the_install_naming_the_file(tmp_path):
    path = tmp_path / "t1.yaml"
    path.write_text(TEMPLATE)
    with pytest.raises(InstallError, match=r"Vitrage rejected .*t1.yaml: rejected; run "
                                           r"`selfheal validate"):
        _run(StandIn(reject=("t1",)), [path])


def test_shipped_templates_have_a_name_in_their_stored_form():
    for path in data.vitrage_template_paths():
        form = install_vitrage.stored_form(path.read_text())
        assert form["metadata"]["name"].startswith("selfheal_")
        assert "get_param(" not in str(form)


def test_cli_says_what_to_do_without_a_vitrage(monkeypatch, capsys):
    monkeypatch.delenv("OS_VITRAGE_URL", raising=False)
    monkeypatch.delenv("OS_AUTH_URL", raising=False)
    with pytest.raises(InstallError, match="pass --vitrage-url"):
        install_vitrage.vitrage_session()
    monkeypatch.setattr("selfheal_tools.install.install", lambda url, dry: {
        "mistral": "http://m", "workbooks": [], "missing_actions": [], "dry_run": dry})
    assert cli.main(["install", "--mistral-url", "http://m", "--with-vitrage"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("selfheal install: no Vitrage to talk to")
    assert "Traceback" not in err
