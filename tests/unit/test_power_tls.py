# SPDX-License-Identifier: Apache-2.0
"""TLS to Redfish BMCs, on fakes: the inventory's ``verify`` option
(true, false or a CA bundle) is checked before any BMC is contacted, a
certificate the executor cannot verify is ``bmc_tls_error`` (not retried),
and a run with verification off says so in its result."""

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

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
REDFISH = {"driver": "redfish", "address": "https://10.0.0.11", "system_id": "1",
           "username": "fencer", "password": SECRET}


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "bmc-ca.pem"
    path.write_text(PEM)
    return path


@pytest.fixture
def drivers(monkeypatch):
    """Drivers made by the actions, by address: a test sees whether a BMC
    was contacted at all."""
    made = {}

    def driver_for(entry, timeout=10.0):
        return made.setdefault(entry["address"], FakeDriver("on", delay_reads=1))
    monkeypatch.setattr(bmc, "driver_for", driver_for)
    clock = Clock()
    monkeypatch.setattr(power, "SLEEP", clock.sleep)
    monkeypatch.setattr(power, "CLOCK", clock)
    return made


# --- the option -----------------------------------------------------------------

@pytest.mark.parametrize("verify", [True, False])
def test_verify_true_or_false_is_kept(tmp_path, monkeypatch, verify):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, verify=verify)})
    assert inventory.entry_for("c1")["verify"] is verify


def test_verify_defaults_to_true(tmp_path, monkeypatch):
    write_inventory(tmp_path, monkeypatch, {"c1": REDFISH})
    assert inventory.entry_for("c1").get("verify", True) is True
    # and the driver hands sushy True when the entry says nothing
    assert bmc.RedfishDriver(REDFISH).verify is True


def test_a_ca_bundle_path_is_kept_and_relative_paths_follow_the_inventory(
        tmp_path, monkeypatch, ca):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, verify=str(ca)),
                                            "c2": dict(REDFISH, verify="bmc-ca.pem")})
    assert inventory.entry_for("c1")["verify"] == str(ca)
    assert inventory.entry_for("c2")["verify"] == str(ca)  # beside fencing.yaml


@pytest.mark.parametrize("verify,words", [
    ("/nonexistent/bmc-ca.pem", "does not exist"),
    ("yes", "does not exist"),
    (3, "true, false or the path of a CA bundle"),
    ({"path": "x"}, "true, false or the path of a CA bundle"),
    ("", "true, false or the path of a CA bundle"),
])
def test_bad_verify_is_refused_with_a_clear_error(tmp_path, monkeypatch, verify, words):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, verify=verify)})
    with pytest.raises(ActionFailure) as err:
        inventory.entry_for("c1")
    assert err.value.reason == "configuration_error"
    assert words in err.value.message and "'c1'" in err.value.message
    assert SECRET not in err.value.message


def test_a_file_without_certificates_is_refused(tmp_path, monkeypatch):
    junk = tmp_path / "not-a-ca.pem"
    junk.write_text("hello\n")
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, verify=str(junk))})
    with pytest.raises(ActionFailure) as err:
        inventory.entry_for("c1")
    assert err.value.reason == "configuration_error"
    assert "no PEM certificate" in err.value.message and str(junk) in err.value.message


def test_ipmi_entries_ignore_a_default_verify(tmp_path, monkeypatch):
    """``verify`` in the defaults reaches IPMI hosts too: IPMI has no TLS."""
    write_inventory(tmp_path, monkeypatch,
                    {"c2": {"driver": "ipmi", "address": "10.0.0.12"}},
                    defaults={"verify": "/nonexistent/ca.pem", "username": "u",
                              "password": SECRET})
    assert inventory.entry_for("c2")["address"] == "10.0.0.12"


def test_bad_verify_fails_the_action_and_contacts_no_bmc(tmp_path, monkeypatch, drivers,
                                                         caplog):
    caplog.set_level(logging.DEBUG)
    write_inventory(tmp_path, monkeypatch,
                    {"c1": dict(REDFISH, verify="/nonexistent/bmc-ca.pem")})
    for action in (power.PowerOffAction("c1"), power.PowerStatusAction("c1")):
        result = action.run(None)
        assert result.error["reason"] == "configuration_error"
        assert "/nonexistent/bmc-ca.pem" in result.error["message"]
        assert result.error["changes"] == [] and result.error["changed"] is False
        assert SECRET not in json.dumps(result.error) + caplog.text
    assert drivers == {}  # nothing was contacted, nothing changed


