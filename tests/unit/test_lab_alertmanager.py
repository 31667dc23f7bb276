# SPDX-License-Identifier: Apache-2.0
"""The lab's Alertmanager set-up without starting anything: its
configuration, the cloud config naming it, ``up --with alertmanager``."""

import json

import pytest

from selfheal_lab import cli
from selfheal_lab import lab
from selfheal_lab import state
from selfheal_lab.services import alertmanager

NOVA = {"compute_url": "http://nova/v2.1", "headers": {"X-Auth-User": "admin"}}


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    return tmp_path


def test_one_receiver_that_sends_nowhere():
    config = alertmanager.render_config()
    assert config["route"]["receiver"] == "null"
    assert config["receivers"] == [{"name": "null"}]
    json.dumps(config)  # written as JSON, which Alertmanager reads as YAML


def test_the_cloud_config_names_alertmanager_and_its_host_label():
    config = lab.render_cloud_config(NOVA, {"alertmanager": {"url": "http://127.0.0.1:9093"}})
    assert config["alertmanager"] == {"url": "http://127.0.0.1:9093", "host_label": "instance"}
    assert "alertmanager" not in lab.render_cloud_config(NOVA, {})
    state.update_endpoints("alertmanager", {"url": "http://127.0.0.1:9093"})
    path = lab.write_cloud_config(NOVA)
    assert lab.cloud_configs()["embedded"]["alertmanager"]["url"] == "http://127.0.0.1:9093"
    state.update_endpoints("alertmanager", None)
    lab.write_cloud_config(NOVA)
    assert "alertmanager" not in json.loads(path.read_text())


def test_up_with_alertmanager_alone_starts_it_then_names_it(monkeypatch):
    calls = []
    monkeypatch.setattr(lab, "up", lambda **kw: {"nova": dict(NOVA, hosts=["c1"])})
    monkeypatch.setattr(lab.prometheus, "up", lambda hosts: calls.append("prometheus"))
    monkeypatch.setattr(lab.alertmanager, "up", lambda: calls.append("am") or {"url": "a"})
    monkeypatch.setattr(lab, "write_cloud_config", lambda nova: calls.append("config"))
    assert lab.up_with(["alertmanager"])["alertmanager"] == {"url": "a"}
    assert calls == ["am", "config"]


def test_the_command_offers_alertmanager():
    assert "alertmanager" in cli.OPTIONAL_SERVICES == lab.OPTIONAL_SERVICES
    args = cli.parser().parse_args(["up", "--with", "alertmanager"])
    assert args.with_services == ["alertmanager"]


def test_a_lab_without_it_says_so():
    assert not alertmanager.running()
    with pytest.raises(RuntimeError, match="not running"):
        alertmanager.silences("h")
