# SPDX-License-Identifier: Apache-2.0
"""The host watch on the lab: real Mistral (its cron trigger included), Nova
in a box, Prometheus scraping one exporter per compute host, and the BMCs.

Nova's timings are the lab's (report_interval 1 s, service_down_time 6 s)
and the watch's are scaled to match (interval 1 s, stale_after 3 s,
samples 2); the benchmark runs production timings.

Every test makes its own hosts; the watch sees the whole lab, so the tests
set ``max_failed_ratio`` for the hosts they make and send evacuations to
their own spare hosts (``target_hosts``).
"""

import datetime
import threading
import time

import pytest

from selfheal_lab import faults
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import bmc
from selfheal_lab.services import nova as nova_box
from selfheal_tools import install_watch

WATCH = "selfheal.host_failure.watch"
HEAL = "selfheal.host_failure.evacuate_host"
#: the watch's timings, scaled to the lab's Nova
FAST = {"interval": 1, "samples": 2, "stale_after": 3, "settle_after": 5}


@pytest.fixture(scope="module")
def watched_lab(lab_info):
    lab.up_with(["prometheus"])
    bmc_info = lab.up_bmc(lab_info["nova"], ipmi_hosts=[])
    yield bmc_info
    lab.down_bmc(state.read_endpoints()["nova"])


@pytest.fixture
def mistral_url(cloud):
    return cloud.mistral_url


@pytest.fixture(autouse=True)
def no_trigger_left(cloud):
    """No test leaves the cron trigger or the kill switch on behind it."""
    yield
    url = cloud.mistral_url
    mistral_client.delete_cron_trigger(url, install_watch.TRIGGER)
    install_watch.set_paused(False, mistral_url=url)


def heals(url, hosts):
    """The heal executions of ``hosts``, oldest first."""
    return [e for e in mistral_client.list_executions(url, HEAL)
            if (e.get("input") or {}).get("host") in hosts]


def watch(cloud, period, **inputs):
    """Run the watch workflow once (no trigger) for ``period`` seconds."""
    given = dict(FAST, period=period)
    given.update(inputs)
    execution = cloud.run_workflow(WATCH, given, timeout=period + 120)
    assert execution["state"] == "SUCCESS", execution.get("output")
    return execution["output"]


def boot_on(cloud, host, count):
    return [cloud.boot(f"w{i}", host) for i in range(count)]


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def moment(text):
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def test_a_dead_host_is_detected_fenced_evacuated_and_verified_by_the_cron_trigger(
        cloud, make_hosts, watched_lab, mistral_url, record_property):
    dead, spare, other = make_hosts(3)
    bmc.add_hosts([dead])
    ids = boot_on(cloud, dead, 2)
    install_watch.install_watch(mistral_url, pattern="* * * * * */5", watch_input=dict(
        FAST, period=4, heal_input={"target_hosts": [spare]}, max_failed_ratio=0.9))
    died = now()
    faults.kill_host(dead)  # kernel panic: nova-compute and exporter silent, power On
    deadline = time.monotonic() + 150
    while not [e for e in heals(mistral_url, [dead]) if e["state"] != "RUNNING"]:
        assert time.monotonic() < deadline, "no heal of the dead host finished in 150 s"
        time.sleep(1)
    (heal,) = heals(mistral_url, [dead])
    heal = mistral_client.get_execution(mistral_url, heal["id"])
    assert heal["state"] == "SUCCESS", heal.get("output")
    assert heal["output"]["power"]["bmc"]["driver"] == "redfish"
    for server_id in ids:
        server = cloud.server(server_id)
        assert getattr(server, "OS-EXT-SRV-ATTR:host") == spare and server.status == "ACTIVE"
    off = min(moment(e["at"]) for e in bmc.journal(dead)
              if e["event"] == "applied" and e["power"] == "off")
    first = min(moment(m.created_at) for i in ids for m in cloud.evacuations(i))
    decided = moment(heal["created_at"])
    verified = moment(heal["updated_at"])
    timeline = {"decision_s": (decided - died).total_seconds(),
                "power_off_s": (off - died).total_seconds(),
                "first_evacuation_s": (first - died).total_seconds(),
                "all_verified_s": (verified - died).total_seconds()}
    record_property("timeline", timeline)
    print("death ->", timeline)
    # Nova keeps whole seconds: the Off is recorded before the first evacuation
    assert off.replace(microsecond=0) <= first
    assert 0 < timeline["decision_s"] <= timeline["all_verified_s"]