# --- what results say --------------------------------------------------------------

def test_results_say_how_the_bmc_certificate_is_checked(tmp_path, monkeypatch, drivers, ca):
    write_inventory(tmp_path, monkeypatch, {
        "c1": REDFISH, "c2": dict(REDFISH, address="https://10.0.0.12", verify=str(ca)),
        "c3": dict(REDFISH, address="https://10.0.0.13", verify=False),
        "c4": dict(REDFISH, address="http://10.0.0.14")})
    shown = {h: power.PowerStatusAction(h).run(None).data for h in ("c1", "c2", "c3", "c4")}
    assert shown["c1"]["bmc"]["tls_verify"] == "system_ca"
    assert shown["c2"]["bmc"]["tls_verify"] == "ca_bundle"
    assert shown["c3"]["bmc"]["tls_verify"] == "off"
    assert "tls_verify" not in shown["c4"]["bmc"]  # plain HTTP: no TLS to speak of
    assert shown["c1"]["warnings"] == [] and shown["c2"]["warnings"] == []
    assert "verification is off" in shown["c3"]["warnings"][0]
    off = power.PowerOffAction("c3").run(None).data
    assert off["power_state"] == "off" and "verification is off" in off["warnings"][0]


# --- the driver ----------------------------------------------------------------------

def _tls_failure():
    """What sushy raises for a certificate it cannot verify: its
    ConnectionError, raised while handling requests' SSLError."""
    import requests
    import sushy.exceptions as sx

    url = "https://10.0.0.11/redfish/v1/"
    try:
        raise requests.exceptions.SSLError(
            "HTTPSConnectionPool(host='10.0.0.11', port=443): Max retries exceeded "
            "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
            "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
            "in certificate chain (_ssl.c:1006)')))")
    except requests.exceptions.SSLError as e:
        try:
            raise sx.ConnectionError(url=url, error=e)
        except sx.ConnectionError as wrapped:
            return wrapped


def test_an_unverifiable_certificate_is_bmc_tls_error():
    driver = bmc.RedfishDriver(REDFISH)
    error = _tls_failure()
    with pytest.raises(bmc.BmcError) as err:
        driver._call(lambda: (_ for _ in ()).throw(error))
    assert err.value.reason == "bmc_tls_error"
    message = err.value.message
    assert "self-signed certificate in certificate chain" in message
    assert "verify" in message and "CA bundle" in message
    assert "Traceback" not in message and SECRET not in message


def test_a_tls_error_is_not_retried_and_says_what_to_do(tmp_path, monkeypatch, drivers):
    write_inventory(tmp_path, monkeypatch, {"c1": REDFISH})
    drivers["https://10.0.0.11"] = FakeDriver("on", errors=["bmc_tls_error"] * 5)
    result = power.PowerOffAction("c1").run(None)
    assert result.error["reason"] == "bmc_tls_error"
    assert len(result.error["details"]["attempts"]) == 1
    assert "verify" in result.error["message"] and "nova_only" in result.error["message"]
    status = power.PowerStatusAction("c1").run(None)  # the driver still fails
    assert status.error["reason"] == "bmc_tls_error"


@pytest.mark.parametrize("text,expected", [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, "
     "certificate is not valid for '10.0.0.11'. (_ssl.c:1006)",
     "certificate verify failed: IP address mismatch, certificate is not valid for "
     "'10.0.0.11'."),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
     "TLS handshake failed (WRONG_VERSION_NUMBER)"),
])
def test_tls_failures_are_named_briefly(text, expected):
    import ssl

    assert bmc._tls_cause(ssl.SSLError(1, text)) == expected
    assert bmc._tls_cause(ConnectionRefusedError("refused")) is None


def test_the_host_failure_flow_warns_when_verification_is_off(tmp_path, monkeypatch, ca):
    write_inventory(tmp_path, monkeypatch, {"c1": dict(REDFISH, verify=False),
                                            "c2": dict(REDFISH, verify=str(ca))})
    for mode in ("auto", "power", "workflow"):
        resolved, entry, warnings = power.resolve_mode(mode, "c1", None)
        assert entry["verify"] is False and "TLS verification is off" in warnings[0], mode
        assert power.resolve_mode(mode, "c2", None)[2] == [], mode
    assert power.plan(entry, "c1")["bmc"]["tls_verify"] == "off"
