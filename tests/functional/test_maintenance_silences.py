# SPDX-License-Identifier: Apache-2.0
"""The maintenance flow's Alertmanager silence, on the lab's real
Alertmanager (Debian's prometheus-alertmanager) and real Mistral and Nova.

The first test checks the Alertmanager behaviours the unit tests' fake
copies (tests/unit/fake_alertmanager.py); the second runs
start_maintenance, a rerun that extends the window, and finish_maintenance,
and reads the silences from Alertmanager itself; the third watches
Alertmanager and Nova while rolling maintenance goes over three hosts.
"""

import datetime
import threading
import time
import urllib.parse

import pytest

from selfheal_lab import http_json
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab.services import alertmanager
from tests.functional.test_rolling import WORK
from tests.functional.test_rolling import in_maintenance
from tests.functional.test_rolling import unique

pytestmark = pytest.mark.functional

ROLLING = "selfheal.maintenance.rolling_maintenance"
START = "selfheal.maintenance.start_maintenance"
FINISH = "selfheal.maintenance.finish_maintenance"


@pytest.fixture(scope="module")
def am(lab_info):
    info = lab.up_alertmanager(lab_info["nova"])
    yield info
    lab.down_alertmanager(lab_info["nova"])


def at(seconds):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def call(am, method, path, body=None):
    return http_json.call(am["url"], method, path, body, timeout=30, what="Alertmanager")


def test_alertmanager_behaves_as_the_unit_tests_fake_says(am):
    matchers = [{"name": "instance", "value": "fake-check", "isRegex": False, "isEqual": True}]
    starts = at(1)  # whole seconds ahead: an update can repeat it exactly
    made = call(am, "POST", "/api/v2/silences", {
        "matchers": matchers, "createdBy": "t", "comment": "c", "startsAt": starts,
        "endsAt": at(600)})["silenceID"]
    # the same start and matchers, a later end: updated in place, same id
    kept = call(am, "POST", "/api/v2/silences", {
        "id": made, "matchers": matchers, "createdBy": "t", "comment": "c",
        "startsAt": starts, "endsAt": at(1200)})["silenceID"]
    assert kept == made
    query = urllib.parse.urlencode({"filter": 'instance="fake-check"'})
    (found,) = call(am, "GET", f"/api/v2/silences?{query}")
    assert found["id"] == made and found["createdBy"] == "t"
    assert found["status"]["state"] in ("pending", "active")
    with pytest.raises(RuntimeError, match="HTTP 400"):  # the end before the start
        call(am, "POST", "/api/v2/silences", {"matchers": matchers, "createdBy": "t",
                                              "comment": "c", "startsAt": at(60),
                                              "endsAt": at(0)})
    with pytest.raises(RuntimeError, match="HTTP 422"):  # no matchers
        call(am, "POST", "/api/v2/silences", {"matchers": [], "createdBy": "t",
                                              "comment": "c", "startsAt": at(0),
                                              "endsAt": at(60)})
    with pytest.raises(RuntimeError, match="HTTP 404"):  # an update of an unknown id
        call(am, "POST", "/api/v2/silences", {"id": "nope", "matchers": matchers,
                                              "createdBy": "t", "comment": "c",
                                              "startsAt": at(0), "endsAt": at(60)})
    call(am, "DELETE", f"/api/v2/silence/{made}")
    call(am, "DELETE", f"/api/v2/silence/{made}")  # expired again: still 200
    assert call(am, "GET", f"/api/v2/silence/{made}")["status"]["state"] == "expired"
    with pytest.raises(RuntimeError, match="HTTP 500"):  # unknown: 500, not 404
        call(am, "DELETE", "/api/v2/silence/00000000-0000-0000-0000-000000000000")


def live(host):
    return [s for s in alertmanager.silences(host) if s["status"]["state"] != "expired"]


def test_the_host_is_silenced_for_the_window_extended_once_and_unsilenced_at_the_end(
        am, cloud, make_hosts):
    host, _ = make_hosts(2)
    server = cloud.boot("vm", host)
    until = at(3600)[:19] + "Z"

    started = cloud.run_workflow(START, {"host": host, "reason": "bios update",
                                         "until": until}, timeout=300)

    assert started["state"] == "SUCCESS", started.get("output") or started["state_info"]
    silence = started["output"]["monitoring"]["silence"]
    (found,) = live(host)
    assert silence["id"] == found["id"] and silence["change"] == "created"
    assert found["createdBy"] == "selfheal"
    assert found["comment"].startswith(f"selfheal:maintenance host={host} by {started['id']}")
    assert found["endsAt"].startswith(until[:19])
    assert getattr(cloud.server(server), "OS-EXT-SRV-ATTR:host") != host

    # the maintenance runs longer: a rerun with a later end extends the same silence
    later = at(7200)[:19] + "Z"
    rerun = cloud.run_workflow(START, {"host": host, "reason": "bios update",
                                       "until": later}, timeout=300)
    assert rerun["state"] == "SUCCESS", rerun.get("output") or rerun["state_info"]
    assert rerun["output"]["monitoring"]["silence"]["change"] == "extended"
    (extended,) = live(host)
    assert extended["id"] == found["id"] and extended["endsAt"].startswith(later[:19])

    finished = cloud.run_workflow(FINISH, {"host": host}, timeout=120)

    assert finished["state"] == "SUCCESS", finished.get("output") or finished["state_info"]
    assert finished["output"]["result"]["silence"]["expired"] == [found["id"]]
    assert live(host) == []
    assert alertmanager.silence(found["id"])["status"]["state"] == "expired"
    assert cloud.service(host).status == "enabled"


@pytest.mark.usefixtures("delete_new_servers")
def test_rolling_maintenance_silences_each_host_for_its_window_only(am, cloud, make_hosts):
    """Issue 20, test 1 (its Alertmanager part): one host at a time, each
    silenced while it is in maintenance, every silence expired after."""
    hosts = make_hosts(4)[:3]
    work = unique("silenced_work")
    mistral_client.create_workflows(cloud.mistral_url, WORK.format(name=work))
    for host in hosts:
        cloud.boot(f"vm-{host}", host)
    nova = cloud.nova()
    samples = []  # (hosts in maintenance, hosts with a live silence)
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            maintained = {s.host for s in nova.services.list(binary="nova-compute")
                          if s.host in hosts and in_maintenance(s)}
            silenced = {h for h in hosts if live(h)}
            samples.append((maintained, silenced))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        execution = cloud.run_workflow(ROLLING, {
            "hosts": hosts, "name": unique("roll-silence"), "work_workflow": work,
            "timeout": 240}, timeout=600)
    finally:
        stop.set()
        watcher.join()

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    assert execution["output"]["status"]["done"] == hosts
    assert max(len(silenced) for _, silenced in samples) == 1  # one host at a time
    for host in hosts:
        window = [silenced for maintained, silenced in samples if host in maintained]
        assert window, f"{host} was never seen in maintenance"
        # silenced before its service is disabled; at the end the silence
        # is expired one call before the service is enabled again
        unsilenced = [s for s in window if host not in s]
        assert len(unsilenced) <= 2, (host, len(unsilenced), len(window))
        made = alertmanager.silences(host)
        assert len(made) == 1 and made[0]["createdBy"] == "selfheal", made
        assert made[0]["status"]["state"] == "expired"
        assert cloud.service(host).status == "enabled"
    assert samples[-1] == (set(), set())
