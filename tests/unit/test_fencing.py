# SPDX-License-Identifier: Apache-2.0
import datetime

import pytest

from selfheal_actions.common import markers
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.hosts import fencing
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import service


def services(*states):
    return [service(f"h{i}", state=s) for i, s in enumerate(states)]


def test_down_host_is_forced_down_then_disabled():
    svcs = services("down", "up", "up")
    assert fencing.fencing_steps(svcs[0], svcs, 0.5) == ["force_down", "disable"]


def test_host_still_up_is_refused_unless_powered_off():
    svcs = services("up", "up", "up")
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.5)
    assert err.value.reason == "host_still_up"
    assert fencing.fencing_steps(svcs[0], svcs, 0.5, host_powered_off=True) == [
        "force_down", "disable"]


def test_partition_is_refused():
    svcs = services("down", "down", "up")
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.5)
    assert err.value.reason == "too_many_hosts_down"
    assert err.value.details["down_hosts"] == ["h0", "h1"]
    # exactly half is not "more than" half
    svcs = services("down", "up")
    assert fencing.fencing_steps(svcs[0], svcs, 0.5)


def test_already_fenced_needs_nothing():
    svc = service("h0", state="down", status="disabled", forced_down=True,
                  reason=markers.make(markers.FENCED, "exec-1", "nic down"))
    assert fencing.fencing_steps(svc, [svc, service("h1")], 0.5) == []


def test_maintenance_host_is_refused_unless_forced():
    svc = service("h0", state="down", status="disabled",
                  reason=markers.make(markers.MAINTENANCE, "exec-1"))
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svc, [svc, service("h1"), service("h2")], 0.5)
    assert err.value.reason == "host_in_maintenance"
    assert fencing.fencing_steps(svc, [svc, service("h1"), service("h2")], 0.5, force=True) == [
        "force_down"]


def test_marker_round_trip():
    at = datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=datetime.timezone.utc)
    text = markers.make(markers.FENCED, "abc-123", "NIC down on eth0", at=at)
    assert text == "selfheal:fenced 2026-11-22T03:04:05Z by abc-123: NIC down on eth0"
    assert markers.parse(text) == {"kind": "fenced", "at": at, "by": "abc-123",
                                   "note": "NIC down on eth0", "before": None}
    assert markers.parse("disabled by admin") is None
    assert len(markers.make(markers.FENCED, "x", "y" * 400)) == 255


class Context:
    class execution:  # noqa: N801 - shape of mistral-lib's context
        workflow_execution_id = "exec-42"

    security = None


def test_fence_action_fences_once_and_reports(use_fake):
    nova = use_fake(FakeNova(services=services("down", "up", "up")))
    result = fencing.FenceHostAction(host="h0", reason="NIC down").run(Context())
    assert result.error is None
    assert result.data["changed"] is True
    assert [c["change"] for c in result.data["changes"]] == ["forced_down", "disabled"]
    # what the fake recorded is what a real Nova would have been asked
    svc = nova.services[0]
    assert svc["disabled_reason"].startswith("selfheal:fenced ")
    assert "by exec-42: NIC down" in svc["disabled_reason"]
    again = fencing.FenceHostAction(host="h0").run(Context())
    assert again.data["changed"] is False and again.data["changes"] == []


def test_fence_dry_run_changes_nothing(use_fake):
    nova = use_fake(FakeNova(services=services("down", "up", "up")))
    result = fencing.FenceHostAction(host="h0", dry_run=True).run(Context())
    assert result.data["dry_run"] is True and result.data["changed"] is False
    assert [c["change"] for c in result.data["changes"]] == ["forced_down", "disabled"]
    assert nova.services[0]["forced_down"] is False and nova.services[0]["status"] == "enabled"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"host": ""}, "'host' is required"),
    ({"host": 12}, "'host' must be a string"),
    ({"host": "h0", "max_down_ratio": "lots"}, "'max_down_ratio' must be a number"),
    ({"host": "h0", "max_down_ratio": 3}, "at most 1"),
    ({"host": "h0", "dry_run": "maybe"}, "'dry_run' must be true or false"),
    ({"host": "h0", "microversion": "3.x"}, "'microversion' must look like"),
])
def test_fence_bad_input_is_a_clear_error_and_changes_nothing(use_fake, kwargs, fragment):
    nova = use_fake(FakeNova(services=services("down", "up", "up")))
    result = fencing.FenceHostAction(**kwargs).run(Context())
    assert result.error["reason"] == "invalid_input"
    assert fragment in result.error["message"]
    assert result.error["changed"] is False
    assert nova.calls == []


