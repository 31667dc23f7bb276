# SPDX-License-Identifier: Apache-2.0
"""disable_monitoring / enable_monitoring on the fake Nova and a fake Vitrage."""

import pytest

from selfheal_actions.common import alarm_names
from selfheal_actions.common import markers
from selfheal_actions.hosts import fencing
from selfheal_actions.maintenance import monitoring as monitoring_actions
from selfheal_actions.maintenance import vitrage as vitrage_api
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import service
from tests.unit.test_fencing import Context

HOST = "h0"


class FakeMonitor:
    backend = "vitrage"

    def __init__(self):
        self.events = []
        self.in_maintenance = set()

    def set_maintenance(self, host, on, reason=None, until=None, by=None):
        self.events.append({"host": host, "on": on, "reason": reason, "until": until, "by": by})
        (self.in_maintenance.add if on else self.in_maintenance.discard)(host)


@pytest.fixture
def vitrage(monkeypatch):
    """The monitor the actions reach; ``vitrage.down = reason`` makes it unavailable."""
    monitor = FakeMonitor()
    monitor.down = None

    def connect(context):
        if monitor.down:
            raise vitrage_api.MonitoringUnavailable(monitor.down, f"Vitrage is {monitor.down}")
        return monitor

    monkeypatch.setattr(vitrage_api, "connect", connect)
    return monitor


def cloud(**svc):
    return FakeNova(services=[service(HOST, **svc), service("h1"), service("h2")])


def disable(**kwargs):
    kwargs.setdefault("host", HOST)
    return monitoring_actions.DisableMonitoringAction(**kwargs).run(Context())


def enable(**kwargs):
    kwargs.setdefault("host", HOST)
    return monitoring_actions.EnableMonitoringAction(**kwargs).run(Context())


def test_note_round_trip_keeps_tags_before_the_text():
    note = monitoring_actions.make_note("disk swap; then [reboot]", True, "2026-11-22T10:00:00Z")
    assert note == "[vitrage; until 2026-11-22T10:00:00Z] disk swap; then [reboot]"
    assert monitoring_actions.parse_note(note) == {
        "monitored": True, "until": "2026-11-22T10:00:00Z", "text": "disk swap; then [reboot]"}
    assert monitoring_actions.parse_note("plain") == {"monitored": False, "until": None,
                                               "text": "plain"}
    # Nova keeps 255 characters: the tags survive a long reason
    marker = markers.make(markers.MAINTENANCE, "exec-1",
                          monitoring_actions.make_note("x" * 400, True))
    assert len(marker) == 255
    assert monitoring_actions.parse_note(markers.parse(marker)["note"])["monitored"] is True


def test_disable_raises_the_alarm_then_marks_the_service(use_fake, vitrage):
    nova = use_fake(cloud())
    result = disable(reason="disk swap", until="2026-11-22T10:00:00Z")
    assert result.error is None, result.error
    assert vitrage.events == [{"host": HOST, "on": True, "reason": "disk swap",
                               "until": "2026-11-22T10:00:00Z", "by": "exec-42"}]
    svc = nova.services[0]
    assert svc["status"] == "disabled"
    found = markers.parse(svc["disabled_reason"])
    assert found["kind"] == markers.MAINTENANCE and found["by"] == "exec-42"
    assert found["note"] == "[vitrage; until 2026-11-22T10:00:00Z] disk swap"
    assert [c["change"] for c in result.data["changes"]] == ["maintenance_alarm_raised",
                                                              "disabled"]
    assert result.data["changes"][0]["alarm"] == alarm_names.MAINTENANCE_ALARM
    assert result.data["monitoring"] == {"backend": "vitrage", "in_maintenance": True,
                                         "changed": True}
    # the host failure flow now refuses the host unless forced
    svc["state"] = "down"
    with pytest.raises(Exception) as refused:
        fencing.fencing_steps(svc, nova.services, 0.5)
    assert refused.value.reason == "host_in_maintenance"


def test_disable_twice_changes_nothing_the_second_time(use_fake, vitrage):
    nova = use_fake(cloud())
    first = disable(reason="disk swap")
    marker = nova.services[0]["disabled_reason"]
    second = disable(reason="disk swap")
    assert first.data["changed"] is True
    assert second.error is None and second.data["changed"] is False
    assert second.data["changes"] == []
    assert nova.services[0]["disabled_reason"] == marker
    assert len(vitrage.events) == 1 and nova.count("disable") == 1


