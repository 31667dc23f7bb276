# SPDX-License-Identifier: Apache-2.0
"""Redfish over HTTPS on the lab: the real sushy-emulator serving a
certificate for 127.0.0.1 signed by a CA the lab made, the power actions
run through Mistral's API (ad-hoc action executions) against it.

* with the lab's CA bundle in the inventory entry: status and power-off work;
* with nothing (``verify`` defaults to true: the system's CAs, which do not
  know the lab's CA): ``bmc_tls_error``, no traceback, no secret, the BMC
  never asked to power off;
* with ``verify: false``: it works, and the result says verification was off.
"""

import json
import pathlib

import pytest

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import bmc


@pytest.fixture(scope="module")
def tls_bmcs(lab_info):
    info = lab.up_bmc(lab_info["nova"], ipmi_hosts=[], tls=True)
    yield info
    lab.down_bmc(state.read_endpoints()["nova"])


@pytest.fixture
def host(make_hosts, tls_bmcs):
    """A fresh compute host with a Redfish BMC over HTTPS."""
    name = make_hosts(1)[0]
    bmc.add_hosts([name])
    return name


def action(cloud, name, action_input):
    """Run a selfheal action in the lab's Mistral: ``(state, result)``."""
    execution = mistral_client._request(
        "POST", f"{cloud.mistral_url}/action_executions",
        {"name": name, "input": json.dumps(action_input)}, timeout=120)
    output = json.loads(execution["output"]) if isinstance(execution["output"], str) else (
        execution["output"])
    text = json.dumps(execution)
    assert not any(p in text for p in bmc.passwords())
    assert "Traceback" not in text
    return execution["state"], output.get("result", output)


def test_the_lab_serves_https_with_its_own_ca(tls_bmcs):
    assert tls_bmcs["redfish_url"].startswith("https://127.0.0.1:")
    assert "BEGIN CERTIFICATE" in pathlib.Path(tls_bmcs["ca_bundle"]).read_text()


def test_with_the_ca_bundle_status_and_power_off_work(cloud, host, tls_bmcs):
    entry = json.loads(pathlib.Path(tls_bmcs["inventory"]).read_text())["hosts"][host]
    assert entry["address"].startswith("https://") and entry["verify"] == tls_bmcs["ca_bundle"]

    got, status = action(cloud, "selfheal.power_status", {"host": host})
    assert got == "SUCCESS", status
    assert status["power_state"] == "on" and status["warnings"] == []
    assert status["bmc"]["tls_verify"] == "ca_bundle"

    got, off = action(cloud, "selfheal.power_off", {"host": host, "timeout": 20})
    assert got == "SUCCESS", off
    assert off["power_state"] == "off" and off["switched"] is True
    assert off["bmc"]["address"] == tls_bmcs["redfish_url"]
    assert [e["power"] for e in bmc.journal(host) if e["event"] == "applied"] == ["off"]


def test_without_the_ca_bundle_it_fails_with_bmc_tls_error(cloud, host):
    bmc.set_verify(host, "system")  # no verify: the default, true
    assert "verify" not in json.loads(bmc.inventory_path().read_text())["hosts"][host]

    got, status = action(cloud, "selfheal.power_status", {"host": host})
    assert got == "ERROR"
    assert status["reason"] == "bmc_tls_error", status
    assert "certificate verify failed" in status["message"]
    assert "verify: /path/ca.pem" in status["message"]

    got, off = action(cloud, "selfheal.power_off", {"host": host, "attempts": 3})
    assert got == "ERROR" and off["reason"] == "bmc_tls_error", off
    assert len(off["details"]["attempts"]) == 1  # not retried
    assert off["changes"] == [] and bmc.journal(host) == []  # nothing was asked of the BMC


def test_with_verify_false_it_works_and_says_so(cloud, host):
    bmc.set_verify(host, "off")

    got, status = action(cloud, "selfheal.power_status", {"host": host})
    assert got == "SUCCESS", status
    assert status["power_state"] == "on"
    assert status["bmc"]["tls_verify"] == "off"
    assert "TLS verification is off" in status["warnings"][0]