def test_unknown_host_names_the_known_ones(use_fake):
    use_fake(FakeNova(services=services("down", "up")))
    result = fencing.FenceHostAction(host="nope").run(Context())
    assert result.error["reason"] == "host_not_found"
    assert "h0, h1" in result.error["message"]


def _fenced_service(alive):
    svc = service("h0", state="down", status="disabled", forced_down=True,
                  reason=markers.make(markers.FENCED, "e"))
    svc["alive"] = alive
    return svc


def test_enable_refused_while_nova_holds_evacuations(use_fake):
    nova = use_fake(FakeNova(services=[_fenced_service(True), service("h1")]))
    nova.migrations.append({"id": 1, "instance_uuid": "x", "source_compute": "h0",
                            "status": "done"})
    result = fencing.EnableHostAction(host="h0").run(Context())
    assert result.error["reason"] == "host_not_recovered"
    assert "Restart nova-compute" in result.error["message"]
    assert nova.services[0]["forced_down"] is True and nova.services[0]["status"] == "disabled"


def test_enable_puts_forced_down_back_when_the_host_stays_silent(use_fake):
    nova = use_fake(FakeNova(services=[_fenced_service(False), service("h1")]))
    result = fencing.EnableHostAction(host="h0", wait_seconds=1).run(Context())
    assert result.error["reason"] == "host_not_reporting"
    assert nova.services[0]["forced_down"] is True and nova.services[0]["status"] == "disabled"


def test_enable_lifts_forced_down_then_enables(use_fake):
    nova = use_fake(FakeNova(services=[_fenced_service(True), service("h1")]))
    dry = fencing.EnableHostAction(host="h0", dry_run=True).run(Context())
    assert [c["change"] for c in dry.data["changes"]] == ["forced_down_lifted", "enabled"]
    assert nova.services[0]["forced_down"] is True
    result = fencing.EnableHostAction(host="h0").run(Context())
    assert [c["change"] for c in result.data["changes"]] == ["forced_down_lifted", "enabled"]
    assert nova.calls.index(("force_down", "svc-h0", False)) < nova.calls.index(
        ("enable", "svc-h0"))
    again = fencing.EnableHostAction(host="h0").run(Context())
    assert again.data["changes"] == [] and again.data["changed"] is False


def test_enable_leaves_hosts_disabled_by_others(use_fake):
    svc = service("h0", status="disabled", reason="broken disk, do not touch")
    use_fake(FakeNova(services=[svc, service("h1")]))
    result = fencing.EnableHostAction(host="h0").run(Context())
    assert result.error["reason"] == "disabled_by_someone_else"


# --- an operator's disabled reason survives fencing and repair -----------------

def test_fencing_keeps_an_operators_disable_reason_in_the_marker():
    svc = service("h0", state="down", status="disabled", reason="RMA 4711, do not enable")
    steps = fencing.fencing_steps(svc, [svc, service("h1"), service("h2")], 0.5)
    assert steps == ["force_down", "disable"]
    marker = fencing.fenced_marker(Context(), "NIC down", before=svc["disabled_reason"])
    found = markers.parse(marker)
    assert found["kind"] == markers.FENCED and found["note"] == "NIC down"
    assert found["before"] == "RMA 4711, do not enable"
    # a long note gives way; the operator's reason is kept whole
    long = markers.parse(fencing.fenced_marker(Context(), "x" * 300, before="RMA 4711"))
    assert long["before"] == "RMA 4711" and len(markers.make(
        markers.FENCED, "e", "x" * 300, before="RMA 4711")) <= 255


