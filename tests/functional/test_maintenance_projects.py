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
from tests.functional.servers import host_of
from tests.functional.servers import moves

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


def states_of(bodies, session_id):
    return [(b["state"], sorted(b["instance_ids"])) for b in ours(bodies, session_id)]


def test_start_maintenance_tells_the_projects_leaves_an_owners_instance_and_finish_says_complete(
        auth_lab, tenants, cloud, make_hosts):
    host, _ = make_hosts(2)
    demo, demo2 = tenants["demo"], tenants["demo2"]
    a1 = boot_as(cloud, demo["id"], "a1", host)
    a2 = boot_as(cloud, demo["id"], "a2", host)
    b1 = boot_as(cloud, demo2["id"], "b1", host)
    url = auth_lab["mistral"]["url"]
    token = keystone.token()[0]

    execution = mistral_client.create_execution(
        url, "selfheal.maintenance.start_maintenance",
        {"host": host, "notify_projects": True, "lead_time": 8, "owner_window": 30,
         "timeout": 300}, token=token)
    session = execution["id"]
    # demo hears of it first, answers "own action" for a2 and scales it in
    deadline = time.monotonic() + 60
    while not ours(zaqar_client.messages(Q, token=demo["token"]), session):
        assert time.monotonic() < deadline, "no notification reached demo's queue"
        time.sleep(0.5)
    (note,) = ours(zaqar_client.messages(Q, token=demo["token"]), session)
    zaqar_client.post(Q, dict(note["reply"]["own_action"], instance_ids=[a2]),
                      token=demo["token"])
    tenant_nova(cloud, demo["id"]).servers.delete(a2)
    done = mistral_client.wait_execution(url, session, timeout=360, token=token)

    assert done["state"] == "SUCCESS", done.get("output") or done["state_info"]
    output = done["output"]
    assert output["notifications"]["owner_instances"] == [a2]
    by_id = {i["id"]: i for i in output["drain"]["instances"]}
    # the owner scaled a2 in within the reply window, before the drain
    # began: the flow never touched it, and says where it went
    assert a2 not in by_id and output["drain"]["owner_instances_not_on_host"] == [a2]
    for server_id in (a1, b1):  # no reply: the default, a verified live migration
        assert by_id[server_id]["outcome"] == "migrated", by_id[server_id]
        server = cloud.server(server_id)
        assert host_of(server) != host and server.status == "ACTIVE"
        assert len(moves(cloud, server_id)) == 1
    # each project hears of its own instances only: before and once empty
    assert states_of(zaqar_client.messages(Q, token=demo["token"]), session) == [
        ("MAINTENANCE", sorted([a1, a2])), ("IN_MAINTENANCE", sorted([a1, a2]))]
    assert states_of(zaqar_client.messages(Q, token=demo2["token"]), session) == [
        ("MAINTENANCE", [b1]), ("IN_MAINTENANCE", [b1])]

    finished = mistral_client.create_execution(
        url, "selfheal.maintenance.finish_maintenance",
        {"host": host, "notifications": output["notifications"]}, token=token)
    finished = mistral_client.wait_execution(url, finished["id"], timeout=120, token=token)

    assert finished["state"] == "SUCCESS", finished.get("output") or finished["state_info"]
    for tenant, ids in ((demo, sorted([a1, a2])), (demo2, [b1])):
        assert states_of(zaqar_client.messages(Q, token=tenant["token"]), session)[-1] == (
            "MAINTENANCE_COMPLETE", ids)
