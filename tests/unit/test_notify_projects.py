# SPDX-License-Identifier: Apache-2.0
"""Project notifications of planned maintenance and the projects' replies,
on the fake Nova and a fake Zaqar (no Keystone: X-Project-ID)."""

import hashlib

import pytest

from selfheal_actions.common import clients
from selfheal_actions.maintenance import notify
from selfheal_actions.maintenance import projects
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.fake_zaqar import FakeZaqar
from tests.unit.test_fencing import Context

HOST = "h0"
Q = projects.DEFAULT_QUEUE


def owned(uuid, project, host=HOST):
    found = server(uuid, host=host)
    found["tenant_id"] = project
    return found


@pytest.fixture
def nova(use_fake):
    return use_fake(FakeNova(
        servers=[owned("a1", "proj-a"), owned("a2", "proj-a"), owned("b1", "proj-b"),
                 owned("a3", "proj-a", host="h1"), owned("c1", "proj-c", host="h1")],
        services=[service(HOST), service("h1")]))


@pytest.fixture
def zaqar(monkeypatch):
    fake = FakeZaqar()
    monkeypatch.setattr(clients, "session_for",
                        lambda context, kind: (fake, "http://zaqar:8888", None))
    return fake


def tell(**kwargs):
    kwargs.setdefault("host", HOST)
    return notify.NotifyProjectsAction(**kwargs).run(Context())


def replies(**kwargs):
    return notify.ReadProjectRepliesAction(**kwargs).run(Context())


def test_host_id_is_novas_hostid_for_that_project():
    # nova.utils.generate_hostid: sha224 of project id + host name
    assert projects.host_id("proj-a", "h0") == hashlib.sha224(b"proj-ah0").hexdigest()
    assert projects.host_id("proj-a", "h0") != projects.host_id("proj-b", "h0")


def test_each_project_gets_its_own_instances_and_host_id_on_its_own_queue(nova, zaqar):
    result = tell(lead_time=600, session_id="mnt-1")
    assert result.error is None, result.error
    assert result.data["affected"] == {"proj-a": ["a1", "a2"], "proj-b": ["b1"]}
    (body_a,) = zaqar.bodies("proj-a", Q)
    (body_b,) = zaqar.bodies("proj-b", Q)
    assert body_a["instance_ids"] == ["a1", "a2"] and body_b["instance_ids"] == ["b1"]
    assert body_a["host_id"] == projects.host_id("proj-a", HOST)
    assert body_b["host_id"] == projects.host_id("proj-b", HOST)
    assert HOST not in str(body_a)  # the host's name never reaches a project
    assert body_a["state"] == "MAINTENANCE" and body_a["lead_time"] == 600
    assert body_a["reply_by"] == body_a["planned_start"] == result.data["planned_start"]
    assert body_a["reply"] == {"queue": Q, "own_action": {
        "reply": "own_action", "session_id": "mnt-1", "instance_ids": ["a1", "a2"]}}
    # a project without instances on the host hears nothing
    assert zaqar.bodies("proj-c", Q) == []
    assert {p for _, _, p in zaqar.requests} == {"proj-a", "proj-b"}
    assert result.data["projects"]["proj-a"]["outcome"] == "posted"
    assert len(result.data["changes"]) == 2


def test_a_rerun_posts_nothing_twice_and_a_new_state_is_posted(nova, zaqar):
    tell(session_id="mnt-1")
    again = tell(session_id="mnt-1")
    assert again.data["changed"] is False
    assert {e["outcome"] for e in again.data["projects"].values()} == {"already_posted"}
    assert len(zaqar.bodies("proj-a", Q)) == 1
    affected = again.data["affected"]
    nova.servers.clear()  # drained: the host is empty now
    done = tell(session_id="mnt-1", state="MAINTENANCE_COMPLETE", projects=affected)
    assert [b["state"] for b in zaqar.bodies("proj-a", Q)] == ["MAINTENANCE",
                                                                "MAINTENANCE_COMPLETE"]
    assert zaqar.bodies("proj-b", Q)[-1]["instance_ids"] == ["b1"]
    assert done.data["projects"]["proj-b"]["outcome"] == "posted"


def test_dry_run_posts_nothing(nova, zaqar):
    result = tell(dry_run=True)
    assert {e["outcome"] for e in result.data["projects"].values()} == {"would_post"}
    assert zaqar.queues == {}
    assert result.data["changed"] is False


def test_a_project_that_cannot_be_reached_is_reported_and_the_others_told(nova, zaqar):
    zaqar.refuse.add("proj-b")
    result = tell()
    assert result.error is None
    assert result.data["not_notified"] == ["proj-b"]
    assert result.data["projects"]["proj-b"]["reason"] == projects.NO_ACCESS
    assert result.data["projects"]["proj-a"]["outcome"] == "posted"


