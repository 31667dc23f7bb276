# SPDX-License-Identifier: Apache-2.0
"""The power loop, the power actions and the fencing inventory, on fakes."""

import json
import logging

import pytest

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.hosts import bmc
from selfheal_actions.hosts import inventory
from selfheal_actions.hosts import power
from tests.unit.fake_bmc import SECRET
from tests.unit.fake_bmc import Clock
from tests.unit.fake_bmc import FakeDriver
from tests.unit.fake_bmc import write_inventory

REDFISH = {"driver": "redfish", "address": "https://10.0.0.11", "system_id": "1",
           "username": "fencer", "password": SECRET}


def run_switch(driver, target="off", **kwargs):
    clock = Clock()
    options = dict(attempts=3, timeout=10, poll_interval=1, sleep=clock.sleep, clock=clock)
    options.update(kwargs)
    return power.switch(driver, target, **options)


def test_power_off_is_sent_then_polled_until_off():
    driver = FakeDriver("on", delay_reads=3)
    report = run_switch(driver)
    assert driver.calls == ["state", "off", "state", "state", "state"]
    assert report["power_state_before"] == "on" and report["power_state"] == "off"
    assert report["switched"] is True
    assert report["attempts"][0]["outcome"] == "confirmed"
    assert report["seconds"] == 3.0


def test_already_off_changes_nothing():
    driver = FakeDriver("off")
    report = run_switch(driver)
    assert driver.calls == ["state"]
    assert report["switched"] is False and report["attempts"][0]["outcome"] == "already"


def test_never_off_is_not_confirmed_after_every_attempt():
    driver = FakeDriver("on", never=True)
    with pytest.raises(ActionFailure) as err:
        run_switch(driver, attempts=2, timeout=5)
    assert err.value.reason == "power_off_not_confirmed"
    assert [a["outcome"] for a in err.value.details["attempts"]] == ["not_confirmed"] * 2
    assert driver.calls.count("off") == 2


def test_unreachable_bmc_is_retried_then_reported():
    driver = FakeDriver("on", errors=["bmc_unreachable"] * 5)
    with pytest.raises(ActionFailure) as err:
        run_switch(driver, attempts=3)
    assert err.value.reason == "bmc_unreachable"
    assert len(err.value.details["attempts"]) == 3
    # a BMC that comes back on the second attempt is fine
    driver = FakeDriver("on", errors=["bmc_unreachable"])
    assert run_switch(driver)["power_state"] == "off"


def test_refused_login_is_not_retried():
    driver = FakeDriver("on", errors=["bmc_auth_failed"] * 5)
    with pytest.raises(ActionFailure) as err:
        run_switch(driver, attempts=3)
    assert err.value.reason == "bmc_auth_failed"
    assert len(err.value.details["attempts"]) == 1


def test_power_on():
    assert run_switch(FakeDriver("off"), "on")["power_state"] == "on"


def test_redact_removes_secrets():
    assert bmc.redact(f"401 for admin:{SECRET}@bmc", [SECRET, None]) == "401 for admin:***@bmc"


# --- the inventory ---------------------------------------------------------------

def test_inventory_file_entry_and_defaults(tmp_path, monkeypatch):
    write_inventory(tmp_path, monkeypatch, {"c1": {"address": "https://b1"},
                                            "c2": {"driver": "ipmi", "address": "10.0.0.2",
                                                   "password": {"env": "BMC_PW"}}},
                    defaults={"driver": "redfish", "username": "u", "password": SECRET})
    monkeypatch.setenv("BMC_PW", "from-env")
    assert inventory.configured()
    assert inventory.entry_for("c1")["password"] == SECRET
    assert inventory.entry_for("c1")["driver"] == "redfish"
    assert inventory.entry_for("c2")["password"] == "from-env"
    assert inventory.entry_for("nope") is None
    assert inventory.public(inventory.entry_for("c2")) == {
        "driver": "ipmi", "address": "10.0.0.2", "port": 623}


def test_inventory_inline_section(tmp_path, monkeypatch):
    write_inventory(tmp_path, monkeypatch, {"c1": REDFISH}, inline=True)
    assert inventory.entry_for("c1")["address"] == "https://10.0.0.11"


