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
