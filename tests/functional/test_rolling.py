# SPDX-License-Identifier: Apache-2.0
"""Rolling maintenance on the lab: real Mistral, real Nova.

Each test runs ``selfheal.maintenance.rolling_maintenance`` through Mistral's
API as an operator would, watches Nova from a thread while it runs (hosts in
maintenance, server states, server group members disrupted), acts as the
owner of some instances (it moves them itself), and checks Nova afterwards:
where each server is, its state, its migration records.
"""

import threading
import time
import uuid

import pytest

from selfheal_actions.common import markers
from selfheal_lab import mistral_client
from tests.functional.servers import host_of
from tests.functional.servers import moves

pytestmark = pytest.mark.usefixtures("delete_new_servers")

ROLLING = "selfheal.maintenance.rolling_maintenance"
POLICY = "selfheal:maintenance"
WORK = """---
version: '2.0'
{name}:
  input:
    - host
  tasks:
    work:
      action: std.echo output=<% $.host %>
"""


def in_maintenance(svc):
    return svc.status == "disabled" and markers.kind_of(svc.disabled_reason) == "maintenance"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Watcher(threading.Thread):
    """Every 0.3 s: which of ``hosts`` are in maintenance, each server's
    host and status, and how many members of ``group`` are disrupted
    (moving, or stopped). ``owner_moves``: server id -> (host, target): the
    owner live-migrates it to ``target`` once ``host`` is in maintenance."""

    def __init__(self, cloud, hosts, servers, group=(), owner_moves=None):
        super().__init__(daemon=True)
        self.nova, self.hosts, self.servers = cloud.nova(), list(hosts), list(servers)
        self.group, self.owner_moves = list(group), dict(owner_moves or {})
        self.peak_hosts, self.peak_group = 0, 0
        self.seen = {s: set() for s in self.servers}  # (host, status) pairs
        self.owner_moved = []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            maintained = {s.host for s in self.nova.services.list(binary="nova-compute")
                          if s.host in self.hosts and in_maintenance(s)}
            self.peak_hosts = max(self.peak_hosts, len(maintained))
            servers = {s.id: s for s in self.nova.servers.list(
                search_opts={"all_tenants": True}) if s.id in self.seen}
            for sid, server in servers.items():
                self.seen[sid].add((host_of(server), server.status))
            disrupted = [sid for sid in self.group if sid in servers and (
                servers[sid].status != "ACTIVE"
                or getattr(servers[sid], "OS-EXT-STS:task_state") is not None)]
            self.peak_group = max(self.peak_group, len(disrupted))
            for sid, (host, target) in list(self.owner_moves.items()):
                server = servers.get(sid)
                if host in maintained and server is not None and host_of(server) == host:
                    self.nova.servers.live_migrate(sid, target, "auto")
                    self.owner_moved.append(sid)
                    del self.owner_moves[sid]
            time.sleep(0.3)


def test_three_hosts_one_at_a_time_each_instance_by_its_policy(cloud, make_hosts):
    h1, h2, h3, spare = make_hosts(4)
    work = unique("rolling_work")
    mistral_client.create_workflows(cloud.mistral_url, WORK.format(name=work))
    ids = {
        "live": cloud.boot("live", h1),
        "cold": cloud.boot("cold", h1, metadata={POLICY: "cold_migrate"}),
        "stopstart": cloud.boot("stopstart", h1, metadata={POLICY: "stop_start"}),
        "owner-meta": cloud.boot("owner-meta", h1, metadata={POLICY: "leave_to_owner"}),
        "owner-listed": cloud.boot("owner-listed", h2),
        "owner-lazy": cloud.boot("owner-lazy", h2, metadata={POLICY: "leave_to_owner"}),
        "plain": cloud.boot("plain", h3),
    }
    watcher = Watcher(cloud, [h1, h2, h3], ids.values(), owner_moves={
        ids["owner-meta"]: (h1, spare), ids["owner-listed"]: (h2, spare)})
    watcher.start()
    try:
        execution = cloud.run_workflow(ROLLING, {
            "hosts": [h1, h2, h3], "name": unique("roll"), "work_workflow": work,
            "owner_instances": [ids["owner-listed"]], "owner_window": 8,
            "timeout": 240}, timeout=600)
    finally:
        watcher.stopped.set()
        watcher.join()

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    assert execution["output"]["status"]["done"] == [h1, h2, h3]
    assert watcher.peak_hosts == 1  # one host at a time
    for host in (h1, h2, h3):
        svc = cloud.service(host)
        assert svc.status == "enabled" and svc.state == "up" and not svc.disabled_reason
    servers = {name: cloud.server(sid) for name, sid in ids.items()}
    assert {s.status for s in servers.values()} == {"ACTIVE"}
    # live_migrate (default) and the owner who did not move: live migrations only
    for name in ("live", "owner-lazy", "plain"):
        assert moves(cloud, ids[name]), name
        assert {m.status for m in moves(cloud, ids[name])} == {"completed"}, name
        assert moves(cloud, ids[name], "migration") == [], name
    # cold_migrate: cold migrations, confirmed, never a live one
    assert {m.status for m in moves(cloud, ids["cold"], "migration")} == {"confirmed"}
    assert moves(cloud, ids["cold"]) == []
    # stop_start: stopped on its host during the maintenance, running there after
    assert host_of(servers["stopstart"]) == h1
    assert (h1, "SHUTOFF") in watcher.seen[ids["stopstart"]]
    assert moves(cloud, ids["stopstart"]) == moves(cloud, ids["stopstart"], "migration") == []
    assert "selfheal:stopped_for_maintenance" not in servers["stopstart"].metadata
    # the owners' own moves: one each, theirs (to the spare), none by the flow
    assert sorted(watcher.owner_moved) == sorted([ids["owner-meta"], ids["owner-listed"]])
    for name in ("owner-meta", "owner-listed"):
        assert [m.dest_compute for m in moves(cloud, ids[name])] == [spare], name
        assert host_of(servers[name]) == spare
    # the work workflow ran once per host, with the host as input
    runs = [e for e in mistral_client.list_executions(cloud.mistral_url, work)]
    assert sorted(e["input"]["host"] for e in runs) == sorted([h1, h2, h3])