def test_enable_after_repair_puts_the_operators_reason_back_not_enabled(use_fake):
    marker = markers.make(markers.FENCED, "e", "NIC down", before="RMA 4711, do not enable")
    svc = service("h0", state="down", status="disabled", forced_down=True, reason=marker)
    svc["alive"] = True
    nova = use_fake(FakeNova(services=[svc, service("h1")]))
    result = fencing.EnableHostAction(host="h0").run(Context())
    assert result.error is None, result.error
    assert [c["change"] for c in result.data["changes"]] == [
        "forced_down_lifted", "disabled_reason_restored"]
    assert nova.services[0]["status"] == "disabled"
    assert nova.services[0]["disabled_reason"] == "RMA 4711, do not enable"
    assert result.data["enabled"] is False and "RMA 4711" in result.data["note"]
    assert nova.count("enable") == 0


# --- the partition guard --------------------------------------------------------

def test_decommissioned_services_do_not_dilute_the_partition_guard():
    # 2 of 4 enabled hosts down, plus 6 long-dead services an operator disabled
    svcs = services("down", "down", "up", "up")
    svcs += [service(f"old{i}", state="down", status="disabled", reason="decommissioned")
             for i in range(6)]
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.4)
    assert err.value.reason == "too_many_hosts_down"


def test_hosts_fenced_earlier_still_count_as_down():
    svcs = services("down", "up", "up", "up")
    svcs.append(service("h9", state="down", status="disabled", forced_down=True,
                        reason=markers.make(markers.FENCED, "e")))
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.3)
    assert err.value.reason == "too_many_hosts_down"
    assert fencing.fencing_steps(svcs[0], svcs, 0.5)


def test_an_absolute_cap_on_down_hosts():
    svcs = services("down", "down", "up", "up", "up", "up", "up", "up")
    assert fencing.fencing_steps(svcs[0], svcs, 0.5)
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.5, max_down_hosts=1)
    assert err.value.reason == "too_many_hosts_down" and "max_down_hosts" in err.value.message


def test_a_down_cell_refuses_instead_of_crashing():
    # microversion >= 2.69: services of a down cell have status UNKNOWN, no state, no id
    svcs = services("down", "up", "up") + [{"binary": "nova-compute", "host": "cell2-h1",
                                              "status": "UNKNOWN"}]
    with pytest.raises(ActionFailure) as err:
        fencing.fencing_steps(svcs[0], svcs, 0.5)
    assert err.value.reason == "service_state_unknown" and "cell2-h1" in err.value.message


def test_fence_rechecks_after_a_settle_delay(use_fake, monkeypatch):
    svcs = services("down", "up", "up", "up")
    nova = use_fake(FakeNova(services=svcs))
    slept = []

    def settle(seconds):
        slept.append(seconds)
        for svc in nova.services[1:3]:  # two more hosts went silent meanwhile
            svc["state"] = "down"

    monkeypatch.setattr(fencing.time, "sleep", settle)
    result = fencing.FenceHostAction(host="h0", settle_seconds=2).run(Context())
    assert slept == [2]
    assert result.error["reason"] == "too_many_hosts_down"
    assert nova.count("force_down") == 0 and nova.count("disable") == 0


# --- an alarm that comes before Nova notices -------------------------------------

def test_fence_waits_for_nova_to_see_the_host_down(use_fake, monkeypatch):
    svcs = services("up", "up", "up")
    nova = use_fake(FakeNova(services=svcs))
    waited = []

    def later(seconds):
        waited.append(seconds)
        if sum(waited) >= 20:
            nova.services[0]["state"] = "down"  # service_down_time passed

    monkeypatch.setattr(fencing.time, "sleep", later)
    monkeypatch.setattr(fencing.time, "monotonic", lambda: sum(waited))
    result = fencing.FenceHostAction(host="h0", wait_for_down=60, settle_seconds=0).run(
        Context())
    assert result.error is None, result.error
    assert result.data["waited_for_down"] >= 20
    assert [c["change"] for c in result.data["changes"]] == ["forced_down", "disabled"]


def test_fence_gives_up_waiting_and_changes_nothing(use_fake, monkeypatch):
    nova = use_fake(FakeNova(services=services("up", "up", "up")))
    monkeypatch.setattr(fencing.time, "sleep", lambda s: None)
    clock = iter(range(0, 10000, 5))
    monkeypatch.setattr(fencing.time, "monotonic", lambda: next(clock))
    result = fencing.FenceHostAction(host="h0", wait_for_down=30).run(Context())
    assert result.error["reason"] == "host_still_up"
    assert "30 s" in result.error["message"]
    assert nova.count("force_down") == 0
