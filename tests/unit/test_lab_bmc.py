# SPDX-License-Identifier: Apache-2.0
"""The lab's BMC set-up without starting anything: the inventory it writes
(and the faults in it), and the cloud config naming it."""

import json
import os
import stat

import pytest

from selfheal_actions.hosts import inventory
from selfheal_lab import lab
from selfheal_lab import state
from selfheal_lab.services import bmc


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    return tmp_path


def spec(**faults):
    s = bmc._new_spec()
    s["redfish"] = ["c1", "c2"]
    s["ipmi"] = {"c3": 6231}
    s["faults"] = faults
    return s


def test_inventory_has_every_host_and_faults_change_only_their_entry():
    s = spec(c2="unreachable", c3="wrong_password")
    hosts = json.loads(bmc._inventory(s))["hosts"]
    assert hosts["c1"] == {"driver": "redfish", "address": f"http://127.0.0.1:{s['redfish_port']}",
                           "system_id": bmc.system_uuid("c1"), "username": bmc.USERNAME,
                           "password": s["password"]}
    assert hosts["c2"]["address"] == f"http://127.0.0.1:{s['dead_port']}"
    assert hosts["c3"]["port"] == 6231 and hosts["c3"]["password"] != s["ipmi_password"]


def test_the_cloud_config_names_the_private_inventory_the_actions_read(monkeypatch):
    s = spec()
    bmc._write_inventory(s)
    path = bmc.inventory_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    state.update_endpoints(bmc.KEY, {"inventory": str(path)})
    config = lab.write_cloud_config({"compute_url": "http://nova", "headers": {}})
    assert json.loads(config.read_text())["fencing_inventory"] == str(path)
    assert s["password"] not in config.read_text()
    monkeypatch.setenv("SELFHEAL_CLOUD_CONFIG", str(config))
    assert inventory.entry_for("c1")["password"] == s["password"]
    state.update_endpoints(bmc.KEY, None)
    config = lab.write_cloud_config({"compute_url": "http://nova", "headers": {}})
    assert "fencing_inventory" not in json.loads(config.read_text())


def test_with_tls_the_inventory_names_https_and_the_lab_ca_per_host_choice():
    s = spec()
    s["tls"] = True
    s["verify"] = {"c2": "off"}
    s["ipmi"] = {}
    s["redfish"] = ["c1", "c2", "c4"]
    s["verify"]["c4"] = "system"
    hosts = json.loads(bmc._inventory(s))["hosts"]
    assert hosts["c1"]["address"] == f"https://127.0.0.1:{s['redfish_port']}"
    assert hosts["c1"]["verify"] == str(bmc.ca_bundle())
    assert hosts["c2"]["verify"] is False and "verify" not in hosts["c4"]
    assert "SUSHY_EMULATOR_SSL_CERT" in bmc._sushy_config(s, "http://nova")
    assert "SUSHY_EMULATOR_SSL_CERT" not in bmc._sushy_config(spec(), "http://nova")
    with pytest.raises(ValueError):
        bmc.set_verify("c1", "maybe")
