# SPDX-License-Identifier: Apache-2.0
"""The unit tests' fake Nova pinned against the real one, call for call.

``tests/unit/fake_nova.py`` must behave like Nova 34 where selfheal's safety
depends on it. Each case here makes the same calls through
:class:`selfheal_actions.common.compute.NovaApi` on the lab's real Nova and
on the fake, and checks both answer alike: a second evacuation of a server
being rebuilt is accepted (no task-state compare-and-swap), changes-since
filters migrations on ``updated_at``, and evacuations sent through NovaApi
from a client at the newest microversion keep the server's power state.
"""

import time

from selfheal_actions.common import compute
from selfheal_actions.common import timeutil
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service


def fenced(cloud, host):
    cloud.fail_host(host)
    svc = cloud.service(host)
    cloud.nova().services.force_down(svc.id, True)


def fake_cloud(vm_state="active"):
    return FakeNova(servers=[server("s", host="dead", vm_state=vm_state)],
                    services=[service("dead", state="down", forced_down=True),
                              service("ok")], stops_evacuated=False)


def test_a_second_evacuation_of_a_server_being_rebuilt_is_accepted(cloud, make_hosts):
    dead, _, _ = make_hosts(3)
    server_id = cloud.boot("vm", dead)
    fenced(cloud, dead)
    api = compute.NovaApi(cloud.nova("2.96"))
    api.evacuate(server_id)
    api.evacuate(server_id)  # real Nova: no 409, no compare-and-swap
    real = [m for m in api.evacuations_from(dead) if m["instance_uuid"] == server_id]

    fake = fake_cloud()
    fake.evacuate("s")
    fake.evacuate("s")
    assert len(real) == 2 and len(fake.evacuations_from("dead")) == 2


def test_changes_since_hides_migrations_not_updated_since(cloud, make_hosts):
    dead, _, _ = make_hosts(3)
    server_id = cloud.boot("vm", dead)
    fenced(cloud, dead)
    api = compute.NovaApi(cloud.nova("2.96"))
    api.evacuate(server_id)
    cloud.wait_servers([server_id], "ACTIVE", timeout=60)
    finished = api.evacuations_from(dead)
    assert finished and all(m["status"] in ("done", "completed") for m in finished)
    time.sleep(2)
    since = timeutil.utcnow()
    real_all, real_since = len(api.evacuations_from(dead)), len(api.evacuations_from(
        dead, since=since))

    fake = fake_cloud()
    fake.evacuate("s")
    fake.evacuations_from("dead")  # -> pre-migrating -> done
    for migration in fake.migrations:
        migration["updated_at"] = "2026-01-01T00:00:00.000000"
    fake_all, fake_since = len(fake.evacuations_from("dead")), len(fake.evacuations_from(
        "dead", since=since))
    assert (real_all, real_since) == (fake_all, fake_since) == (1, 0)


def test_evacuations_through_novaapi_keep_the_power_state(cloud, make_hosts):
    dead, _, _ = make_hosts(3)
    running = cloud.boot("running", dead)
    stopped = cloud.boot("stopped", dead, state="stopped")
    fenced(cloud, dead)
    api = compute.NovaApi(cloud.nova("2.96"))  # the newest: evacuate is capped at 2.94
    api.evacuate(running)
    api.evacuate(stopped)
    cloud.wait_servers([running], "ACTIVE", timeout=60)
    cloud.wait_servers([stopped], "SHUTOFF", timeout=60)

    fake = fake_cloud()
    fake.servers["t"] = server("t", host="dead", vm_state="stopped")
    fake.evacuate("s")
    fake.evacuate("t")
    fake.evacuations_from("dead")
    assert fake.servers["s"]["OS-EXT-STS:vm_state"] == "active"
    assert fake.servers["t"]["OS-EXT-STS:vm_state"] == "stopped"
