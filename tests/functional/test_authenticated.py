# SPDX-License-Identifier: Apache-2.0
"""The host failure flow in the authenticated lab: real Keystone tokens.

Mistral runs with ``auth_enable = True`` against the lab's Keystone and hands
the caller's token and token body to the actions; they find Nova in that
token's catalog: the box's Keystone door, where keystonemiddleware validates
every token and Nova's default policy decides. The door records who made
each request (a hash of the token, never the token), so the tests check at
the service which identity each action used. The lab's own tools (boot,
fail a host, look) use the box's no-auth door, like an operator's console.
"""

import hashlib
import pathlib
import re

import pytest

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import keystone
from selfheal_lab.services import nova as nova_box
from tests.functional.servers import host_of

pytestmark = pytest.mark.functional

WF = "selfheal.host_failure.evacuate_host"
MUTATING = ("POST", "PUT", "DELETE", "PATCH")
# any Keystone fernet token, the trust-scoped ones Aodh, Zaqar and Heat get too
FERNET_TOKEN = re.compile(r"gAAAAA[A-Za-z0-9_=-]{60,}")


@pytest.fixture(scope="module")
def auth_lab(lab_info):
    return lab.up_authenticated()


@pytest.fixture(scope="module")
def used_tokens():
    """Every token the tests of this module sent (for the secrets check)."""
    return []


@pytest.fixture
def token_of(auth_lab, used_tokens):
    def issue(user, project):
        token = keystone.token(user, project)[0]
        used_tokens.append(token)
        return token

    return issue


def run_as(auth_lab, token, workflow_input, timeout=300):
    url = auth_lab["mistral"]["url"]
    execution = mistral_client.create_execution(url, WF, workflow_input, token=token)
    return mistral_client.wait_execution(url, execution["id"], timeout=timeout, token=token)