def test_without_vitrage_the_nova_part_still_happens_and_says_so(use_fake, vitrage):
    vitrage.down = vitrage_api.UNREACHABLE
    nova = use_fake(cloud())
    result = disable()
    assert result.error is None
    assert result.data["monitoring"]["changed"] is False
    assert result.data["monitoring"]["reason"] == "vitrage_unreachable"
    assert "monitoring was not changed" in result.data["monitoring"]["message"]
    assert nova.services[0]["status"] == "disabled"
    assert monitoring_actions.parse_note(markers.parse(
        nova.services[0]["disabled_reason"])["note"])["monitored"] is False
    # once Vitrage answers, a rerun raises the alarm and records it
    vitrage.down = None
    again = disable()
    assert [c["change"] for c in again.data["changes"]] == ["maintenance_alarm_raised",
                                                             "marker_updated"]
    assert monitoring_actions.parse_note(markers.parse(
        nova.services[0]["disabled_reason"])["note"])["monitored"] is True


def test_require_monitoring_makes_an_absent_vitrage_an_error_that_changes_nothing(
        use_fake, vitrage):
    vitrage.down = vitrage_api.NOT_INSTALLED
    nova = use_fake(cloud())
    result = disable(require_monitoring=True)
    assert result.error["reason"] == "monitoring_unavailable"
    assert result.error["details"]["monitoring_reason"] == "vitrage_not_installed"
    assert result.error["changed"] is False
    assert nova.services[0]["status"] == "enabled" and nova.count("disable") == 0


def test_a_service_disabled_by_someone_else_is_left_alone_unless_forced(use_fake, vitrage):
    nova = use_fake(cloud(status="disabled", reason="RAM test by ops"))
    result = disable()
    assert result.error["reason"] == "disabled_by_someone_else"
    assert vitrage.events == [] and nova.count("disable") == 0
    forced = disable(force=True)
    assert forced.error is None
    assert forced.data["previous_reason"] == "RAM test by ops"
    assert markers.kind_of(nova.services[0]["disabled_reason"]) == markers.MAINTENANCE


def test_a_fenced_host_is_not_put_in_maintenance(use_fake, vitrage):
    use_fake(cloud(state="down", status="disabled", forced_down=True,
                   reason=markers.make(markers.FENCED, "e", "NIC down")))
    result = disable()
    assert result.error["reason"] == "host_fenced"
    assert "enable_host" in result.error["message"]


def test_dry_runs_change_nothing(use_fake, vitrage):
    nova = use_fake(cloud())
    plan = disable(dry_run=True)
    assert plan.error is None and plan.data["changed"] is False
    assert [c["change"] for c in plan.data["changes"]] == ["maintenance_alarm_raised",
                                                            "disabled"]
    assert vitrage.events == [] and nova.count("disable") == 0
    disable()
    events = len(vitrage.events)
    plan = enable(dry_run=True)
    assert plan.error is None and plan.data["changed"] is False
    assert [c["change"] for c in plan.data["changes"]] == ["maintenance_alarm_cleared",
                                                            "enabled"]
    assert len(vitrage.events) == events and nova.count("enable") == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"host": None}, "'host' is required"),
    ({"until": "next tuesday"}, "'until' must be a UTC time"),
    ({"require_monitoring": "maybe"}, "'require_monitoring' must be true or false"),
    ({"microversion": "3.1"}, "'microversion' must look like"),
])
def test_bad_input_changes_nothing(use_fake, vitrage, kwargs, fragment):
    nova = use_fake(cloud())
    result = disable(**kwargs)
    assert result.error["reason"] == "invalid_input"
    assert fragment in result.error["message"]
    assert vitrage.events == [] and nova.count("disable") == 0


def test_unknown_host_is_named(use_fake, vitrage):
    use_fake(cloud())
    result = enable(host="nope")
    assert result.error["reason"] == "host_not_found"
    assert "h0, h1, h2" in result.error["message"]


def test_enable_refuses_an_unhealthy_host_and_changes_nothing(use_fake, vitrage):
    nova = use_fake(cloud())
    disable()
    events = len(vitrage.events)
    nova.services[0]["state"] = "down"
    result = enable()
    assert result.error["reason"] == "host_not_healthy"
    assert "not reporting" in result.error["message"]
    assert result.error["changed"] is False
    assert len(vitrage.events) == events and HOST in vitrage.in_maintenance
    assert nova.services[0]["status"] == "disabled"
    nova.services[0].update(state="up", forced_down=True)
    assert enable().error["reason"] == "host_not_healthy"