def test_a_switch_blip_of_half_the_hosts_fences_and_evacuates_nothing(
        cloud, make_hosts, watched_lab, mistral_url):
    # as many new hosts as the watch counts already (enabled or fenced), all
    # silenced: at least half of the compute hosts, the default limit
    counted = [s for s in cloud.nova().services.list(binary="nova-compute")
               if s.status == "enabled" or (s.disabled_reason or "").startswith(
                   "selfheal:fenced")]
    silent = make_hosts(max(2, len(counted)))
    for host in silent:
        boot_on(cloud, host, 1)
    faults.switch_blip(silent, seconds=12)
    output = watch(cloud, period=16)
    assert heals(mistral_url, silent) == [], output["cycles"]
    held = [line for line in output["cycles"] if "held: global_limit" in line]
    assert held, output["cycles"]
    assert cloud.up_hosts() >= set(silent)


class InFlight(threading.Thread):
    """Counts, every 0.3 s, the evacuations Nova has in flight from ``hosts``."""

    DONE = {"done", "completed", "failed", "error", "cancelled"}

    def __init__(self, cloud, hosts):
        super().__init__(daemon=True)
        self.nova, self.hosts = cloud.nova(), set(hosts)
        self.peak, self.samples, self.stopped = 0, 0, threading.Event()

    def run(self):
        while not self.stopped.is_set():
            moving = [m for m in self.nova.migrations.list(migration_type="evacuation")
                      if m.source_compute in self.hosts and m.status not in self.DONE]
            self.peak = max(self.peak, len(moving))
            self.samples += 1
            time.sleep(0.3)


def test_a_rack_of_three_dead_hosts_is_healed_within_the_cloud_wide_budget(
        cloud, make_hosts, watched_lab, mistral_url):
    hosts = make_hosts(8)
    dead, spares = hosts[:3], hosts[3:]
    bmc.add_hosts(dead)
    ids = {host: boot_on(cloud, host, 4) for host in dead}
    for spare in spares:  # evacuations stay in flight long enough to count
        nova_box.slow_spawns(spare, 2)
    counter = InFlight(cloud, dead)
    counter.start()
    try:
        for host in dead:
            faults.kill_host(host)
        output = watch(cloud, period=40, heal_input={"target_hosts": spares},
                       max_failed_ratio=0.5, max_starts=3, budget=4,
                       per_host_concurrency=2)
        for execution in heals(mistral_url, dead):
            done = cloud.wait_workflow(execution["id"], timeout=240)
            assert done["state"] == "SUCCESS", done.get("output")
    finally:
        counter.stopped.set()
        counter.join()
        for spare in spares:
            nova_box.slow_spawns(spare, 0)
    assert sorted(e["input"]["host"] for e in heals(mistral_url, dead)) == sorted(dead)
    # two heals took the budget (2 + 2): the third waited for one to end
    assert any("budget: 4 of 4" in line for line in output["cycles"]), output["cycles"]
    assert 1 <= counter.peak <= 4, counter.peak
    for server_ids in ids.values():
        for server_id in server_ids:
            assert getattr(cloud.server(server_id), "OS-EXT-SRV-ATTR:host") in spares


def test_nova_compute_dead_but_host_alive_is_reported_and_not_fenced(
        cloud, make_hosts, watched_lab, mistral_url):
    alive, spare = make_hosts(2)
    bmc.add_hosts([alive])
    faults.kill_nova_compute(alive)
    output = watch(cloud, period=8, heal_input={"target_hosts": [spare]})
    assert heals(mistral_url, [alive]) == []
    assert any(f"{alive} [nova" in line and "only nova-compute" in line
               for line in output["cycles"]), output["cycles"]
    assert not [e for e in bmc.journal(alive) if e["power"] == "off"]