def test_not_enough_room_is_refused_before_anything_moves(cloud, make_hosts):
    h1, h2, h3 = make_hosts(3)
    nova = cloud.nova()
    # the fake hypervisor has 800000 MB of RAM: one of these fills a host
    big = next((f for f in nova.flavors.list(is_public=None) if f.name == "selfheal-half"),
               None) or nova.flavors.create("selfheal-half", 400000, 1, 1)
    hogs = {h: nova.servers.create(f"hog-{h}", cloud.image_id(), big.id, nics="none",
                                   availability_zone=f"nova:{h}").id for h in (h1, h2, h3)}
    cloud.wait_servers(list(hogs.values()), "ACTIVE")
    name = unique("roll")

    execution = cloud.run_workflow(ROLLING, {"hosts": [h1, h2], "name": name,
                                             "target_hosts": [h3]}, timeout=300)

    assert execution["state"] == "ERROR"
    output = execution["output"]
    assert output["failed_step"] == "plan"
    error = output["error"]
    assert error["reason"] == "not_enough_room"
    assert f"not enough room to empty '{h1}': no other host fits hog-{h1}" in error["message"]
    assert "400000 MB RAM" in error["message"]
    assert f"Free on the targets: {h3}: " in error["message"]
    room = {r["host"]: r for r in error["details"]["rooms"]}
    assert room[h1]["targets"][h3]["memory_mb"] < 400000
    for host in (h1, h2, h3):
        assert cloud.service(host).status == "enabled"
    for sid in hogs.values():
        assert moves(cloud, sid) == [] and moves(cloud, sid, "migration") == []
    assert mistral_client.get_environment(cloud.mistral_url,
                                          f"selfheal-rolling-{name}") is None


def host_state(cloud, name, host):
    found = mistral_client.get_environment(cloud.mistral_url,
                                           f"selfheal-rolling-{name}--{host}")
    return (found or {}).get("variables") or {}


