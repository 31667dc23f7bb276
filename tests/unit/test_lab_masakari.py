# SPDX-License-Identifier: Apache-2.0
"""The lab's Masakari service: its options, its configuration, its wiring
(no process started; the real API and engine run in
tests/functional/test_lab_masakari.py)."""

import configparser
import json

import pytest

from selfheal_lab import cli
from selfheal_lab import lab
from selfheal_lab import state
from selfheal_lab.services import keystone
from selfheal_lab.services import masakari


def test_options_not_given_keep_masakaris_defaults():
    effective = masakari.check_options({"host_failure_recovery_threads": 10,
                                        "wait_period_after_service_update": 0})
    assert effective["host_failure_recovery_threads"] == 10
    assert effective["wait_period_after_service_update"] == 0
    # Masakari 22's own defaults for the rest
    assert effective["wait_period_after_evacuation"] == 90
    assert effective["notification_delay_max"] == 5
    assert effective["duplicate_notification_detection_interval"] == 180
    assert effective["evacuate_all_instances"] is True


@pytest.mark.parametrize("options, message", [
    ({"host_failure_recovery_thread": 3}, "unknown Masakari option"),  # a typo
    ({"check_interval": 1}, "unknown Masakari option"),
    ({"host_failure_recovery_threads": "10"}, "whole number"),
    ({"host_failure_recovery_threads": 0}, "at least 1"),
    ({"wait_period_after_service_update": -1}, "at least 0"),
    ({"verify_interval": True}, "whole number"),
    ({"evacuate_all_instances": "false"}, "True or False"),
    ({"service_disable_reason": "two\nlines"}, "one-line"),
])
def test_a_wrong_option_is_refused_before_anything_starts(monkeypatch, options, message):
    monkeypatch.setattr(masakari.venvs, "ensure", lambda name: pytest.fail("started"))
    with pytest.raises(ValueError, match=message):
        masakari.up(**options)


def test_the_configuration_is_keystone_all_the_way(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    state.update_endpoints(keystone.KEY, {"url": "http://127.0.0.1:5000/v3"})
    effective = masakari.check_options({"host_failure_recovery_threads": 25,
                                        "evacuate_all_instances": False,
                                        "service_disable_reason": "lab: host down"})
    text = masakari.config_text(8123, "rabbit://guest:guest@127.0.0.1:5672/v", "mysql://db",
                                "/venv/api-paste.ini", "http://127.0.0.1:5000/v3", effective)
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(text)
    default = conf["DEFAULT"]
    assert default["auth_strategy"] == "keystone"
    assert default["os_privileged_user_name"] == "masakari"
    assert default["os_privileged_user_password"] == keystone.password("masakari")
    assert default["os_privileged_user_auth_url"] == "http://127.0.0.1:5000/v3"
    assert default["nova_catalog_admin_info"] == "compute:nova:publicURL"
    assert default["host_failure_recovery_threads"] == "25"
    assert default["wait_period_after_service_update"] == "180"
    assert conf["host_failure"]["evacuate_all_instances"] == "false"
    assert conf["host_failure"]["service_disable_reason"] == "lab: host down"
    assert conf["keystone_authtoken"]["auth_type"] == "password"
    assert conf["keystone_authtoken"]["username"] == "masakari"
    assert conf["database"]["connection"] == conf["taskflow"]["connection"] == "mysql://db"


def test_a_service_user_added_later_gets_a_password_and_the_others_keep_theirs(
        monkeypatch, tmp_path):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    path = keystone.passwords_file()
    path.write_text(json.dumps({"admin": "kept", "nova": "also kept"}))  # an older lab
    assert keystone.password("masakari")
    assert keystone.password("admin") == "kept" and keystone.password("nova") == "also kept"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_masakari_needs_the_authenticated_lab_from_the_command(monkeypatch):
    monkeypatch.setattr(lab, "up_with", lambda *a, **kw: pytest.fail("started"))
    with pytest.raises(SystemExit, match="needs --auth"):
        cli.main(["up", "--with", "masakari"])


def test_up_with_masakari_starts_it_after_the_lab(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(lab, "up", lambda **kw: calls.append("core") or {
        "nova": {"compute_url": "n"}, "mistral": {"url": "m"}, "cloud_config": "c"})
    monkeypatch.setattr(lab.masakari, "up", lambda **options: calls.append(
        ("masakari", options)) or {"url": "http://127.0.0.1:1/v1"})
    monkeypatch.setattr(cli, "_up_authenticated", lambda lab, with_alarms: calls.append(
        "auth") or {})
    assert cli.main(["up", "--auth", "--with", "masakari"]) == 0
    assert calls == ["core", ("masakari", {}), "auth"]
    assert '"masakari": "http://127.0.0.1:1/v1"' in capsys.readouterr().out


def test_masakari_refuses_to_start_without_the_labs_nova(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    monkeypatch.setattr(masakari.venvs, "ensure", lambda name: pytest.fail("started"))
    with pytest.raises(RuntimeError, match="needs the lab's Nova"):
        masakari.up()
