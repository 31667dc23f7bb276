# SPDX-License-Identifier: Apache-2.0
"""The lab's Prometheus set-up and host faults without starting anything:
the scrape configuration, the targets, the cloud config naming Prometheus and
each Mistral's own URL, and what each fault silences."""

import json

import pytest

from selfheal_lab import cli
from selfheal_lab import faults
from selfheal_lab import lab
from selfheal_lab import state
from selfheal_lab.services import prometheus

NOVA = {"compute_url": "http://nova/v2.1", "headers": {"X-Auth-User": "admin"}}


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    return tmp_path


def test_one_job_scraped_every_second_with_the_host_as_instance():
    config = prometheus.render_config("/lab/targets.json")
    assert config["global"]["scrape_interval"] == "1s"
    # Prometheus refuses a timeout longer than the interval
    assert config["global"]["scrape_timeout"] == "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "selfheal-node" == prometheus.JOB
    assert job["file_sd_configs"] == [{"files": ["/lab/targets.json"], "refresh_interval": "1s"}]
    assert job["relabel_configs"] == [{"source_labels": ["__host__"],
                                       "target_label": "instance"}]


def test_targets_name_each_host_on_its_own_loopback_port():
    assert prometheus.render_targets({"c2": 9102, "c1": 9101}) == [
        {"targets": ["127.0.0.1:9101"], "labels": {"__host__": "c1"}},
        {"targets": ["127.0.0.1:9102"], "labels": {"__host__": "c2"}}]
    assert prometheus.render_targets({}) == []


def test_the_cloud_config_names_each_mistral_its_own_url_and_prometheus_top_level():
    endpoints = {"mistral": {"url": "http://127.0.0.1:8989/v2"},
                 "mistral_distributed": {"url": "http://127.0.0.1:8990/v2"},
                 "prometheus": {"url": "http://127.0.0.1:9090", "hosts": {"c1": 1}}}
    embedded = lab.render_cloud_config(NOVA, endpoints)
    assert embedded["endpoints"] == {"compute": "http://nova/v2.1",
                                     "workflowv2": "http://127.0.0.1:8989/v2"}
    assert embedded["prometheus"] == {"url": "http://127.0.0.1:9090",
                                      "query": 'up{job="selfheal-node"}'}
    distributed = lab.render_cloud_config(NOVA, endpoints, "distributed")
    assert distributed["endpoints"]["workflowv2"] == "http://127.0.0.1:8990/v2"
    bare = lab.render_cloud_config(NOVA, {})
    assert bare["endpoints"] == {"compute": "http://nova/v2.1"}
    assert "prometheus" not in bare


def test_write_cloud_config_writes_the_distributed_file_only_when_that_mistral_is_known():
    state.update_endpoints("mistral", {"url": "http://127.0.0.1:8989/v2"})
    state.update_endpoints("prometheus", {"url": "http://127.0.0.1:9090"})
    path = lab.write_cloud_config(NOVA)
    assert path == lab.cloud_config_path("embedded")
    assert not lab.cloud_config_path("distributed").exists()
    assert lab.cloud_configs() == {"embedded": {
        "path": str(path), "workflowv2": "http://127.0.0.1:8989/v2",
        "prometheus": {"url": "http://127.0.0.1:9090", "query": 'up{job="selfheal-node"}'},
        "alertmanager": None}}
    state.update_endpoints("mistral_distributed", {"url": "http://127.0.0.1:8990/v2"})
    lab.write_cloud_config(NOVA)
    config = json.loads(lab.cloud_config_path("distributed").read_text())
    assert config["endpoints"]["workflowv2"] == "http://127.0.0.1:8990/v2"
    state.update_endpoints("prometheus", None)
    lab.write_cloud_config(NOVA)
    assert "prometheus" not in json.loads(path.read_text())
    assert set(lab.cloud_configs()) == {"embedded", "distributed"}


def test_up_with_prometheus_starts_it_for_the_running_hosts_then_names_it(monkeypatch):
    calls = []
    monkeypatch.setattr(lab, "up", lambda **kw: {"nova": dict(NOVA, hosts=["c1", "c2"])})
    monkeypatch.setattr(lab.nova, "hosts", lambda: [{"host": "c1", "running": True},
                                                    {"host": "c2", "running": False}])
    monkeypatch.setattr(lab.prometheus, "up", lambda hosts: calls.append(hosts) or {"url": "p"})
    monkeypatch.setattr(lab.alertmanager, "up", lambda: calls.append("am") or {"url": "a"})
    monkeypatch.setattr(lab, "write_cloud_config", lambda nova: calls.append("config"))
    started = lab.up_with(["prometheus"])
    assert started["prometheus"] == {"url": "p"} and started["alertmanager"] == {"url": "a"}
    # Alertmanager comes with Prometheus, as in a real monitoring stack
    assert calls == [["c1"], "config", "am", "config"]


def test_the_command_offers_every_optional_service_of_the_lab():
    assert cli.OPTIONAL_SERVICES == lab.OPTIONAL_SERVICES
    assert "prometheus" in lab.OPTIONAL_SERVICES


@pytest.fixture
def wiring(monkeypatch):
    """Record the Nova box and exporter calls the faults make."""
    calls = []
    for name in ("crash_host", "stop_host", "start_host"):
        monkeypatch.setattr(faults.nova, name,
                            lambda host, name=name: calls.append((name, host)) or {})
    monkeypatch.setattr(faults.prometheus, "set_exporter",
                        lambda host, lit: calls.append(("lit" if lit else "dark", host)))
    return calls


@pytest.mark.parametrize("fault, expected", [
    (faults.kill_host, [("dark", "h"), ("crash_host", "h")]),
    (faults.kill_nova_compute, [("crash_host", "h")]),
    (lambda h: faults.kill_nova_compute(h, graceful=True), [("stop_host", "h")]),
    (faults.cut_management_network, [("dark", "h"), ("stop_host", "h")]),
    (faults.restore_host, [("start_host", "h"), ("lit", "h")]),
])
def test_each_fault_silences_what_its_hardware_would(wiring, fault, expected):
    fault("h")
    assert wiring == expected


def test_a_switch_blip_silences_the_hosts_then_restores_them(wiring):
    blip = faults.switch_blip(["a", "b"], 0.2)
    assert wiring == [("dark", "a"), ("stop_host", "a"), ("dark", "b"), ("stop_host", "b")]
    assert set(blip.wait(timeout=5)) == {"a", "b"}
    assert wiring[4:] == [("start_host", "a"), ("lit", "a"), ("start_host", "b"), ("lit", "b")]


def test_a_blip_cancelled_early_restores_at_once_and_only_once(wiring):
    blip = faults.switch_blip(["a"], 60)
    blip.cancel_and_restore()
    blip.cancel_and_restore()
    assert wiring == [("dark", "a"), ("stop_host", "a"), ("start_host", "a"), ("lit", "a")]


def test_without_prometheus_the_exporter_half_is_a_no_op():
    assert prometheus.set_exporter("h", False) is None
    assert not prometheus.running()
