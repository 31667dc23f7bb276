# SPDX-License-Identifier: Apache-2.0
"""The Nova box's fault controls, proven on the real box through its Nova API.

* a crashed host is reported down after ``service_down_time`` and the work
  in flight on it never completes (a graceful stop lets it finish);
* slow spawns delay a boot by the seconds asked;
* HTTP fault rules answer errors, drop connections or delay requests, for
  the next ``count`` matching requests or a ``share`` of them, and go away
  when cleared; the control endpoint itself is never faulted.

Only Nova in a box is needed (no Mistral): the module starts it when no lab
runs and stops it afterwards (unless SELFHEAL_KEEP_LAB=1).
"""

import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from selfheal_lab.services import nova as nova_box

FLAVOR = "m1.tiny"
# room for a loaded box on top of the delays under test
SLACK = 4.0


@pytest.fixture(scope="module")
def box():
    was_running = nova_box.status()["healthy"]
    info = nova_box.up()
    nova_box.clear_http_faults()
    yield info
    nova_box.clear_http_faults()
    if not was_running and not os.environ.get("SELFHEAL_KEEP_LAB"):
        nova_box.down()


@pytest.fixture(autouse=True)
def no_rules_left(box):
    """Every test starts and ends without HTTP fault rules."""
    nova_box.clear_http_faults()
    yield
    nova_box.clear_http_faults()


@pytest.fixture(scope="module")
def nova(box):
    from keystoneauth1 import session
    from keystoneauth1 import token_endpoint
    from novaclient import client

    sess = session.Session(auth=token_endpoint.Token(box["compute_url"], "lab"),
                           additional_headers=box["headers"])
    return client.Client("2.96", session=sess, endpoint_override=box["compute_url"])


@pytest.fixture
def hosts(box, nova):
    """``hosts(n)`` -> n fresh compute hosts, up; removed with their servers."""
    created = []

    def make(count):
        names = [f"flt{uuid.uuid4().hex[:6]}-{chr(ord('a') + i)}" for i in range(count)]
        for name in names:
            nova_box.add_host(name)
        created.extend(names)
        wait_service_state(nova, names, "up")
        return names

    yield make
    if not created:
        return
    for host in created:
        nova_box.slow_spawns(host, 0)
        nova_box.inject_spawn_failures(host, 0)
        nova_box.start_host(host)  # a crashed host comes back to delete its servers
    servers = [s for s in nova.servers.list(search_opts={"all_tenants": True})
               if getattr(s, "OS-EXT-SRV-ATTR:host", None) in created]
    for server in servers:
        nova.servers.delete(server.id)
    wait_gone(nova, [s.id for s in servers])
    for host in created:
        nova_box.stop_host(host)
    for svc in nova.services.list(binary="nova-compute"):
        if svc.host in created:
            nova.services.delete(svc.id)


# --- helpers -----------------------------------------------------------------

