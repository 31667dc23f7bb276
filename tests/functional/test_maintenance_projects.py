# SPDX-License-Identifier: Apache-2.0
"""Project notifications of planned maintenance in the authenticated lab.

Keystone with two tenant projects (demo and demo2, ``keystone.TENANTS``)
owning instances on the same hosts, Zaqar behind Keystone (queues per
project), and the authenticated Mistral, which hands the admin's token to
the actions. selfheal.maintenance.notify_projects posts into each
project's own queue; each project reads its queue with its own user's
token, as a tenant application would, and replies there.
"""

import time

import pytest

from selfheal_actions.maintenance import projects
from selfheal_lab import http_json
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import zaqar_client
from selfheal_lab.services import keystone

pytestmark = pytest.mark.functional

WF = "selfheal.maintenance.notify_projects"
Q = projects.DEFAULT_QUEUE


@pytest.fixture(scope="module")
def auth_lab(lab_info):
    return lab.up_authenticated(with_messaging=True)


@pytest.fixture(scope="module")
def tenants(auth_lab):
    """``{project name: {"id", "token"}}`` of the two tenant projects."""
    found = {}
    for tenant in keystone.TENANTS:
        token, body = keystone.token(tenant["user"], tenant["project"])
        found[tenant["project"]] = {"id": body["project"]["id"], "token": token}
    return found


def tenant_nova(cloud, project_id):
    """A novaclient acting in ``project_id`` through the box's no-auth door
    (the servers it boots belong to that project)."""
    from keystoneauth1 import session
    from keystoneauth1 import token_endpoint
    from novaclient import client

    url = cloud.nova_info["compute_url"]
    headers = dict(cloud.nova_info["headers"], **{"X-Auth-Project-Id": project_id})
    sess = session.Session(auth=token_endpoint.Token(url, "lab"), additional_headers=headers)
    return client.Client("2.96", session=sess, endpoint_override=url)


def boot_as(cloud, project_id, name, host):
    nova = tenant_nova(cloud, project_id)
    flavor = nova.flavors.find(name="m1.tiny")
    server = nova.servers.create(name, cloud.image_id(), flavor.id, nics="none",
                                 availability_zone=f"nova:{host}")
    cloud.wait_servers([server.id], "ACTIVE")
    return server.id


def ours(bodies, session_id):
    return [b for b in bodies if isinstance(b, dict) and b.get("session_id") == session_id
            and b.get("type") == projects.MESSAGE_TYPE]


def test_behind_keystone_the_header_does_not_pick_the_project(auth_lab, tenants):
    # why selfheal re-scopes the token: keystonemiddleware drops a client's
    # X-Project-ID, so the admin's post lands in the admin's own project
    admin_token = keystone.token()[0]
    queue = f"header-check-{int(time.time())}"
    http_json.call(auth_lab["zaqar"]["keystone_url"], "POST", f"/v2/queues/{queue}/messages",
                   {"messages": [{"body": {"probe": 1}, "ttl": 60}]}, what="Zaqar",
                   headers={"X-Auth-Token": admin_token, "Client-ID": projects.CLIENT_ID,
                            "X-Project-ID": tenants["demo"]["id"]})
    assert zaqar_client.messages(queue, token=tenants["demo"]["token"]) == []
    assert zaqar_client.messages(queue, token=admin_token) == [{"probe": 1}]


def test_each_project_hears_of_its_own_instances_only_and_its_reply_is_read(
        auth_lab, tenants, cloud, make_hosts):
    host, _ = make_hosts(2)
    a1 = boot_as(cloud, tenants["demo"]["id"], "a1", host)
    a2 = boot_as(cloud, tenants["demo"]["id"], "a2", host)
    b1 = boot_as(cloud, tenants["demo2"]["id"], "b1", host)
    url = auth_lab["mistral"]["url"]
    token = keystone.token()[0]

    execution = mistral_client.create_execution(url, WF, {"host": host, "lead_time": 8},
                                                token=token)
    # demo reads its queue with its own token and moves a2 itself
    deadline = time.monotonic() + 60
    while not ours(zaqar_client.messages(Q, token=tenants["demo"]["token"]), execution["id"]):
        assert time.monotonic() < deadline, "no notification reached demo's queue"
        time.sleep(0.5)
    (note,) = ours(zaqar_client.messages(Q, token=tenants["demo"]["token"]), execution["id"])
    reply = dict(note["reply"]["own_action"], instance_ids=[a2, b1])  # b1 is not demo's
    zaqar_client.post(Q, reply, token=tenants["demo"]["token"])
    done = mistral_client.wait_execution(url, execution["id"], timeout=120, token=token)

    assert done["state"] == "SUCCESS", done.get("output") or done["state_info"]
    assert note["state"] == "MAINTENANCE" and note["lead_time"] == 8
    assert sorted(note["instance_ids"]) == sorted([a1, a2])
    assert note["host_id"] == projects.host_id(tenants["demo"]["id"], host)
    assert host not in str(note)
    # the host id is the one Nova shows demo for its servers
    server = tenant_nova(cloud, tenants["demo"]["id"]).servers.get(a1)
    assert server.hostId == note["host_id"]
    (other,) = ours(zaqar_client.messages(Q, token=tenants["demo2"]["token"]), execution["id"])
    assert other["instance_ids"] == [b1]
    assert other["host_id"] == projects.host_id(tenants["demo2"]["id"], host)
    assert a1 not in str(other) and a2 not in str(other)
    # the admin's own project holds none of it
    assert ours(zaqar_client.messages(Q, token=token), execution["id"]) == []
    output = done["output"]
    assert output["owner_instances"] == [a2]
    assert output["replies"][tenants["demo"]["id"]]["ignored"] == [b1]
    assert output["replies"][tenants["demo2"]["id"]] == {"own_action": [], "ignored": []}
    assert output["not_notified"] == []
