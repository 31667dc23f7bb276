# SPDX-License-Identifier: Apache-2.0
"""Alertmanager silences of the maintenance flow, on a fake Alertmanager and
the fake Nova: created, found again and extended, expired at the end."""

import datetime
import json

import pytest

from selfheal_actions.common import clients
from selfheal_actions.common import timeutil
from selfheal_actions.maintenance import monitoring as monitoring_actions
from selfheal_actions.maintenance import silences
from selfheal_actions.maintenance import vitrage as vitrage_api
from tests.unit.fake_alertmanager import FakeAlertmanager
from tests.unit.test_maintenance import FakeMonitor
from tests.unit.test_maintenance import cloud
from tests.unit.test_maintenance import disable
from tests.unit.test_maintenance import enable

HOST = "h0"
URL = "http://am.example:9093"


@pytest.fixture
def vitrage(monkeypatch):
    """A Vitrage that answers (the silences come on top of it)."""
    monitor = FakeMonitor()
    monkeypatch.setattr(vitrage_api, "connect", lambda context: monitor)
    return monitor


@pytest.fixture
def am(monkeypatch):
    """The fake Alertmanager the actions reach through ``silences.connect``."""
    fake = FakeAlertmanager()

    def connect(config=None):
        return silences.Alertmanager(URL, fake)

    monkeypatch.setattr(silences, "connect", connect)
    return fake


def later(hours):
    return timeutil.iso(timeutil.utcnow() + datetime.timedelta(hours=hours))


def test_disable_silences_the_host_until_the_end_and_reports_the_id(use_fake, vitrage, am):
    use_fake(cloud())
    until = later(4)
    result = disable(reason="disk swap", until=until)
    assert result.error is None, result.error
    silence = result.data["silence"]
    assert silence["backend"] == "alertmanager" and silence["change"] == "created"
    (live,) = am.live(HOST)
    assert silence["id"] == live
    stored = am.silences[live]
    assert stored["matchers"] == [{"name": "instance", "value": HOST, "isRegex": False,
                                   "isEqual": True}]
    assert stored["createdBy"] == "selfheal"
    assert stored["comment"].startswith("selfheal:maintenance host=h0 by exec-42: disk swap")
    assert timeutil.iso(stored["endsAt"]) == until
    assert "silence_created" in [c["change"] for c in result.data["changes"]]


def test_a_rerun_finds_its_silence_and_extends_it_with_the_same_id(use_fake, vitrage, am):
    use_fake(cloud())
    first = disable(until=later(2))
    again = disable(until=later(2))
    assert again.data["silence"]["change"] == "unchanged"
    assert again.data["changed"] is False
    extended = disable(until=later(6))
    assert extended.data["silence"]["change"] == "extended"
    # one silence, the same id, the new end
    assert am.live(HOST) == [first.data["silence"]["id"]] == [extended.data["silence"]["id"]]
    assert timeutil.iso(am.silences[am.live(HOST)[0]]["endsAt"]) == later(6)
    posts = [c for c in am.calls if c[0] == "POST"]
    assert len(posts) == 2


def test_without_until_the_default_window_is_kept_on_a_rerun(use_fake, vitrage, am):
    use_fake(cloud())
    first = disable()
    ends = am.silences[first.data["silence"]["id"]]["endsAt"]
    assert abs((ends - timeutil.utcnow()).total_seconds() - silences.DEFAULT_SECONDS) < 60
    second = disable()
    assert second.data["silence"]["change"] == "unchanged"
    assert am.silences[first.data["silence"]["id"]]["endsAt"] == ends


def test_an_operators_own_silence_of_the_host_is_not_taken_as_ours(use_fake, vitrage, am):
    use_fake(cloud())
    theirs = am.request("POST", URL + "/api/v2/silences", json={
        "matchers": [{"name": "instance", "value": HOST, "isRegex": False, "isEqual": True}],
        "createdBy": "alice", "comment": "flapping disk", "startsAt": later(0),
        "endsAt": later(1)}, timeout=5).json()["silenceID"]
    result = disable()
    assert result.data["silence"]["change"] == "created"
    assert sorted(am.live(HOST)) == sorted([theirs, result.data["silence"]["id"]])
    done = enable()
    assert done.data["silence"]["expired"] == [result.data["silence"]["id"]]
    assert am.live(HOST) == [theirs]