def wait_for(what, predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_service_state(nova, names, state, timeout=30):
    def states():
        return {s.host: s.state for s in nova.services.list(binary="nova-compute")}
    wait_for(f"{names} {state}", lambda: all(states().get(h) == state for h in names), timeout)


def wait_gone(nova, ids, timeout=60):
    def gone():
        left = {s.id for s in nova.servers.list(search_opts={"all_tenants": True})}
        return not left & set(ids)
    wait_for(f"servers {ids} deleted", gone, timeout)


def boot(nova, host, name="fault-probe"):
    flavor = nova.flavors.find(name=FLAVOR)
    image = nova_box.info()["images"][0]["id"]
    return nova.servers.create(name, image, flavor.id, nics="none",
                               availability_zone=f"nova:{host}").id


def task_state(server):
    return getattr(server, "OS-EXT-STS:task_state", None)


def wait_status(nova, server_id, status, timeout=30):
    def reached():
        server = nova.servers.get(server_id)
        if server.status == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {server_id} went to ERROR")
        return server.status == status
    wait_for(f"server {server_id} {status}", reached, timeout)


def seconds_to_active(nova, host):
    started = time.monotonic()
    server_id = boot(nova, host)
    wait_status(nova, server_id, "ACTIVE", timeout=60)
    return server_id, time.monotonic() - started


def get(box, path, timeout=30):
    """One plain HTTP GET on the Nova API: ``(status, seconds)``."""
    request = urllib.request.Request(box["compute_url"] + path, headers=box["headers"])
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, time.monotonic() - started


def probe():
    """A query no other request has: a rule on it sees only this test's calls."""
    return f"probe-{uuid.uuid4().hex[:10]}"


# --- a crashed host ----------------------------------------------------------

def test_crashed_host_goes_down_and_its_work_in_flight_never_completes(box, nova, hosts):
    host, = hosts(1)
    idle, _ = seconds_to_active(nova, host)
    nova_box.slow_spawns(host, 2)
    spawning = boot(nova, host, name="fault-spawning")
    wait_for("the spawn to start",
             lambda: task_state(nova.servers.get(spawning)) == "spawning", 30)

    answer = nova_box.crash_host(host)
    crashed = time.monotonic()
    assert answer == {"host": host, "running": False, "crashed": True, "changed": True}
    # Nova still believes the host up: the stop is cast to it, never consumed
    nova.servers.stop(idle)

    wait_service_state(nova, [host], "down", timeout=box["service_down_time"] + SLACK + 4)
    seen_down = time.monotonic() - crashed
    assert box["service_down_time"] - box["report_interval"] - 1 <= seen_down, seen_down
    assert seen_down <= box["service_down_time"] + box["report_interval"] + SLACK, seen_down

    time.sleep(max(0.0, crashed + 2 + 2 - time.monotonic()))  # the spawn's 2 s, and more
    server = nova.servers.get(spawning)
    assert (server.status, task_state(server)) == ("BUILD", "spawning")
    server = nova.servers.get(idle)
    assert (server.status, task_state(server)) == ("ACTIVE", "powering-off")
    # and no compute manager took it up (it would record a compute_stop_instance event)
    stop = next(a for a in nova.instance_action.list(idle) if a.action == "stop")
    assert nova.instance_action.get(idle, stop.request_id).events == []
    assert {"host": host, "running": False, "crashed": True} in nova_box.hosts()

    # a restart is a new process: the frozen spawn is abandoned (Nova's
    # init_host errors a build a dead compute left), never completed, and the
    # instance lock it held died with it: the server can be deleted
    nova_box.start_host(host)
    wait_service_state(nova, [host], "up")
    wait_status(nova, spawning, "ERROR")
    nova.servers.delete(spawning)
    wait_gone(nova, [spawning], timeout=20)


def test_graceful_stop_lets_the_spawn_in_flight_finish(box, nova, hosts):
    # the contrast with a crash: what nova_box.stop_host always did
    host, = hosts(1)
    nova_box.slow_spawns(host, 2)
    spawning = boot(nova, host)
    wait_for("the spawn to start",
             lambda: task_state(nova.servers.get(spawning)) == "spawning", 30)
    nova_box.stop_host(host)
    wait_status(nova, spawning, "ACTIVE", timeout=10)


# --- slow spawns -------------------------------------------------------------

def test_slow_spawns_delay_a_boot_by_the_seconds_asked(box, nova, hosts):
    slow, fast = hosts(2)
    assert nova_box.slow_spawns(slow, 3) == {"host": slow, "fail_spawns": 0,
                                             "spawn_seconds": 3}
    nova_box.inject_spawn_failures(slow, 0)
    assert nova_box.spawn_faults()[slow] == {"host": slow, "fail_spawns": 0,
                                             "spawn_seconds": 3}

    _, fast_seconds = seconds_to_active(nova, fast)
    _, slow_seconds = seconds_to_active(nova, slow)
    assert 3 <= slow_seconds - fast_seconds + 0.5, (slow_seconds, fast_seconds)
    assert slow_seconds <= fast_seconds + 3 + SLACK, (slow_seconds, fast_seconds)

    nova_box.slow_spawns(slow, 0)
    _, again = seconds_to_active(nova, slow)
    assert again < 3, again


def test_bad_spawn_fault_arguments_are_refused(box, hosts):
    host, = hosts(1)
    with pytest.raises(RuntimeError, match="HTTP 400.*spawn_seconds must be"):
        nova_box.slow_spawns(host, -1)
    with pytest.raises(RuntimeError, match="HTTP 404.*unknown host"):
        nova_box.slow_spawns("no-such-host", 1)
    assert host not in nova_box.spawn_faults()


# --- HTTP faults -------------------------------------------------------------

def test_status_rule_with_count_answers_exactly_that_many_errors(box, nova):
    from novaclient import exceptions

    name = probe()
    rule = nova_box.add_http_fault(rf"^GET /v2\.1/servers/detail\?.*name={name}",
                                   status=503, count=2)
    assert (rule["remaining"], rule["hits"]) == (2, 0)

    codes = []
    for _ in range(4):
        try:
            nova.servers.list(search_opts={"name": name})
            codes.append(200)
        except exceptions.ClientException as e:
            codes.append(e.code)
    assert codes == [503, 503, 200, 200]

    # what a client reads: Nova's error body shape
    status, _ = get(box, f"/servers/detail?name={name}")
    assert status == 200
    nova_box.add_http_fault(rf"name={name}", status=500, count=1)
    request = urllib.request.Request(
        box["compute_url"] + f"/servers/detail?name={name}", headers=box["headers"])
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 500
    assert '"computeFault": {"code": 500' in raised.value.read().decode()

    listed = {r["id"]: r for r in nova_box.http_faults()}[rule["id"]]
    # matched: the 4 lists, the plain GET and the one the 500 rule answered
    assert (listed["hits"], listed["remaining"], listed["matched"]) == (2, 0, 6)


def test_share_rule_answers_about_that_share_repeatably(box):
    answers = []
    for _ in range(2):  # the same seed twice: the same draws
        tag = probe()
        rule = nova_box.add_http_fault(rf"^GET /v2\.1/\?{tag}$", status=503, share=0.3,
                                       seed=7)
        answers.append([get(box, f"/?{tag}")[0] for _ in range(80)])
        hits = {r["id"]: r for r in nova_box.http_faults()}[rule["id"]]["hits"]
        assert hits == answers[-1].count(503)
    assert answers[0] == answers[1]
    assert set(answers[0]) == {200, 503}
    assert 0.15 <= answers[0].count(503) / 80 <= 0.45, answers[0].count(503)


def test_hang_rule_delays_a_request_then_lets_it_through(box):
    tag = probe()
    nova_box.add_http_fault(rf"\?{tag}$", hang_seconds=2, count=1)
    status, seconds = get(box, f"/flavors?{tag}")
    assert status == 200
    assert 2 <= seconds <= 2 + SLACK, seconds
    status, seconds = get(box, f"/flavors?{tag}")
    assert status == 200
    assert seconds < 1.5, seconds


def test_reset_rule_drops_the_connection(box, nova):
    from keystoneauth1 import exceptions as ksa_exceptions

    tag = probe()
    nova_box.add_http_fault(rf"\?{tag}$", reset=True, count=2)
    url = urllib.parse.urlsplit(box["compute_url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", f"{url.path}/flavors?{tag}", headers=box["headers"])
    with pytest.raises(ConnectionError):  # reset by peer, or closed without an answer
        conn.getresponse()
    conn.close()
    with pytest.raises(ksa_exceptions.ConnectionError):  # what novaclient raises
        nova.client.get(f"/flavors?{tag}")
    assert get(box, f"/flavors?{tag}")[0] == 200


def test_rules_are_listed_removed_and_cleared_and_never_fault_the_control_port(box):
    tag = probe()
    first = nova_box.add_http_fault(rf"\?{tag}$", status=503)
    second = nova_box.add_http_fault(".", status=500, count=1)
    # the control endpoint answers and does not consume the catch-all rule
    assert nova_box.hosts()
    assert [(r["id"], r["remaining"]) for r in nova_box.http_faults()] == [
        (first["id"], None), (second["id"], 1)]
    assert get(box, f"/flavors?{tag}")[0] == 503  # the first rule acts first
    assert nova_box.remove_http_fault(first["id"]) == {"deleted": 1}
    assert get(box, f"/flavors?{tag}")[0] == 500  # the catch-all
    with pytest.raises(RuntimeError, match="HTTP 404"):
        nova_box.remove_http_fault(first["id"])

    nova_box.add_http_fault(rf"\?{tag}$", status=503)
    assert nova_box.clear_http_faults() == {"deleted": 2}
    assert nova_box.http_faults() == []
    assert get(box, f"/flavors?{tag}")[0] == 200


@pytest.mark.parametrize("kwargs, reason", [
    ({"status": 200}, "must be an HTTP server error code"),
    ({}, "give exactly one of"),
    ({"status": 503, "reset": True}, "give exactly one of"),
    ({"hang_seconds": -1}, "hang_seconds"),
    ({"status": 503, "count": 1, "share": 0.5}, "not both"),
    ({"status": 503, "share": 1.5}, "0 < share <= 1"),
    ({"status": 503, "count": 0}, "count"),
    ({"status": 503, "seed": 3}, "only goes with"),
])
def test_bad_http_fault_rules_are_refused(box, kwargs, reason):
    with pytest.raises(RuntimeError, match="HTTP 400") as raised:
        nova_box.add_http_fault("^GET /v2\\.1/flavors", **kwargs)
    assert reason in str(raised.value)
    with pytest.raises(RuntimeError, match="not a valid regular expression"):
        nova_box.add_http_fault("(", status=503)
    assert nova_box.http_faults() == []
