# SPDX-License-Identifier: Apache-2.0
"""The host failure flow with power fencing, on a fake Nova and a fake BMC."""

import json
import logging

import pytest

from selfheal_actions.hosts import bmc
from selfheal_actions.hosts import evacuation
from selfheal_actions.hosts import power
from tests.unit.fake_bmc import SECRET
from tests.unit.fake_bmc import Clock
from tests.unit.fake_bmc import FakeDriver
from tests.unit.fake_bmc import write_inventory
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.test_fencing import Context

HOST = "failed-1"
ENTRY = {"driver": "redfish", "address": "https://bmc-1:8000", "system_id": "sys-1",
         "username": "fencer", "password": SECRET}


def cloud(state="down"):
    return FakeNova(servers=[server("a"), server("b")],
                    services=[service(HOST, state=state), service("ok-1"), service("ok-2")])


class LoggedDriver(FakeDriver):
    """A fake BMC whose requests land in the fake Nova's call log (one timeline)."""

    def __init__(self, nova, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nova = nova

    def _request(self, target):
        self.nova.calls.append(("bmc_power_" + target,))
        super()._request(target)


@pytest.fixture
def setup(tmp_path, monkeypatch, use_fake):
    """``setup(nova, driver=None, inventory=True)`` -> the fake BMC driver."""
    clock = Clock()
    monkeypatch.setattr(power, "SLEEP", clock.sleep)
    monkeypatch.setattr(power, "CLOCK", clock)

    def make(nova, driver=None, hosts=None, configured=True):
        use_fake(nova)
        if configured:
            write_inventory(tmp_path, monkeypatch, {HOST: ENTRY} if hosts is None else hosts)
        else:
            config = tmp_path / "cloud.yaml"
            config.write_text(json.dumps({"endpoints": {"compute": "http://nova"}}))
            monkeypatch.setenv("SELFHEAL_CLOUD_CONFIG", str(config))
        driver = driver or LoggedDriver(nova, "on", delay_reads=2)
        monkeypatch.setattr(bmc, "driver_for", lambda entry, timeout=10.0: driver)
        return driver
    return make


def act(**kwargs):
    kwargs.setdefault("host", HOST)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("fence", True)
    kwargs.setdefault("settle_seconds", 0)
    return evacuation.EvacuateAndVerifyAction(**kwargs).run(Context())


def names(nova):
    return [c[0] for c in nova.calls]


def test_power_off_confirmed_before_force_down_and_evacuation(setup, caplog):
    caplog.set_level(logging.DEBUG)
    nova = cloud()
    driver = setup(nova)
    result = act()
    assert result.error is None, result.error
    data = result.data
    assert data["fencing_mode"] == "power"
    assert data["power"]["power_state"] == "off" and data["power"]["switched"] is True
    assert data["power"]["bmc"] == {"driver": "redfish", "address": "https://bmc-1:8000",
                                    "system_id": "sys-1", "tls_verify": "system_ca"}
    assert data["power"]["fence_seconds"] >= 0 and data["power"]["confirmed_at"]
    order = names(nova)
    assert order.index("bmc_power_off") < order.index("force_down") < order.index("evacuate")
    assert driver.state == "off"
    assert data["changes"][0]["change"] == "powered_off"
    assert data["totals"] == {"evacuated": 2}
    assert SECRET not in json.dumps(data) + caplog.text


def test_already_off_is_no_change_and_still_evacuates(setup):
    nova = cloud()
    driver = setup(nova, LoggedDriver(nova, "off"))
    data = act().data
    assert data["power"]["switched"] is False and driver.calls == ["state"]
    assert "powered_off" not in [c["change"] for c in data["changes"]]
    assert data["totals"] == {"evacuated": 2}


@pytest.mark.parametrize("driver_kwargs,reason", [
    ({"errors": ["bmc_unreachable"] * 10}, "bmc_unreachable"),
    ({"errors": ["bmc_auth_failed"]}, "bmc_auth_failed"),
    ({"never": True}, "power_off_not_confirmed"),
])
def test_bmc_failure_forces_nothing_down_and_evacuates_nothing(setup, caplog, driver_kwargs,
                                                                reason):
    caplog.set_level(logging.DEBUG)
    nova = cloud()
    setup(nova, LoggedDriver(nova, "on", **driver_kwargs))
    result = act(power_timeout=3, power_attempts=2)
    assert result.error["reason"] == reason
    assert nova.count("force_down") == 0 and nova.count("disable") == 0
    assert nova.count("evacuate") == 0
    assert result.error["changed"] is False and result.error["changes"] == []
    assert "fencing=nova_only" in result.error["message"]
    assert nova.aggregates == {}  # the claim was released
    assert SECRET not in json.dumps(result.error) + caplog.text


def test_host_nova_sees_up_is_never_powered_off_without_a_second_signal(setup):
    nova = cloud(state="up")
    driver = setup(nova)
    result = act()
    assert result.error["reason"] == "host_still_up"
    assert "bmc_power_off" not in names(nova) and driver.calls == []
    # the caller says it knows the host is dead: powered off, then fenced
    result = act(host_known_dead=True)
    assert result.error is None, result.error
    order = names(nova)
    assert order.index("bmc_power_off") < order.index("force_down")


def test_known_dead_does_not_bypass_the_guard_for_nova_only(setup):
    nova = cloud(state="up")
    setup(nova)
    assert act(fencing="nova_only", host_known_dead=True).error["reason"] == "host_still_up"


def test_dry_run_names_driver_and_address_never_the_secret(setup, caplog):
    caplog.set_level(logging.DEBUG)
    nova = cloud()
    driver = setup(nova)
    result = act(dry_run=True)
    data = result.data
    assert data["power"]["bmc"]["driver"] == "redfish"
    assert data["power"]["bmc"]["address"] == "https://bmc-1:8000"
    assert data["changes"][0] == {"resource": f"power of {HOST}", "change": "would_power_off",
                                  "driver": "redfish", "address": "https://bmc-1:8000",
                                  "system_id": "sys-1", "tls_verify": "system_ca"}
    assert driver.calls == [] and nova.count("force_down") == 0
    assert SECRET not in json.dumps(data) + caplog.text


def test_dry_run_of_a_host_nova_sees_up_never_plans_a_bypass(setup):
    nova = cloud(state="up")
    setup(nova)
    # without wait_for_down the plan refuses as a real run would
    assert act(dry_run=True).error["reason"] == "host_still_up"
    # with it, the plan says a real run waits and refuses if still up
    data = act(dry_run=True, wait_for_down=5).data
    assert "refuses if it is still up" in data["fencing"]["note"]
    # a planning call that waits (before a fencing workflow) refuses
    result = act(dry_run=True, wait_for_down=0.2, plan_waits=True, fencing="workflow")
    assert result.error["reason"] == "host_still_up"


def test_nova_only_carries_the_warning(setup):
    nova = cloud()
    driver = setup(nova)
    data = act(fencing="nova_only").data
    assert data["fencing_mode"] == "nova_only" and data["power"] is None
    assert "shared storage" in data["warnings"][0]
    assert driver.calls == [] and data["totals"] == {"evacuated": 2}


def test_no_inventory_at_all_is_nova_only_with_a_warning(setup):
    nova = cloud()
    driver = setup(nova, configured=False)
    data = act().data
    assert data["fencing_mode"] == "nova_only"
    assert "no fencing inventory is configured" in data["warnings"][0]
    assert driver.calls == []
    # power asked for explicitly: refused
    nova = cloud()
    setup(nova, configured=False)
    result = act(fencing="power")
    assert result.error["reason"] == "no_fencing_entry" and nova.count("force_down") == 0


def test_inventory_without_the_host_is_refused(setup):
    nova = cloud()
    setup(nova, hosts={"other": ENTRY})
    result = act()
    assert result.error["reason"] == "no_fencing_entry"
    assert nova.count("force_down") == 0 and nova.count("evacuate") == 0


def test_workflow_fencing_checks_the_bmc_reports_off(setup):
    nova = cloud()
    setup(nova, LoggedDriver(nova, "on"))
    result = act(fencing="workflow", host_powered_off=True)
    assert result.error["reason"] == "power_off_not_confirmed"
    assert "fencing workflow succeeded" in result.error["message"]
    assert nova.count("force_down") == 0
    nova = cloud()
    setup(nova, LoggedDriver(nova, "off"))
    data = act(fencing="workflow", host_powered_off=True).data
    assert data["power"]["power_state"] == "off" and data["totals"] == {"evacuated": 2}


def test_workflow_fencing_without_a_bmc_trusts_the_workflow(setup):
    nova = cloud()
    setup(nova, hosts={})
    data = act(fencing="workflow", host_powered_off=True).data
    assert data["power"] is None and data["totals"] == {"evacuated": 2}


def test_bad_fencing_input(setup):
    setup(cloud())
    assert act(fencing="ipmi").error["reason"] == "invalid_input"


def test_enable_host_can_power_on_first(setup):
    from selfheal_actions.common import markers
    from selfheal_actions.hosts import fencing

    nova = FakeNova(services=[service(HOST, state="down", status="disabled", forced_down=True,
                                      reason=markers.make(markers.FENCED, "e")),
                              service("ok-1")])
    driver = setup(nova, LoggedDriver(nova, "off", delay_reads=1))
    dry = fencing.EnableHostAction(HOST, power_on=True, dry_run=True).run(Context()).data
    assert dry["changes"][0]["change"] == "would_power_on" and driver.state == "off"
    nova.services[0]["alive"] = True  # nova-compute reports again once lifted
    result = fencing.EnableHostAction(HOST, power_on=True, wait_seconds=2).run(Context())
    assert result.error is None, result.error
    assert driver.state == "on" and result.data["power"]["power_state"] == "on"
    assert [c["change"] for c in result.data["changes"]] == [
        "powered_on", "forced_down_lifted", "enabled"]
    order = names(nova)
    assert order.index("bmc_power_on") < order.index("force_down")


def test_known_dead_lets_a_fencing_workflow_plan_pass(setup):
    nova = cloud(state="up")
    setup(nova, hosts={})
    result = act(dry_run=True, wait_for_down=0.2, plan_waits=True, fencing="workflow",
                 host_known_dead=True)
    assert result.error is None, result.error
    assert nova.count("force_down") == 0