@pytest.mark.parametrize("inline", [False, True])
def test_inventory_readable_by_others_is_refused(tmp_path, monkeypatch, inline):
    write_inventory(tmp_path, monkeypatch, {"c1": REDFISH}, mode=0o644, inline=inline)
    with pytest.raises(ActionFailure) as err:
        inventory.entry_for("c1")
    assert err.value.reason == "configuration_error"
    assert "0644" in err.value.message and SECRET not in err.value.message


def test_no_inventory_configured(tmp_path, monkeypatch):
    config = tmp_path / "cloud.yaml"
    config.write_text(json.dumps({"endpoints": {"compute": "http://nova"}}))
    monkeypatch.setenv("SELFHEAL_CLOUD_CONFIG", str(config))
    assert not inventory.configured()
    with pytest.raises(ActionFailure) as err:
        power.bmc_entry("c1", None)
    assert err.value.reason == "no_fencing_entry"


@pytest.mark.parametrize("entry,words", [
    ({"address": "https://b"}, "driver"),
    ({"driver": "redfish", "address": "10.0.0.1"}, "URL"),
    ({"driver": "ipmi"}, "address"),
    ({"driver": "ipmi", "address": "a", "pasword": "x"}, "unknown keys"),
])
def test_bad_entries_are_refused(tmp_path, monkeypatch, entry, words):
    write_inventory(tmp_path, monkeypatch, {"c1": entry})
    with pytest.raises(ActionFailure) as err:
        inventory.entry_for("c1")
    assert err.value.reason == "configuration_error" and words in err.value.message


def test_missing_env_secret(tmp_path, monkeypatch):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, password={"env": "NOPE_X"})})
    monkeypatch.delenv("NOPE_X", raising=False)
    with pytest.raises(ActionFailure) as err:
        inventory.entry_for("c1")
    assert err.value.reason == "secret_unavailable" and "NOPE_X" in err.value.message


class FakeSession:
    def __init__(self, payload=SECRET, fail=None):
        self.payload, self.fail, self.calls = payload, fail, []

    def get(self, url, **kwargs):
        self.calls.append((url, kwargs))
        if self.fail:
            raise self.fail

        class Response:
            text = self.payload
        return Response()


def test_barbican_secret_by_href_and_by_id(tmp_path, monkeypatch):
    session = FakeSession()
    href = "https://barbican:9311/v1/secrets/abc"
    assert inventory.barbican_secret(None, href, "c1", session=session) == SECRET
    assert session.calls[0][0] == href + "/payload"
    assert session.calls[0][1]["headers"] == {"Accept": "text/plain"}
    inventory.barbican_secret(None, "abc", "c1", session=session)
    assert session.calls[1][0] == "/v1/secrets/abc/payload"
    assert session.calls[1][1]["endpoint_filter"]["service_type"] == "key-manager"


def test_barbican_failure_names_no_secret():
    error = RuntimeError("boom")
    error.http_status = 403
    with pytest.raises(ActionFailure) as err:
        inventory.barbican_secret(None, "abc", "c1", session=FakeSession(fail=error))
    assert err.value.reason == "secret_unavailable" and "HTTP 403" in err.value.message


def test_barbican_secret_through_the_inventory(tmp_path, monkeypatch):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, password={"barbican": "abc"})})
    session = FakeSession()
    monkeypatch.setattr(inventory.clients, "session_for",
                        lambda context, kind: (session, "http://barbican:9311", None))
    assert inventory.entry_for("c1")["password"] == SECRET
    assert session.calls[0][1]["endpoint_override"] == "http://barbican:9311"


# --- the actions -------------------------------------------------------------------

@pytest.fixture
def fake_bmc(tmp_path, monkeypatch):
    """Every host of the inventory gets one FakeDriver (by host name)."""
    write_inventory(tmp_path, monkeypatch, {"c1": REDFISH, "c2": dict(
        REDFISH, driver="ipmi", address="10.0.0.12", port=6230, system_id=None)})
    drivers = {}

    def driver_for(entry, timeout=10.0):
        return drivers.setdefault(entry["address"], FakeDriver("on", delay_reads=1))
    monkeypatch.setattr(bmc, "driver_for", driver_for)
    clock = Clock()
    monkeypatch.setattr(power, "SLEEP", clock.sleep)
    monkeypatch.setattr(power, "CLOCK", clock)
    return drivers


