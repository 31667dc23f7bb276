# SPDX-License-Identifier: Apache-2.0
"""Masakari 22 through its real entry points on the lab: ``masakari-api``
(keystonemiddleware, the lab's Keystone) and ``masakari-engine`` (over
RabbitMQ; it reaches Nova through the catalog's Keystone door as its
``masakari`` service user).

A compute host dies, a COMPUTE_HOST / STOPPED / NORMAL notification is
posted as masakari-hostmonitor would, and the engine evacuates the host's
servers. A second notification for the same host is answered by the API
(what Masakari's own code does: ``masakari/ha/api.py``,
``NotificationAPI._create_notification``): 409 while the host is on
maintenance (the engine set it when it took the first one); once an
operator clears maintenance, 409 again as a duplicate of the finished one
within ``duplicate_notification_detection_interval``.

Masakari runs with its waits cut for the lab (no 180 s sleep after the
service disable, no random pause before a notification is stored); every
other option is Masakari's default.

Runs only with ``SELFHEAL_LAB_MASAKARI=1``: on the shared 2-core machine
(load 7-9) the file took 3 to 6 minutes with the lab already up, plus about
1.5 min to build the masakari venv on a fresh clone: over the 3 min a file
may add to the normal suite. The benchmark's Masakari runs use the same
service.

A notification posted while the engine is dead (killed with SIGKILL) is
stored by the API, its cast waits in the broker's queue, and the engine
started again takes it and finishes it.
"""

import os

import pytest

from selfheal_lab import lab
from selfheal_lab import masakari_client
from selfheal_lab.services import masakari
from selfheal_lab.services import nova as nova_box

pytestmark = [pytest.mark.functional,
              pytest.mark.skipif(os.environ.get("SELFHEAL_LAB_MASAKARI") != "1",
                                 reason="Masakari's lab tests need SELFHEAL_LAB_MASAKARI=1")]

LAB_OPTIONS = {"wait_period_after_service_update": 0, "notification_delay_max": 0}


@pytest.fixture(scope="module")
def masakari_lab(lab_info):
    info = lab.up_masakari(**LAB_OPTIONS)
    yield info
    masakari.down()


@pytest.fixture
def segment_of(masakari_lab):
    """``segment_of(hosts)``: a failover segment (recovery_method auto)
    holding the hosts; deleted afterwards."""
    made = []

    def make(hosts):
        created = masakari_client.create_segment(f"seg-{hosts[0]}", hosts)
        made.append(created["segment"]["uuid"])
        return created

    yield make
    for uuid in made:
        masakari_client.delete_segment(uuid)


def host_of(server):
    return getattr(server, "OS-EXT-SRV-ATTR:host")


def test_the_engine_evacuates_a_dead_host_and_the_api_refuses_a_second_notification(
        masakari_lab, cloud, make_hosts, segment_of):
    failed, _ = hosts = make_hosts(2)
    running = cloud.boot("running", failed)
    stopped = cloud.boot("stopped", failed, state="stopped")
    created = segment_of(hosts)
    assert created["segment"]["recovery_method"] == "auto"
    assert {h["name"] for h in created["hosts"]} == set(hosts)
    cloud.fail_host(failed)  # Nova reports it down before the notification

    sent = masakari_client.notify_host_stopped(failed)
    assert sent["status"] == "new"
    done = masakari_client.wait_notification(sent["notification_uuid"], timeout=120)

    assert done["status"] == "finished", done
    for server_id, status in ((running, "ACTIVE"), (stopped, "SHUTOFF")):
        server = cloud.server(server_id)
        assert host_of(server) != failed and server.status == status
        assert [m.status for m in cloud.evacuations(server_id)] == ["done"]
    moves = masakari_client.vmoves(sent["notification_uuid"])
    assert {m["instance_uuid"] for m in moves} == {running, stopped}
    assert {m["status"] for m in moves} == {"succeeded"}
    service = cloud.service(failed)
    assert service.status == "disabled"
    assert service.disabled_reason == "Masakari detected host failed."
    # the engine came through the Keystone door as its own service user
    seen = [r for r in nova_box.keystone_requests() if r["route"] == "POST /servers/{id}/action"]
    assert {(r["user_name"], r["project_name"]) for r in seen} >= {("masakari", "service")}

    # a second notification: the engine put the host on maintenance when it
    # took the first one
    with pytest.raises(masakari_client.MasakariAPIError) as refused:
        masakari_client.notify_host_stopped(failed)
    assert refused.value.status == 409
    assert "already under maintenance" in str(refused.value)
    # an operator clears maintenance: the same payload within the duplicate
    # window (180 s, Masakari's default) is a duplicate, finished or not
    segment = created["segment"]["uuid"]
    (host,) = [h for h in created["hosts"] if h["name"] == failed]
    masakari_client.request("PUT", f"/segments/{segment}/hosts/{host['uuid']}",
                            {"host": {"on_maintenance": False}})
    with pytest.raises(masakari_client.MasakariAPIError) as duplicate:
        masakari_client.notify_host_stopped(failed)
    assert duplicate.value.status == 409
    assert "is duplicate" in str(duplicate.value)
    listed = masakari_client.request("GET", f"/notifications?source_host_uuid={host['uuid']}")
    assert [n["notification_uuid"] for n in listed["notifications"]] == [
        sent["notification_uuid"]]
    # and nothing was evacuated twice
    assert all(len(cloud.evacuations(s)) == 1 for s in (running, stopped))


def test_options_restart_masakari_with_them(masakari_lab):
    info = lab.up_masakari(**LAB_OPTIONS, host_failure_recovery_threads=5)
    assert info["options"]["host_failure_recovery_threads"] == 5
    assert info["pids"] != masakari_lab["pids"]
    assert "host_failure_recovery_threads = 5" in open(info["config"]).read()
    assert masakari.status()["healthy"] is True
    # the same options again: kept as it runs
    assert lab.up_masakari(**LAB_OPTIONS, host_failure_recovery_threads=5)["pids"] == \
        info["pids"]


def test_a_notification_posted_while_the_engine_is_dead_waits_for_it(
        masakari_lab, cloud, make_hosts, segment_of):
    failed, _ = hosts = make_hosts(2)
    server = cloud.boot("vm", failed)
    segment_of(hosts)
    cloud.fail_host(failed)
    assert masakari.kill_engine() is True

    sent = masakari_client.notify_host_stopped(failed)  # the API alone takes it
    assert masakari_client.notification(sent["notification_uuid"])["status"] == "new"
    info = masakari.start_engine()

    assert info["pids"]["engine"] != masakari_lab["pids"]["engine"]
    assert masakari.status()["healthy"] is True
    done = masakari_client.wait_notification(sent["notification_uuid"], timeout=120)
    assert done["status"] == "finished", done
    assert host_of(cloud.server(server)) != failed