def door_requests(token):
    """What the Keystone door saw with this token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    return [r for r in nova_box.keystone_requests() if r["token_sha256"] == digest]


def test_the_catalog_leads_the_actions_to_the_keystone_door(auth_lab):
    _, body = keystone.token()
    catalog = {s["type"]: {e["url"] for e in s["endpoints"]} for s in body["catalog"]}
    assert catalog["compute"] == {auth_lab["nova"]["keystone_compute_url"]}
    assert catalog["workflowv2"] == {auth_lab["mistral"]["url"]}
    # the authenticated Mistral has no explicit endpoints: only the catalog
    config = pathlib.Path(auth_lab["mistral"]["config"])
    assert "auth_enable = True" in config.read_text()
    with pytest.raises(mistral_client.MistralAPIError) as err:
        mistral_client.list_executions(auth_lab["mistral"]["url"])
    assert err.value.status == 401


def test_admin_run_heals_with_the_callers_own_token(auth_lab, cloud, make_hosts, token_of):
    failed, _, _ = make_hosts(3)
    running = cloud.boot("running", failed)
    stopped = cloud.boot("stopped", failed, state="stopped")
    cloud.fail_host(failed)
    token = token_of("admin", "admin")

    execution = run_as(auth_lab, token, {"host": failed, "reason": "NIC down"})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    for server_id, status in ((running, "ACTIVE"), (stopped, "SHUTOFF")):
        server = cloud.server(server_id)
        assert host_of(server) != failed and server.status == status
    assert cloud.service(failed).forced_down is True
    # visible at the service: every change came with the caller's own token
    # (no service token, no re-scoped token), validated as the admin
    seen = door_requests(token)
    evacuations = [r for r in seen if r["route"] == "POST /servers/{id}/action"]
    assert len(evacuations) == 2 and all(r["status"] == 200 for r in evacuations)
    assert any(r["route"] == "PUT /os-services/{id}" for r in seen)
    assert {(r["user_name"], r["project_name"]) for r in seen} == {("admin", "admin")}
    assert all("admin" in r["roles"] for r in seen)


def test_the_watch_starts_the_heal_as_its_caller_through_the_catalogs_mistral(
        auth_lab, cloud, make_hosts, token_of):
    failed, spare, _ = make_hosts(3)
    server = cloud.boot("vm", failed)
    cloud.fail_host(failed)
    token = token_of("admin", "admin")
    url = auth_lab["mistral"]["url"]
    watch = mistral_client.create_execution(url, "selfheal.host_failure.watch", {
        "interval": 1, "period": 3, "samples": 2, "stale_after": 3,
        "max_failed_ratio": 0.9, "heal_input": {"target_hosts": [spare]}}, token=token)
    watch = mistral_client.wait_execution(url, watch["id"], timeout=120, token=token)
    assert watch["state"] == "SUCCESS", watch.get("output") or watch["state_info"]
    (started,) = watch["output"]["started"]
    assert started["host"] == failed
    heal = mistral_client.wait_execution(url, started["execution_id"], timeout=240,
                                         token=token)
    assert heal["state"] == "SUCCESS", heal.get("output") or heal["state_info"]
    assert host_of(cloud.server(server)) == spare
    # the heal the watch started acted with the watch's caller's token
    evacuations = [r for r in door_requests(token)
                   if r["route"] == "POST /servers/{id}/action"]
    assert len(evacuations) == 1 and evacuations[0]["user_name"] == "admin"


def test_member_run_is_forbidden_and_changes_nothing(auth_lab, cloud, make_hosts, token_of):
    failed, _, _ = make_hosts(3)
    server = cloud.boot("vm", failed)
    cloud.fail_host(failed)
    token = token_of(keystone.MEMBER["user"], keystone.MEMBER["project"])

    execution = run_as(auth_lab, token, {"host": failed})

    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == "forbidden", error
    assert error["details"]["missing_permission"] == "os_compute_api:os-services:list"
    assert "os_compute_api:os-services:list" in error["message"]
    assert error["details"]["user"] == "member" and error["changes"] == []
    svc = cloud.service(failed)
    assert svc.forced_down is False and svc.status == "enabled"
    assert host_of(cloud.server(server)) == failed and cloud.evacuations(server) == []
    seen = door_requests(token)
    assert seen and {r["user_name"] for r in seen} == {"member"}
    assert any(r["status"] == 403 for r in seen)
    assert not [r for r in seen if r["route"].split()[0] in MUTATING]


def test_tokens_and_passwords_never_reach_logs_or_outputs(auth_lab, token_of, used_tokens):
    # one more run per user so this test stands alone: a dry run each
    for user, project in (("admin", "admin"), ("member", "demo")):
        run_as(auth_lab, token_of(user, project), {"host": "no-such-host", "dry_run": True})
    url = auth_lab["mistral"]["url"]
    admin = keystone.token()[0]
    outputs = [str(row) for execution in mistral_client.list_executions(url, token=admin)
               for row in mistral_client.action_executions(url, execution["id"], token=admin)]
    assert outputs
    passwords = [keystone.password(user) for user in
                 ("admin", keystone.MEMBER["user"], *keystone.SERVICE_USERS)]
    secrets = list(used_tokens) + passwords
    services = state.lab_dir() / "services"
    logs = [p for p in services.rglob("*") if p.is_file() and p.suffix in (".log", ".json")
            and p.name not in ("passwords.json", "keystone-door.json")]
    logs.append(state.endpoints_path())
    assert any(p.name.endswith(".log") for p in logs)
    for text, where in [(o, "an action execution") for o in outputs] + [
            (p.read_text(errors="replace"), str(p)) for p in logs]:
        leaked = [i for i, secret in enumerate(secrets) if secret in text]
        assert not leaked, f"secret(s) {leaked} found in {where}"
        assert not FERNET_TOKEN.search(text), f"a Keystone token in {where}"
    # the files that hold a password (service configurations, the lab's
    # password file) are readable by this user only
    holders = [p for p in services.rglob("*") if p.is_file() and any(
        password in p.read_text(errors="replace") for password in passwords)]
    assert {services / "keystone" / "passwords.json", services / "nova" / "keystone-door.json",
            pathlib.Path(auth_lab["mistral"]["config"])} <= set(holders)
    for path in holders:
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