def test_own_action_replies_name_the_owner_instances_of_that_project_only(nova, zaqar):
    told = tell(session_id="mnt-1").data
    zaqar.reply("proj-a", Q, {"reply": "own_action", "session_id": "mnt-1",
                              "instance_ids": ["a2", "b1", "zz"]})
    zaqar.reply("proj-a", Q, {"reply": "own_action", "session_id": "older",
                              "instance_ids": ["a1"]})
    zaqar.reply("proj-a", Q, "free text")
    result = replies(projects=told["affected"], session_id="mnt-1")
    assert result.error is None, result.error
    # b1 belongs to proj-b: proj-a cannot take it; the other session does not count
    assert result.data["owner_instances"] == ["a2"]
    assert result.data["projects"]["proj-a"] == {"own_action": ["a2"], "ignored": ["b1", "zz"]}
    assert result.data["projects"]["proj-b"] == {"own_action": [], "ignored": []}
    # reading changes nothing: the same answer again
    assert replies(projects=told["affected"], session_id="mnt-1").data == result.data


def test_many_messages_are_read_page_by_page(nova, zaqar):
    told = tell(session_id="mnt-1").data
    for i in range(45):
        zaqar.reply("proj-b", Q, {"note": i})
    zaqar.reply("proj-b", Q, {"reply": "own_action", "session_id": "mnt-1",
                              "instance_ids": ["b1"]})
    assert replies(projects=told["affected"], session_id="mnt-1").data["owner_instances"] == [
        "b1"]


def test_an_unreadable_queue_is_listed(nova, zaqar):
    zaqar.refuse.add("proj-a")
    result = replies(projects={"proj-a": ["a1"]}, session_id="s")
    assert result.data["unread"] == ["proj-a"] and result.data["owner_instances"] == []


@pytest.mark.parametrize("kwargs, fragment", [
    ({"state": "DONE"}, "'state'"),
    ({"lead_time": -1}, "'lead_time'"),
    ({"queue": "no spaces"}, "'queue'"),
    ({"projects": {"p": "a1"}}, "'projects'"),
    ({"host": ""}, "'host'"),
])
def test_bad_input_changes_nothing(nova, zaqar, kwargs, fragment):
    result = tell(**kwargs)
    assert result.error["reason"] == "invalid_input" and fragment in result.error["message"]
    assert zaqar.requests == []


def test_replies_need_the_projects():
    result = replies(projects=None)
    assert result.error["reason"] == "invalid_input"


def test_with_keystone_each_project_is_reached_with_the_token_rescoped_to_it(
        nova, monkeypatch):
    """The caller's token re-scoped per project (keystoneauth v3.Token); a
    project the caller has no role on is not_notified, the others are told."""
    from keystoneauth1 import exceptions as ks_exc
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    zaqar = FakeZaqar()
    scoped = []

    class Session:
        def __init__(self, auth, verify=True, timeout=None):
            self.project = auth.project_id
            assert auth.auth_url == "http://keystone:5000/v3"
            scoped.append(self.project)

        def get_endpoint(self, **kwargs):
            if self.project == "proj-b":
                raise ks_exc.Unauthorized("no role on proj-b")
            return "http://zaqar:8888"

        def request(self, url, method, headers=None, **kwargs):
            # Zaqar behind Keystone takes the project from the token
            return zaqar.request(url, method, headers=dict(headers, **{
                "X-Project-ID": self.project}), **kwargs)

    monkeypatch.setattr(ks_session, "Session", Session)
    monkeypatch.setattr(v3, "Token", lambda auth_url, token, project_id: type(
        "Plugin", (), {"auth_url": auth_url, "project_id": project_id})())

    class Security:
        auth_token = "admin-token"
        auth_uri = "http://keystone:5000/v3"
        region_name = None

    class WithToken(Context):
        security = Security

    monkeypatch.delenv(clients.CLOUD_CONFIG_ENV, raising=False)
    result = notify.NotifyProjectsAction(host=HOST, session_id="s").run(WithToken())
    assert result.error is None, result.error
    assert sorted(scoped) == ["proj-a", "proj-b"]
    assert result.data["projects"]["proj-a"]["outcome"] == "posted"
    assert zaqar.bodies("proj-a", Q)[0]["instance_ids"] == ["a1", "a2"]
    assert result.data["not_notified"] == ["proj-b"]
    assert result.data["projects"]["proj-b"]["reason"] == projects.NO_ACCESS
    assert zaqar.bodies("proj-b", Q) == []