def wait_for_pause(cloud, name, host, other_than=None, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = host_state(cloud, name, host)
        if state.get("resume") and state["resume"] != other_than:
            return state
        assert state.get("state") != "failed", state
        time.sleep(0.5)
    raise TimeoutError(f"{host} never waited for the operator: {state}")


def end_pause(cloud, state):
    action_id = state["resume"].split()[2]
    mistral_client._request("PUT", mistral_client._url(
        cloud.mistral_url, f"/action_executions/{action_id}"),
        {"state": "SUCCESS", "output": "{}"})


def test_killed_mid_way_a_rerun_continues_and_moves_nothing_twice(cloud, make_hosts):
    h1, h2, spare = make_hosts(3)
    ids = [cloud.boot("a", h1), cloud.boot("b", h1), cloud.boot("c", h2)]
    name = unique("roll")
    rolling_input = {"hosts": [h1, h2], "name": name, "timeout": 240}
    first = cloud.start_workflow(ROLLING, rolling_input)
    paused = wait_for_pause(cloud, name, h1)
    # while it runs, the state is readable: h1 in the work, h2 waiting
    assert paused["state"] == "working"
    assert paused["resume"].startswith("mistral action-execution-update ")
    listed = mistral_client.get_environment(cloud.mistral_url, f"selfheal-rolling-{name}--{h1}")
    assert listed["description"] == f"working: waiting for the operator: {paused['resume']}"
    assert host_state(cloud, name, h2) == {}
    # killed: the operator stops the execution
    mistral_client._request("PUT", mistral_client._url(
        cloud.mistral_url, f"/executions/{first['id']}"), {"state": "ERROR"})
    assert cloud.wait_workflow(first["id"], timeout=60)["state"] == "ERROR"

    second = cloud.start_workflow(ROLLING, rolling_input)
    again = wait_for_pause(cloud, name, h1, other_than=paused["resume"])
    assert again["resumed_from"] == "working"
    end_pause(cloud, again)
    end_pause(cloud, wait_for_pause(cloud, name, h2))
    done = cloud.wait_workflow(second["id"], timeout=300)

    assert done["state"] == "SUCCESS", done.get("output") or done["state_info"]
    assert done["output"]["status"]["done"] == [h1, h2]
    assert done["output"]["plan"]["resumed"] is True
    for sid in ids:
        # nothing moved twice: one move per host it was on when that host's turn came
        sources = [m.source_compute for m in moves(cloud, sid)]
        assert sources and len(sources) == len(set(sources)), (sid, sources)
        assert cloud.server(sid).status == "ACTIVE"
    assert {m.source_compute for sid in ids[:2] for m in moves(cloud, sid)} >= {h1}
    for host in (h1, h2):
        assert cloud.service(host).status == "enabled"


def test_anti_affinity_group_never_more_than_one_member_disrupted(cloud, make_hosts):
    h1, h2, h3 = make_hosts(3)
    nova = cloud.nova()
    group = nova.server_groups.create(name=unique("web"), policy="anti-affinity")
    flavor = nova.flavors.find(name="m1.tiny")
    members = []
    for host in (h1, h2, h3):
        # the member on h1 is stopped for its host's maintenance (stop_start):
        # disrupted until h1 is back, so the others must wait for it
        meta = {POLICY: "stop_start"} if host == h1 else {}
        members.append(nova.servers.create(
            f"web-{host}", cloud.image_id(), flavor.id, nics="none", meta=meta,
            availability_zone=f"nova:{host}", scheduler_hints={"group": group.id}).id)
    cloud.wait_servers(members, "ACTIVE")
    name = unique("roll")
    watcher = Watcher(cloud, [h1, h2, h3], members, group=members)
    watcher.start()
    try:
        # all three hosts at once: only the group limit keeps the members apart
        execution = cloud.start_workflow(ROLLING, {"hosts": [h1, h2, h3], "name": name,
                                                   "k": 3, "timeout": 300})
        ended = set()
        deadline = time.monotonic() + 420
        while len(ended) < 3 and time.monotonic() < deadline:
            for host in (h1, h2, h3):
                state = host_state(cloud, name, host)
                if host not in ended and state.get("resume"):
                    end_pause(cloud, state)
                    ended.add(host)
            time.sleep(0.5)
        done = cloud.wait_workflow(execution["id"], timeout=300)
    finally:
        watcher.stopped.set()
        watcher.join()
        nova.server_groups.delete(group.id)

    assert done["state"] == "SUCCESS", done.get("output") or done["state_info"]
    assert watcher.peak_hosts == 3  # the hosts were in maintenance together
    assert watcher.peak_group == 1, watcher.peak_group
    assert (h1, "SHUTOFF") in watcher.seen[members[0]]
    for sid in members[1:]:
        assert {m.status for m in moves(cloud, sid)} == {"completed"}
    hosts = [host_of(cloud.server(sid)) for sid in members]
    assert len(set(hosts)) == 3 and hosts[0] == h1
    assert {cloud.server(sid).status for sid in members} == {"ACTIVE"}


def test_a_policy_typo_refuses_the_host_before_anything_changes(cloud, make_hosts):
    host, _ = make_hosts(2)
    good = cloud.boot("good", host)
    typo = cloud.boot("typo", host, metadata={POLICY: "live-migrate"})

    execution = cloud.run_workflow("selfheal.maintenance.start_maintenance", {"host": host})

    assert execution["state"] == "ERROR"
    assert execution["output"]["failed_step"] == "plan"
    error = execution["output"]["error"]
    assert error["reason"] == "invalid_instance_policy"
    assert f"typo ({typo}): metadata selfheal:maintenance='live-migrate'" in error["message"]
    assert cloud.service(host).status == "enabled"
    for sid in (good, typo):
        assert host_of(cloud.server(sid)) == host and moves(cloud, sid) == []
