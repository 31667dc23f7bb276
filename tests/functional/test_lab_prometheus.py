# SPDX-License-Identifier: Apache-2.0
"""The lab's Prometheus and its per-host exporters, wired to Nova in a box
like hardware and networks are (:mod:`selfheal_lab.faults`).

For each fault, what Prometheus's ``up`` of the host's exporter
(``/api/v1/query``) and Nova's nova-compute service state become, then the
restore:

=======================  ==========  ============  ==========
fault                    ``up``      nova-compute  BMC power
=======================  ==========  ============  ==========
host dies                0           down          On
BMC power Off / On       0 / 1       down / up     Off / On
management network cut   0           down          On
nova-compute dies        1           down          On
switch blip (N s)        0, then 1   down, up      On
=======================  ==========  ============  ==========
"""

import json
import pathlib
import time

import pytest

from selfheal_lab import faults
from selfheal_lab import lab
from selfheal_lab import state
from selfheal_lab.services import bmc
from selfheal_lab.services import prometheus

#: Nova's service_down_time in the lab is 6 s: a silenced host is down after it
DOWN_TIMEOUT = 30


@pytest.fixture(scope="module")
def prom(lab_info):
    # lab.up_with(["prometheus"]) does the same after lab.up(), which the
    # session fixture has just done
    info = lab.up_prometheus(lab_info["nova"])
    yield info
    # later modules see a lab without Prometheus, as before this one
    lab.down_prometheus(state.read_endpoints()["nova"])


@pytest.fixture
def hosts(prom, make_hosts):
    """``hosts(n)`` -> n fresh compute hosts, up in Nova and scraped (``up`` 1)."""

    def make(count=1):
        names = make_hosts(count)
        assert all(prometheus.up_values()[h] == 1 for h in names)
        return names
    return make


def nova_state(cloud, host):
    return cloud.service(host).state


def test_up_waits_for_the_first_scrape_of_every_host_and_the_cloud_config_names_prometheus(
        prom, lab_info):
    running = {h["host"] for h in lab.nova.hosts() if h["running"]}
    seen = prometheus.up_values()
    assert running <= set(seen) and all(seen[h] == 1 for h in running)
    result = prometheus.query('up{job="selfheal-node"}')
    assert {r["metric"]["instance"] for r in result} >= running  # relabelled to the host
    config = json.loads(pathlib.Path(lab_info["cloud_config"]).read_text())
    # the query names the lab's job: the watch reads it from here
    assert config["prometheus"] == {"url": prom["url"], "query": 'up{job="selfheal-node"}'}
    assert "prometheus" not in config["endpoints"]
    assert config["endpoints"]["workflowv2"] == lab_info["mistral"]["url"]
    shown = lab.status()
    assert shown["prometheus"]["healthy"]
    assert shown["cloud_config"]["embedded"] == {
        "path": lab_info["cloud_config"], "workflowv2": lab_info["mistral"]["url"],
        "prometheus": {"url": prom["url"], "query": 'up{job="selfheal-node"}'},
        "alertmanager": None}  # up_prometheus alone starts no Alertmanager


def test_a_dead_host_is_down_in_nova_and_its_exporter_dark(cloud, hosts):
    dead, neighbour = hosts(2)
    faults.kill_host(dead)
    prometheus.wait_up([dead], 0, timeout=10)
    cloud.wait_services([dead], "down", timeout=DOWN_TIMEOUT)
    assert prometheus.up_values()[neighbour] == 1
    assert nova_state(cloud, neighbour) == "up"

    faults.restore_host(dead)
    prometheus.wait_up([dead], 1, timeout=10)
    cloud.wait_services([dead], "up", timeout=DOWN_TIMEOUT)


def test_only_nova_compute_dead_leaves_the_exporter_up(cloud, hosts):
    (host,) = hosts(1)
    faults.kill_nova_compute(host)
    cloud.wait_services([host], "down", timeout=DOWN_TIMEOUT)
    assert prometheus.up_values()[host] == 1
    time.sleep(1.5)  # another scrape: still up
    assert prometheus.up_values()[host] == 1
    faults.restore_host(host)
    cloud.wait_services([host], "up", timeout=DOWN_TIMEOUT)
    assert prometheus.up_values()[host] == 1


def test_a_cut_management_network_silences_nova_compute_and_the_exporter(cloud, hosts):
    (host,) = hosts(1)
    faults.cut_management_network(host)
    prometheus.wait_up([host], 0, timeout=10)
    cloud.wait_services([host], "down", timeout=DOWN_TIMEOUT)
    faults.restore_host(host)
    prometheus.wait_up([host], 1, timeout=10)
    cloud.wait_services([host], "up", timeout=DOWN_TIMEOUT)


def test_a_switch_blip_silences_hosts_then_brings_them_back_by_itself(cloud, hosts):
    blipped = hosts(2)
    started = time.monotonic()
    blip = faults.switch_blip(blipped, seconds=12)
    try:
        prometheus.wait_up(blipped, 0, timeout=5)
        cloud.wait_services(blipped, "down", timeout=11)  # Nova sees it after 6 s
        assert time.monotonic() - started < 12
        restored = blip.wait(timeout=20)
    finally:
        blip.cancel_and_restore()
    assert set(restored) == set(blipped)
    prometheus.wait_up(blipped, 1, timeout=10)
    cloud.wait_services(blipped, "up", timeout=DOWN_TIMEOUT)


@pytest.fixture(scope="module")
def ipmi(lab_info, prom):
    """The lab's BMCs (IPMI for the hosts given to it), down again afterwards."""
    lab.up_bmc(lab_info["nova"], ipmi_hosts=[])
    yield
    lab.down_bmc(state.read_endpoints()["nova"])


def ipmi_command(host):
    from pyghmi.ipmi import command

    entry = json.loads(bmc.inventory_path().read_text())["hosts"][host]
    return command.Command(bmc=entry["address"], userid=entry["username"],
                           password=entry["password"], port=entry["port"])


def test_bmc_power_off_darkens_the_exporter_and_power_on_brings_it_back(cloud, hosts, ipmi):
    host, cut = hosts(2)
    bmc.add_hosts(ipmi_hosts=[host, cut])
    power = ipmi_command(host)
    power.set_power("off", wait=True)
    prometheus.wait_up([host], 0, timeout=10)
    cloud.wait_services([host], "down", timeout=DOWN_TIMEOUT)

    power.set_power("on", wait=True)
    prometheus.wait_up([host], 1, timeout=10)
    cloud.wait_services([host], "up", timeout=DOWN_TIMEOUT)

    # a management-network failure through the BMC module: silent, power still On
    bmc.cut_management_network(cut)
    prometheus.wait_up([cut], 0, timeout=10)
    cloud.wait_services([cut], "down", timeout=DOWN_TIMEOUT)
    assert ipmi_command(cut).get_power()["powerstate"] == "on"
    faults.restore_host(cut)
    prometheus.wait_up([cut], 1, timeout=10)