def test_a_management_network_failure_is_powered_off_then_healed(
        cloud, make_hosts, watched_lab, mistral_url):
    cut, spare = make_hosts(2)
    bmc.add_hosts([cut])
    ids = boot_on(cloud, cut, 1)
    faults.cut_management_network(cut)  # both signals dark, the BMC says On
    output = watch(cloud, period=8, heal_input={"target_hosts": [spare]},
                   max_failed_ratio=0.9)
    assert [s["host"] for s in output["started"]] == [cut]
    (heal,) = heals(mistral_url, [cut])
    heal = cloud.wait_workflow(heal["id"], timeout=120)
    assert heal["state"] == "SUCCESS", heal.get("output")
    assert [e["power"] for e in bmc.journal(cut) if e["event"] == "applied"] == ["off"]
    assert getattr(cloud.server(ids[0]), "OS-EXT-SRV-ATTR:host") == spare


def test_the_kill_switch_holds_and_releasing_it_heals_at_the_next_cycle(
        cloud, make_hosts, watched_lab, mistral_url):
    dead, spare = make_hosts(2)
    bmc.add_hosts([dead])
    install_watch.set_paused(True, "firmware rollout", mistral_url=mistral_url)
    faults.kill_host(dead)
    output = watch(cloud, period=6, heal_input={"target_hosts": [spare]},
                   max_failed_ratio=0.9)
    assert heals(mistral_url, [dead]) == []
    assert "kill switch is on: firmware rollout" in output["cycles"][-1]
    install_watch.set_paused(False, mistral_url=mistral_url)
    output = watch(cloud, period=0, heal_input={"target_hosts": [spare]},
                   max_failed_ratio=0.9)
    # the counts carried over from the paused watch: the first cycle heals
    assert [s["host"] for s in output["started"]] == [dead]
    assert output["cycles"][0].startswith("cycle 1:")


def test_a_host_in_planned_maintenance_that_goes_silent_is_not_healed(
        cloud, make_hosts, watched_lab, mistral_url):
    resting, spare = make_hosts(2)
    execution = cloud.run_workflow("selfheal.maintenance.start_maintenance", {
        "host": resting, "reason": "disk swap", "require_monitoring": False})
    assert execution["state"] == "SUCCESS", execution.get("output")
    faults.kill_host(resting)
    output = watch(cloud, period=6, heal_input={"target_hosts": [spare]},
                   max_failed_ratio=0.9)
    assert heals(mistral_url, [resting]) == []
    assert cloud.service(resting).status == "disabled"
    assert all(resting not in line for line in output["cycles"])


def test_a_per_aggregate_limit_holds_the_second_failure_in_a_rack(
        cloud, make_hosts, watched_lab, mistral_url):
    first, second, spare = make_hosts(3)
    nova = cloud.nova()
    rack = nova.aggregates.create(f"rack-{first}", None)
    try:
        for host in (first, second):
            nova.aggregates.add_host(rack, host)
        nova.aggregates.set_metadata(rack, {"selfheal:max_failures": "1"})
        for host in (first, second):
            faults.kill_host(host)
        output = watch(cloud, period=6, heal_input={"target_hosts": [spare]},
                       max_failed_ratio=0.9, dry_run=True)
        assert output["started"] == []
        assert any(f"aggregate '{rack.name}'" in line for line in output["cycles"])
    finally:
        for host in (first, second):
            nova.aggregates.remove_host(rack, host)
        nova.aggregates.delete(rack)


def test_the_watch_keeps_a_bounded_number_of_its_executions(
        cloud, make_hosts, watched_lab, mistral_url):
    given = dict(FAST, period=0, keep_executions=3)
    first = install_watch.install_watch(mistral_url, pattern="* * * * * */2",
                                        watch_input=given)
    again = install_watch.install_watch(mistral_url, pattern="* * * * * */2",
                                        watch_input=given)
    assert (first["trigger"], again["trigger"]) == ("created", "unchanged")
    dry = install_watch.install_watch(mistral_url, dry_run=True, watch_input=given)
    assert dry["trigger"] == "would be replaced"
    time.sleep(16)  # about 8 watch executions
    mistral_client.delete_cron_trigger(mistral_url, install_watch.TRIGGER)
    executions = mistral_client.list_executions(mistral_url, WATCH)
    assert 3 <= len(executions) <= 3 + 2, [e["state"] for e in executions]