def test_enable_expires_the_silence_and_a_rerun_changes_nothing(use_fake, vitrage, am):
    use_fake(cloud())
    made = disable(until=later(3)).data["silence"]["id"]
    done = enable()
    assert done.error is None, done.error
    assert done.data["silence"]["expired"] == [made]
    assert am.state(am.silences[made]) == "expired"
    assert "silence_expired" in [c["change"] for c in done.data["changes"]]
    again = enable()
    assert again.data["silence"] == {"backend": "alertmanager", "url": URL,
                                     "label": "instance", "expired": [], "changed": False}
    assert again.data["changed"] is False


def test_dry_runs_create_and_expire_nothing(use_fake, vitrage, am):
    nova = use_fake(cloud())
    planned = disable(until=later(2), dry_run=True)
    assert planned.data["silence"]["change"] == "created"
    assert planned.data["silence"]["id"] is None
    assert am.silences == {} and nova.services[0]["status"] == "enabled"
    made = disable(until=later(2)).data["silence"]["id"]
    checked = enable(dry_run=True)
    assert checked.data["silence"]["expired"] == [made]
    assert am.live(HOST) == [made]


def test_duplicates_left_by_a_crash_are_expired_and_one_is_kept(use_fake, vitrage, am):
    use_fake(cloud())
    alert = silences.Alertmanager(URL, am)
    for _ in range(2):  # two runs that crashed after POST, before recording
        am.request("POST", URL + "/api/v2/silences", json={
            "matchers": alert.matchers(HOST), "createdBy": "selfheal",
            "comment": silences.marker(HOST) + " by exec-1: x", "startsAt": later(0),
            "endsAt": later(1)}, timeout=5)
    result = disable(until=later(1))
    assert len(am.live(HOST)) == 1
    assert len(result.data["silence"]["expired_duplicates"]) == 1


def test_no_alertmanager_configured_goes_on_and_says_so(use_fake, vitrage, monkeypatch,
                                                       tmp_path):
    monkeypatch.delenv(clients.CLOUD_CONFIG_ENV, raising=False)
    nova = use_fake(cloud())
    result = disable()
    assert result.error is None
    assert result.data["silence"]["reason"] == "alertmanager_not_configured"
    assert nova.services[0]["status"] == "disabled"
    # and the end of the maintenance is not held up by it, even when required
    assert enable(require_silence=True).error is None


def test_require_silence_with_alertmanager_down_fails_and_changes_nothing(use_fake, vitrage, am):
    nova = use_fake(cloud())
    am.down = True
    result = disable(require_silence=True)
    assert result.error["reason"] == "silence_unavailable"
    assert result.error["details"]["silence_reason"] == "alertmanager_unreachable"
    assert result.error["changes"] == []
    assert nova.services[0]["status"] == "enabled" and vitrage.events == []
    # not required: the Nova part happens and the output says why no silence
    result = disable()
    assert result.data["silence"]["reason"] == "alertmanager_unreachable"
    assert nova.services[0]["status"] == "disabled"


def test_bad_require_silence_is_refused():
    result = monitoring_actions.DisableMonitoringAction(host=HOST, require_silence="yes").run(
        None)
    assert result.error["reason"] == "invalid_input"
    assert "require_silence" in result.error["message"]


def test_connect_reads_the_cloud_config(monkeypatch, tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text(json.dumps({"alertmanager": {"url": "http://am:9093/", "host_label": "host",
                                                 "verify": False, "default_seconds": 600}}))
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(path))
    alert = silences.connect()
    assert alert.url == "http://am:9093" and alert.host_label == "host"
    assert alert.session.verify is False and alert.default_seconds == 600
    path.write_text(json.dumps({"endpoints": {}}))
    with pytest.raises(silences.SilencesUnavailable) as missing:
        silences.connect()
    assert missing.value.reason == "alertmanager_not_configured"


def test_a_refusal_is_reported_with_alertmanagers_words():
    fake = FakeAlertmanager()
    alert = silences.Alertmanager(URL, fake)
    with pytest.raises(silences.SilencesUnavailable) as refused:
        alert.expire("no-such-id")
    assert refused.value.reason == "alertmanager_refused"
    assert "HTTP 500" in refused.value.message


def test_the_fake_refuses_what_alertmanager_refuses():
    fake = FakeAlertmanager()
    matchers = silences.Alertmanager(URL, fake).matchers(HOST)

    def post(**body):
        body = {"matchers": matchers, "createdBy": "", "comment": "", "startsAt": later(0),
                "endsAt": later(1), **body}
        return fake.request("POST", URL + "/api/v2/silences", json=body, timeout=5)

    assert post().status_code == 200  # 0.25 takes an empty creator and comment
    assert post(matchers=[]).status_code == 422
    assert post(startsAt=later(1), endsAt=later(0)).status_code == 400
    assert post(id="nope").status_code == 404
