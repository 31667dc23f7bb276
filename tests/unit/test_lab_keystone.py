# SPDX-License-Identifier: Apache-2.0
"""The lab's Keystone helpers when Keystone is not running."""

import pytest

from selfheal_lab import state
from selfheal_lab.services import heat
from selfheal_lab.services import keystone


def test_no_token_from_a_keystone_that_is_not_running(monkeypatch, tmp_path):
    # seen in a full run: `selfheal-lab status` raised a TypeError from the
    # authenticated Heat's probe once the lab's Keystone was gone
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    assert state.read_endpoints().get(keystone.KEY) is None
    with pytest.raises(keystone.KeystoneError, match="not running"):
        keystone.token()
    assert heat._probe({"authenticated": True,
                        "orchestration_url": "http://127.0.0.1:1/v1/$(project_id)s"}) is False


def test_a_lab_made_before_the_second_tenant_gets_its_password_and_keeps_the_others(
        monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    path = keystone.passwords_file()
    state.write_private(path, json.dumps({"admin": "kept", "member": "kept-too"}))
    assert keystone.password("member2")
    assert keystone.password("admin") == "kept" and keystone.password("member") == "kept-too"
    saved = json.loads(path.read_text())
    assert {t["user"] for t in keystone.TENANTS} | set(keystone.SERVICE_USERS) <= set(saved)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_the_lab_hashes_passwords_cheaply_and_rehashes_a_lab_made_before_once(
        monkeypatch, tmp_path):
    # a client that logs in per Nova call (Masakari 22) spent 0.5 s of the
    # one-process lab Keystone per call at bcrypt's default cost (12)
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    assert f"password_hash_rounds = {keystone.PASSWORD_HASH_ROUNDS}" in keystone._config_text(
        tmp_path)
    assert keystone.PASSWORD_HASH_ROUNDS == 4
    assert "[cache]\n" in keystone._config_text(tmp_path)
    calls = []
    monkeypatch.setattr(keystone, "REVOCATION_SECOND", 0)
    monkeypatch.setattr(keystone, "token", lambda *a: ("tok", {}))
    monkeypatch.setattr(keystone, "_find", lambda collection, name, tok: {"id": f"id-{name}"})
    monkeypatch.setattr(keystone, "_api", lambda method, path, body=None, admin_token=None:
                        calls.append((method, path, body["user"]["password"])))
    reset = keystone.match_password_hashes()
    assert reset[-1] == "admin" and set(reset) == set(keystone._passwords())
    assert calls[-1] == ("PATCH", "/users/id-admin", keystone.password("admin"))
    assert len(calls) == len(reset)
    assert keystone.match_password_hashes() == []  # once
    assert len(calls) == len(reset)
