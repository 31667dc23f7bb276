# SPDX-License-Identifier: Apache-2.0
"""The lab's Keystone (the base of the authenticated lab): real tokens for
the admin, the service users and a non-admin member, a catalog the lab
fills, and passwords kept out of the files tools read."""

import json
import os

import pytest

from selfheal_lab import processes
from selfheal_lab import state
from selfheal_lab.services import keystone

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def identity():
    yield keystone.up()
    if not os.environ.get("SELFHEAL_KEEP_LAB"):
        keystone.down()


def test_users_get_tokens_with_the_roles_the_lab_promises(identity):
    _, admin = keystone.token()
    assert {"admin", "member", "reader"} <= {r["name"] for r in admin["roles"]}
    assert admin["project"]["name"] == "admin"
    _, member = keystone.token("member", "demo")
    assert "admin" not in {r["name"] for r in member["roles"]}
    assert "member" in {r["name"] for r in member["roles"]}
    for user in keystone.SERVICE_USERS:
        _, body = keystone.token(user, "service")
        assert "admin" in {r["name"] for r in body["roles"]}
    with pytest.raises(keystone.KeystoneError) as err:
        keystone.token("member", "admin")  # not a member of it
    assert "HTTP 401" in str(err.value)


def test_catalog_endpoints_are_registered_once_and_replaced(identity):
    keystone.register_endpoint("selfheal-test", "selfheal-test", "http://127.0.0.1:9/a")
    keystone.register_endpoint("selfheal-test", "selfheal-test", "http://127.0.0.1:9/a")
    keystone.register_endpoint("selfheal-test", "selfheal-test", "http://127.0.0.1:9/b")
    _, body = keystone.token()
    [entry] = [s for s in body["catalog"] if s["type"] == "selfheal-test"]
    assert sorted(e["interface"] for e in entry["endpoints"]) == ["admin", "internal", "public"]
    assert {e["url"] for e in entry["endpoints"]} == {"http://127.0.0.1:9/b"}
    [identity_entry] = [s for s in body["catalog"] if s["type"] == "identity"]
    assert {e["url"] for e in identity_entry["endpoints"]} == {identity["url"]}


def test_up_again_keeps_it_and_passwords_stay_secret(identity):
    assert keystone.up()["pids"] == identity["pids"]
    secrets = [keystone.password(u) for u in ("admin", "member", *keystone.SERVICE_USERS)]
    readable = [state.endpoints_path().read_text(),
                processes.log_file(keystone.SERVICE, "server").read_text(errors="replace")]
    readable += [p.read_text(errors="replace")
                 for p in state.service_dir(keystone.SERVICE).glob("manage-*.log")]
    for text in readable:
        assert not any(secret in text for secret in secrets)
    assert oct(keystone.passwords_file().stat().st_mode & 0o777) == "0o600"
    assert json.loads(state.endpoints_path().read_text())["keystone"]["url"] == identity["url"]


def test_a_restart_keeps_the_url_that_the_catalog_and_services_name(identity):
    running = state.service_dir(keystone.SERVICE) / "running.json"
    recorded = json.loads(running.read_text())
    recorded["fingerprint"] = "outdated"  # as after a change of the lab's code
    running.write_text(json.dumps(recorded))
    again = keystone.up()
    assert again["pids"] != identity["pids"]
    assert again["url"] == identity["url"]
    assert keystone.token()[1]["project"]["name"] == "admin"
