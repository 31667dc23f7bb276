# SPDX-License-Identifier: Apache-2.0
"""Power fencing on the lab: the real sushy-tools Redfish emulator and an
IPMI BMC on pyghmi, wired to Nova in a box like hardware (a system powered
Off crashes its host: nothing in flight finishes).

Each test gives its failed host a BMC of its own, runs
selfheal.host_failure.evacuate_host through Mistral's API and checks the
BMCs' power journal (when the emulator applied Off, UTC) against Nova's
evacuation migration records. The last test scans everything Mistral and
the lab recorded for the lab's BMC passwords.
"""

import datetime
import json
import pathlib

import pytest

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import bmc
from selfheal_lab.services import nova as nova_box

WF = "selfheal.host_failure.evacuate_host"
#: every execution this module ran, for the credentials scan
EXECUTIONS = []


@pytest.fixture(scope="module")
def bmcs(lab_info):
    info = lab.up_bmc(lab_info["nova"], ipmi_hosts=[])
    yield info
    # later modules see no inventory again (fencing auto -> nova_only)
    lab.down_bmc(state.read_endpoints()["nova"])


@pytest.fixture
def failed_host(cloud, make_hosts, bmcs):
    """``failed_host(driver="redfish")`` -> (failed host with a BMC, two servers on it)."""

    def make(driver="redfish", servers=2):
        failed, _, _ = make_hosts(3)
        if driver == "ipmi":
            bmc.add_hosts(ipmi_hosts=[failed])
        else:
            bmc.add_hosts([failed])
        ids = [cloud.boot(f"vm{i}", failed) for i in range(servers)]
        return failed, ids
    yield make
    if bmc.power_off_disabled():
        bmc.disable_power_off(False)


def run(cloud, workflow_input, timeout=240):
    execution = cloud.run_workflow(WF, workflow_input, timeout=timeout)
    EXECUTIONS.append(execution["id"])
    return execution


def moment(text):
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def off_applied_at(host):
    """When the BMC applied Off to ``host`` (its journal), or None."""
    times = [moment(e["at"]) for e in bmc.journal(host)
             if e["event"] == "applied" and e["power"] == "off"]
    return min(times) if times else None


def first_evacuation_at(cloud, ids):
    return min(moment(m.created_at) for i in ids for m in cloud.evacuations(i))


def assert_off_before_evacuations(cloud, host, ids):
    """The BMC applied Off before Nova recorded the first evacuation (at the
    resolution Nova keeps: whole seconds when it drops the microseconds)."""
    off, first = off_applied_at(host), first_evacuation_at(cloud, ids)
    assert off is not None
    if first.microsecond == 0:
        off = off.replace(microsecond=0)
        assert off <= first, (off, first)
    else:
        assert off < first, (off, first)


def assert_evacuated(cloud, failed, ids):
    for server_id in ids:
        server = cloud.server(server_id)
        assert getattr(server, "OS-EXT-SRV-ATTR:host") != failed
        assert server.status == "ACTIVE"
        assert [m.status for m in cloud.evacuations(server_id)] == ["done"]


def test_crashed_host_is_powered_off_then_evacuated(cloud, failed_host, bmcs):
    failed, ids = failed_host()
    nova_box.crash_host(failed)  # hung: Nova sees it down, the BMC still says On
    cloud.wait_services([failed], "down")
    assert off_applied_at(failed) is None

    execution = run(cloud, {"host": failed, "power_timeout": 30})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    out = execution["output"]
    assert out["fencing_mode"] == "power" and out["warnings"] == []
    assert out["power"]["bmc"] == {"driver": "redfish", "address": bmcs["redfish_url"],
                                   "system_id": bmc.system_uuid(failed)}
    assert out["power"]["power_state_before"] == "on" and out["power"]["switched"] is True
    assert out["power"]["power_state"] == "off" and out["power"]["fence_seconds"] > 0
    assert_evacuated(cloud, failed, ids)
    # the emulator applied Off before Nova recorded the first evacuation
    assert_off_before_evacuations(cloud, failed, ids)
    svc = cloud.service(failed)
    assert svc.forced_down is True and svc.status == "disabled"


def test_management_network_failure_is_powered_off_before_any_evacuation(cloud, failed_host):
    failed, ids = failed_host(servers=1)
    bmc.cut_management_network(failed)  # nova-compute silent, guests still running
    cloud.wait_services([failed], "down")
    host = next(h for h in nova_box.hosts() if h["host"] == failed)
    assert host["crashed"] is False  # still powered: a split brain in the making

    execution = run(cloud, {"host": failed})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    assert execution["output"]["power"]["switched"] is True
    assert_off_before_evacuations(cloud, failed, ids)
    assert next(h for h in nova_box.hosts() if h["host"] == failed)["crashed"] is True
    assert_evacuated(cloud, failed, ids)


@pytest.mark.parametrize("fault,reason", [("unreachable", "bmc_unreachable"),
                                          ("wrong_password", "bmc_auth_failed"),
                                          ("never_off", "power_off_not_confirmed"),
                                          ("ipmi_never_off", "power_off_not_confirmed")])
