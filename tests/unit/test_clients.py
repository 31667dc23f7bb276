# SPDX-License-Identifier: Apache-2.0
import json

import pytest
from keystoneauth1 import token_endpoint
from keystoneauth1.identity import access as access_plugin
from mistral_lib.actions import context as mistral_context

from selfheal_actions.common import clients
from selfheal_actions.common.results import ActionFailure

TOKEN_BODY = {
    "catalog": [{"type": "compute", "name": "nova", "endpoints": [
        {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo",
         "url": "https://nova.example:8774/v2.1"}]}],
    "project": {"id": "p1", "name": "admin", "domain": {"id": "default"}},
    "user": {"id": "u1", "name": "admin", "domain": {"id": "default"}},
    "roles": [{"id": "r1", "name": "admin"}],
    "expires_at": "2099-01-01T00:00:00.000000Z",
    "methods": ["password"],
}


def keystone_context(**security):
    values = {"auth_token": "caller-token", "service_catalog": TOKEN_BODY,
              "auth_uri": "https://keystone.example/v3", "region_name": None}
    values.update(security)
    return mistral_context.ActionContext(
        security_ctx=mistral_context.SecurityContext(**values),
        execution_ctx=mistral_context.ExecutionContext(workflow_execution_id="exec-1"))


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(clients.CLOUD_CONFIG_ENV, raising=False)
    monkeypatch.delenv("SELFHEAL_COMPUTE_ENDPOINT", raising=False)


def test_keystone_path_uses_the_callers_token_and_catalog_without_rescoping():
    sess, endpoint, region = clients.session_for(keystone_context(region_name="RegionTwo"),
                                                 "compute")
    assert isinstance(sess.auth, access_plugin.AccessInfoPlugin)
    assert sess.auth.get_token(sess) == "caller-token"  # no request to Keystone
    assert endpoint is None  # the catalog decides
    assert region == "RegionTwo"
    url = sess.get_endpoint(service_type="compute", interface="public", region_name=region)
    assert url == "https://nova.example:8774/v2.1"


def test_insecure_and_cacert_come_from_the_context():
    sess, _, _ = clients.session_for(keystone_context(insecure=True), "compute")
    assert sess.verify is False
    sess, _, _ = clients.session_for(keystone_context(auth_cacert="/etc/ca.pem"), "compute")
    assert sess.verify == "/etc/ca.pem"


def test_without_token_the_explicit_endpoint_file_is_used(tmp_path, monkeypatch):
    path = tmp_path / "cloud.yaml"
    path.write_text(json.dumps({"endpoints": {"compute": "http://127.0.0.1:1/v2.1"},
                                "headers": {"X-Auth-User": "admin"}, "region_name": "R",
                                "verify": False}))
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(path))
    sess, endpoint, region = clients.session_for(mistral_context.ActionContext(
        security_ctx=mistral_context.SecurityContext()), "compute")
    assert isinstance(sess.auth, token_endpoint.Token)
    assert endpoint == "http://127.0.0.1:1/v2.1" and region == "R"
    assert sess.additional_headers == {"X-Auth-User": "admin"}
    assert sess.verify is False


def test_no_token_and_no_endpoint_says_what_to_configure():
    with pytest.raises(ActionFailure) as err:
        clients.session_for(None, "compute")
    assert err.value.reason == "configuration_error"
    assert clients.CLOUD_CONFIG_ENV in err.value.message


def test_unreadable_config_file_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, "/nonexistent/cloud.yaml")
    with pytest.raises(ActionFailure) as err:
        clients.session_for(None, "compute")
    assert err.value.reason == "configuration_error"
    assert "/nonexistent/cloud.yaml" in err.value.message


def test_execution_id_from_context():
    assert clients.execution_id(keystone_context()) == "exec-1"
    assert clients.execution_id(None) == "manual"


def test_evacuations_are_sent_at_2_94_so_nova_keeps_the_power_state():
    from novaclient import api_versions

    from selfheal_actions.common import compute

    sent = []

    class Servers:
        def evacuate(self, server_id, host=None):
            sent.append((server_id, host, client.api_version.get_string()))

    class Client:
        api_version = api_versions.APIVersion("2.96")
        servers = Servers()

    client = Client()
    api = compute.NovaApi(client)
    api.evacuate("srv-1", "host-b")
    assert sent == [("srv-1", "host-b", "2.94")]
    assert client.api_version.get_string() == "2.96"  # restored for every other call
    client.api_version = api_versions.APIVersion("2.60")
    api.evacuate("srv-2")
    assert sent[-1] == ("srv-2", None, "2.60")  # never raised above the negotiated one


def test_microversion_is_negotiated_once_per_endpoint(monkeypatch):
    from novaclient import api_versions

    from selfheal_actions.common import clients

    asked = []

    def discover(client, requested):
        asked.append(client.api_version.get_string())
        return api_versions.APIVersion("2.90")

    monkeypatch.setattr(api_versions, "discover_version", discover)
    monkeypatch.setattr(clients, "_NEGOTIATED", {})
    monkeypatch.setenv("SELFHEAL_COMPUTE_ENDPOINT", "http://nova.test:8774/v2.1")
    first = clients.nova(None)
    second = clients.nova(None)
    assert first.api_version.get_string() == second.api_version.get_string() == "2.90"
    assert asked == ["2.1"]  # the second action reused the answer
    monkeypatch.setenv("SELFHEAL_COMPUTE_ENDPOINT", "http://other.test:8774/v2.1")
    clients.nova(None)
    assert len(asked) == 2  # another cloud is asked itself
    monkeypatch.setattr(clients.time, "monotonic", lambda: 10 ** 9)  # expired
    monkeypatch.setenv("SELFHEAL_COMPUTE_ENDPOINT", "http://nova.test:8774/v2.1")
    clients.nova(None)
    assert len(asked) == 3


def test_every_session_has_a_timeout_shorter_than_the_claim_staleness(monkeypatch, tmp_path):
    from selfheal_actions.common import clients
    from selfheal_actions.common import host_claim

    config = tmp_path / "cloud.yaml"
    config.write_text("endpoints: {compute: 'http://nova:8774/v2.1'}\n")
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(config))
    sess, _, _ = clients.session_for(None, "compute")
    assert 0 < sess.timeout < host_claim.HostLock(None, "h", "o").stale_after
    config.write_text("endpoints: {compute: 'http://nova:8774/v2.1'}\ntimeout: 12\n")
    assert clients.session_for(None, "compute")[0].timeout == 12