def test_enable_undoes_exactly_what_disable_did(use_fake, vitrage):
    nova = use_fake(cloud())
    disable()
    result = enable()
    assert result.error is None, result.error
    assert [c["change"] for c in result.data["changes"]] == ["maintenance_alarm_cleared",
                                                              "enabled"]
    assert vitrage.events[-1]["on"] is False and HOST not in vitrage.in_maintenance
    assert nova.services[0]["status"] == "enabled"
    assert nova.services[0]["disabled_reason"] is None
    again = enable()
    assert again.error is None and again.data["changed"] is False
    assert len(vitrage.events) == 2


def test_enable_leaves_vitrage_alone_when_disable_could_not_tell_it(use_fake, vitrage):
    vitrage.down = vitrage_api.NOT_CONFIGURED
    nova = use_fake(cloud())
    disable()
    vitrage.down = None
    result = enable()
    assert [c["change"] for c in result.data["changes"]] == ["enabled"]
    assert result.data["monitoring"]["reason"] == "not_raised_by_selfheal"
    assert vitrage.events == [] and nova.services[0]["status"] == "enabled"


def test_enable_with_vitrage_gone_enables_and_says_how_to_clear_or_fails_if_required(
        use_fake, vitrage):
    nova = use_fake(cloud())
    disable()
    vitrage.down = vitrage_api.UNREACHABLE
    strict = enable(require_monitoring=True)
    assert strict.error["reason"] == "monitoring_unavailable"
    assert nova.services[0]["status"] == "disabled"
    lenient = enable()
    assert lenient.error is None
    assert nova.services[0]["status"] == "enabled"
    assert "vitrage event post --type selfheal.maintenance" in \
        lenient.data["monitoring"]["message"]


def test_enable_refuses_a_host_it_did_not_put_in_maintenance(use_fake, vitrage):
    nova = use_fake(cloud(status="disabled", reason="RAM test by ops"))
    assert enable().error["reason"] == "disabled_by_someone_else"
    assert nova.services[0]["status"] == "disabled"
    assert enable(force=True).error is None
    assert nova.services[0]["status"] == "enabled" and vitrage.events == []


class _Events:
    def __init__(self, error=None):
        self.posted = []
        self.error = error

    def post(self, event_time, event_type, details):
        if self.error:
            raise self.error
        self.posted.append({"time": event_time, "type": event_type, "details": details})


class _Client:
    def __init__(self, error=None):
        self.event = _Events(error)


def test_vitrage_monitor_posts_a_doctor_event_for_the_host():
    client = _Client()
    vitrage_api.VitrageMonitor(client).set_maintenance("h0", True, reason="disk swap",
                                                      until="2026-11-22T10:00:00Z", by="e1")
    vitrage_api.VitrageMonitor(client).set_maintenance("h0", False)
    raised, cleared = client.event.posted
    assert raised["type"] == cleared["type"] == alarm_names.MAINTENANCE_ALARM
    assert raised["details"] == {"hostname": "h0", "status": "down", "source": "selfheal",
                                 "cause": "disk swap",
                                 "until": "2026-11-22T10:00:00Z", "by": "e1"}
    assert cleared["details"]["status"] == "up"
    assert raised["time"][:2] == "20" and "T" in raised["time"]


def test_vitrage_errors_become_unavailable():
    class EndpointNotFound(Exception):
        pass

    with pytest.raises(vitrage_api.MonitoringUnavailable) as err:
        vitrage_api.VitrageMonitor(_Client(ConnectionError("refused"))).set_maintenance("h", True)
    assert err.value.reason == vitrage_api.UNREACHABLE and "refused" in err.value.message
    with pytest.raises(vitrage_api.MonitoringUnavailable) as err:
        vitrage_api.VitrageMonitor(_Client(EndpointNotFound())).set_maintenance("h", True)
    assert err.value.reason == vitrage_api.NOT_CONFIGURED


def test_connect_without_the_client_or_an_endpoint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vitrageclient", None)
    with pytest.raises(vitrage_api.MonitoringUnavailable) as err:
        vitrage_api.connect(Context())
    assert err.value.reason == vitrage_api.NOT_INSTALLED
    assert "selfheal[vitrage]" in err.value.message