def test_bmc_failure_ends_with_its_reason_and_no_evacuation(cloud, failed_host, fault,
                                                            reason):
    """never_off: the emulator refuses ForceOff (SUSHY_EMULATOR_DISABLE_POWER_OFF);
    ipmi_never_off: the IPMI BMC accepts the power-off and stays on."""
    failed, ids = failed_host(driver="ipmi" if fault.startswith("ipmi") else "redfish",
                              servers=1)
    if fault == "never_off":
        bmc.disable_power_off(True)
    elif fault == "ipmi_never_off":
        bmc.set_ipmi_fault(failed, "never_off")
    else:
        bmc.set_fault(failed, fault)
    cloud.fail_host(failed)

    execution = run(cloud, {"host": failed, "power_attempts": 2, "power_timeout": 5})

    assert execution["state"] == "ERROR"
    error = execution["output"]["error"]
    assert error["reason"] == reason, error
    assert "nova_only" in error["message"] and error["changes"] == []
    assert cloud.evacuations(ids[0]) == []
    svc = cloud.service(failed)
    assert svc.forced_down is False and svc.status == "enabled"
    assert off_applied_at(failed) is None


def test_ipmi_host_end_to_end(cloud, failed_host):
    failed, ids = failed_host(driver="ipmi")
    nova_box.crash_host(failed)
    cloud.wait_services([failed], "down")

    execution = run(cloud, {"host": failed})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    power = execution["output"]["power"]
    assert power["bmc"]["driver"] == "ipmi" and power["bmc"]["address"] == "127.0.0.1"
    assert power["switched"] is True and power["power_state"] == "off"
    assert [e["bmc"] for e in bmc.journal(failed)] == ["ipmi", "ipmi"]
    assert_off_before_evacuations(cloud, failed, ids)
    assert_evacuated(cloud, failed, ids)


def test_enable_host_powers_the_repaired_host_on_first(cloud, failed_host):
    failed, ids = failed_host(servers=1)
    nova_box.crash_host(failed)
    cloud.wait_services([failed], "down")
    healed = run(cloud, {"host": failed})
    assert healed["state"] == "SUCCESS", healed.get("output") or healed["state_info"]

    execution = cloud.run_workflow("selfheal.host_failure.enable_host",
                                   {"host": failed, "power_on": True, "wait_seconds": 30},
                                   timeout=240)
    EXECUTIONS.append(execution["id"])

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    result = execution["output"]["result"]
    assert result["power"]["power_state"] == "on" and result["power"]["switched"] is True
    assert [c["change"] for c in result["changes"]] == [
        "powered_on", "forced_down_lifted", "enabled"]
    on = [e for e in bmc.journal(failed) if e["event"] == "applied" and e["power"] == "on"]
    assert on, bmc.journal(failed)
    svc = cloud.service(failed)
    assert svc.state == "up" and svc.status == "enabled" and svc.forced_down is False


def test_nova_only_works_and_carries_the_warning(cloud, failed_host):
    failed, ids = failed_host(servers=1)
    cloud.fail_host(failed)

    execution = run(cloud, {"host": failed, "fencing": "nova_only"})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    out = execution["output"]
    assert out["fencing_mode"] == "nova_only" and out["power"] is None
    assert "shared storage" in out["warnings"][0]
    assert bmc.journal(failed) == []  # the BMC was never asked
    assert_evacuated(cloud, failed, ids)


def test_dry_run_names_driver_and_address_never_the_secret(cloud, failed_host, bmcs):
    failed, ids = failed_host(servers=1)
    cloud.fail_host(failed)

    execution = run(cloud, {"host": failed, "dry_run": True})

    assert execution["state"] == "SUCCESS", execution.get("output") or execution["state_info"]
    power = execution["output"]["power"]
    assert power["bmc"]["driver"] == "redfish"
    assert power["bmc"]["address"] == bmcs["redfish_url"] and power["would"] == "power_off"
    assert not any(p in json.dumps(execution) for p in bmc.passwords())
    assert bmc.journal(failed) == [] and cloud.evacuations(ids[0]) == []
    assert cloud.service(failed).forced_down is False


def test_no_bmc_password_in_mistral_or_the_lab_logs(cloud, bmcs):
    secrets = bmc.passwords()
    assert len(secrets) == 2 and EXECUTIONS, "run with the tests above: it scans their runs"
    seen = []
    for execution_id in EXECUTIONS:
        seen.append(json.dumps(mistral_client.get_execution(cloud.mistral_url, execution_id)))
        seen.append(json.dumps(mistral_client.action_executions(cloud.mistral_url,
                                                                execution_id)))
    logs = [p for p in pathlib.Path(state.lab_dir(), "services").rglob("*.log")]
    assert any("mistral" in str(p) for p in logs)
    seen.extend(p.read_text(errors="replace") for p in logs)
    for text in seen:
        for secret in secrets:
            assert secret not in text
    # the scan can fail: the inventory does hold them
    assert all(s in pathlib.Path(bmcs["inventory"]).read_text() for s in secrets)