def all_text(result, caplog):
    return json.dumps(result.data or result.error) + caplog.text


def test_power_off_action_and_idempotence(fake_bmc, caplog):
    caplog.set_level(logging.DEBUG)
    result = power.PowerOffAction("c1").run(None)
    assert result.error is None, result.error
    data = result.data
    assert data["changed"] is True and data["power_state"] == "off"
    assert data["bmc"] == {"driver": "redfish", "address": "https://10.0.0.11", "system_id": "1",
                           "tls_verify": "system_ca"}
    assert data["changes"][0]["change"] == "powered_off"
    again = power.PowerOffAction("c1").run(None).data
    assert again["changed"] is False and again["changes"] == []
    assert SECRET not in all_text(result, caplog)


def test_power_off_dry_run_names_driver_and_address_only(fake_bmc, caplog):
    result = power.PowerOffAction("c2", dry_run=True).run(None)
    data = result.data
    assert data["dry_run"] is True and data["changed"] is False
    assert data["changes"][0] == {"resource": "power of c2", "change": "would_power_off",
                                  "driver": "ipmi", "address": "10.0.0.12", "port": 6230}
    assert fake_bmc == {}  # the BMC was not even contacted
    assert SECRET not in all_text(result, caplog)


def test_power_off_failure_says_what_to_do_and_no_secret(fake_bmc, caplog):
    fake_bmc["https://10.0.0.11"] = FakeDriver("on", errors=["bmc_auth_failed"])
    result = power.PowerOffAction("c1").run(None)
    assert result.error["reason"] == "bmc_auth_failed"
    assert "fencing=nova_only" in result.error["message"]
    assert result.error["details"]["bmc"]["address"] == "https://10.0.0.11"
    assert SECRET not in all_text(result, caplog)


def test_power_on_and_status(fake_bmc):
    fake_bmc["10.0.0.12"] = FakeDriver("off", delay_reads=1)
    assert power.PowerStatusAction("c2").run(None).data["power_state"] == "off"
    assert power.PowerOnAction("c2").run(None).data["power_state"] == "on"
    assert power.PowerStatusAction("nope").run(None).error["reason"] == "no_fencing_entry"


def test_power_inputs_are_checked(fake_bmc):
    assert power.PowerOffAction("c1", attempts=0).run(None).error["reason"] == "invalid_input"
    assert power.PowerOffAction("c1", timeout="x").run(None).error["reason"] == "invalid_input"


def test_a_refused_reset_is_not_confirmed():
    class Refusing(FakeDriver):
        def power_off(self):
            raise bmc.BmcError("bmc_error", "HTTP 400: power off disabled")

    with pytest.raises(ActionFailure) as err:
        run_switch(Refusing("on"), attempts=2)
    assert err.value.reason == "power_off_not_confirmed"
    assert "refused the power-off request" in err.value.message
    assert [a["outcome"] for a in err.value.details["attempts"]] == [
        "power_off_not_confirmed"] * 2


def test_library_errors_map_to_stable_reasons_without_the_password():
    import sushy.exceptions as sx

    redfish = bmc.RedfishDriver(REDFISH)

    class Response:
        status_code, text, url = 401, f"no, {SECRET}", "https://10.0.0.11/redfish/v1/Systems/1"

        def json(self):
            return {}

    for error, reason in ((sx.AccessError("GET", Response.url, Response()), "bmc_auth_failed"),
                          (sx.ConnectionError(url=Response.url, error="refused"),
                           "bmc_unreachable"),
                          (ConnectionRefusedError("refused"), "bmc_unreachable")):
        with pytest.raises(bmc.BmcError) as err:
            redfish._call(lambda e=error: (_ for _ in ()).throw(e))
        assert err.value.reason == reason and SECRET not in err.value.message
    ipmi = bmc.IpmiDriver(dict(REDFISH, driver="ipmi", address="10.0.0.12"))
    for text, reason in (("Incorrect password provided", "bmc_auth_failed"),
                         ("timeout", "bmc_unreachable"),
                         ("Session no longer connected", "bmc_unreachable"),
                         ("Unexpected completion code 0xc1", "bmc_error")):
        with pytest.raises(bmc.BmcError) as err:
            ipmi._call(lambda t=text: (_ for _ in ()).throw(RuntimeError(t)))
        assert err.value.reason == reason, text
