# SPDX-License-Identifier: Apache-2.0
"""The host watch action on fakes: cycles, starts, kill switch, housekeeping."""

import datetime
import itertools

import pytest

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import mistral_api
from selfheal_actions.common import timeutil
from selfheal_actions.watch import signals
from selfheal_actions.watch import watch
from tests.unit.test_fencing import Context

WATCH = "selfheal.host_failure.watch"
HEAL = "selfheal.host_failure.evacuate_host"


def stamp(seconds_ago=0.0):
    moment = timeutil.utcnow() - datetime.timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


class FakeCloud:
    """Nova's services and aggregates; a host's death ages its heartbeat."""

    def __init__(self, hosts=("c0", "c1", "c2", "c3")):
        self.dead = {}          # host -> cycle from which it is silent
        self.cycle = 0
        self.hosts = list(hosts)
        self.aggregate_list = []
        self.disabled = {}
        self.fail_reads = 0

    def all_services(self):
        if self.fail_reads:
            self.fail_reads -= 1
            raise ConnectionError("compute API unreachable")
        self.cycle += 1
        services = [{"binary": "nova-scheduler", "host": "ctl", "state": "up",
                     "status": "enabled", "updated_at": stamp()}]
        for h in self.hosts:
            silent_for = (self.cycle - self.dead[h] + 1) * 20.0 if h in self.dead else 0.0
            services.append({"binary": "nova-compute", "host": h, "state": "up",
                             "status": "disabled" if h in self.disabled else "enabled",
                             "disabled_reason": self.disabled.get(h),
                             "forced_down": False, "updated_at": stamp(silent_for)})
        return services

    def aggregates(self):
        return list(self.aggregate_list)


class FakeMistral:
    def __init__(self):
        self.execs = []
        self.env = {}
        self.ids = (f"exec-{i}" for i in itertools.count(1))
        self.deleted = []

    def add(self, workflow, state, input=None, output=None, created_ago=0.0, id=None):
        created = timeutil.utcnow() - datetime.timedelta(seconds=created_ago)
        execution = {"id": id or next(self.ids), "workflow_name": workflow, "state": state,
                     "input": input or {}, "output": output or {},
                     "created_at": created.strftime("%Y-%m-%d %H:%M:%S")}
        self.execs.append(execution)
        return execution

    def executions(self, workflow_name, state=None, limit=100, newest_first=False,
                   include_output=False):
        found = [e for e in self.execs if e["workflow_name"] == workflow_name
                 and (state is None or e["state"] == state)]
        found.sort(key=lambda e: e["created_at"], reverse=newest_first)
        return [dict(e) for e in found[:limit]]

    def start(self, workflow_name, workflow_input, description=""):
        return self.add(workflow_name, "RUNNING", input=workflow_input)

    def delete_execution(self, execution_id):
        self.deleted.append(execution_id)
        self.execs = [e for e in self.execs if e["id"] != execution_id]

    def environment(self, name):
        if isinstance(self.env.get(name), Exception):
            raise self.env[name]
        return self.env.get(name)

    def heals(self):
        return [e for e in self.execs if e["workflow_name"] == HEAL]


class WatchContext(Context):
    class execution:
        workflow_execution_id = "watch-self"
        action_execution_id = "a1"
        workflow_name = WATCH


@pytest.fixture
def lab(monkeypatch):
    cloud, mistral = FakeCloud(), FakeMistral()
    mistral.add(WATCH, "RUNNING", id="watch-self")
    monkeypatch.setattr(clients, "nova", lambda context, microversion=None: cloud)
    monkeypatch.setattr(compute, "NovaApi", lambda client: client)
    monkeypatch.setattr(mistral_api, "mistral", lambda context: mistral)
    monkeypatch.setattr(watch.time, "sleep", lambda seconds: None)
    ticks = itertools.count()
    monkeypatch.setattr(watch.time, "monotonic", lambda: float(next(ticks)))
    monkeypatch.delenv(clients.CLOUD_CONFIG_ENV, raising=False)
    return cloud, mistral


def run(**kw):
    kw.setdefault("interval", 1)
    kw.setdefault("period", 5)
    kw.setdefault("samples", 2)
    kw.setdefault("stale_after", 15)
    return watch.WatchHostsAction(**kw).run(WatchContext())


def test_a_dead_host_is_started_once_with_its_share_of_the_budget(lab):
    cloud, mistral = lab
    cloud.dead["c2"] = 1
    result = run(per_host_concurrency=7)
    assert result.error is None, result.error
    heals = mistral.heals()
    assert [h["input"] for h in heals] == [{
        "host": "c2", "concurrency": 7, "host_known_dead": False,
        "reason": "selfheal watch: nova stale 40s"}]
    assert [s["host"] for s in result.data["started"]] == ["c2"]
    assert result.data["changes"][0]["change"] == "heal_started"
    # the cycles after the start see the heal running and leave it alone
    assert "c2 [nova stale" in result.data["cycles"][-1]
    assert "healing" in result.data["cycles"][-1]


def test_heal_input_is_passed_on_and_cannot_override_what_the_watch_sets(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    result = run(heal_input={"fencing": "power", "target_hosts": ["c3"]})
    assert result.error is None
    assert mistral.heals()[0]["input"]["fencing"] == "power"
    bad = run(heal_input={"host": "c0"})
    assert bad.data is None and bad.error["reason"] == "invalid_input"
    assert "may not set ['host']" in bad.error["message"]


@pytest.mark.parametrize("inputs, words", [
    ({"interval": "NaN"}, "interval"),
    ({"samples": 0}, "samples"),
    ({"prometheus_url": "prometheus:9090"}, "http(s) URL"),
    ({"heal_input": ["fencing"]}, "mapping"),
    ({"budget": 1e9}, "budget"),
])
def test_bad_input_changes_nothing(lab, inputs, words):
    cloud, mistral = lab
    cloud.dead["c1"] = 0
    result = run(**inputs)
    assert result.error["reason"] == "invalid_input" and words in result.error["message"]
    assert mistral.heals() == [] and cloud.cycle == 0


def test_the_kill_switch_stops_the_heals_and_an_unreadable_switch_counts_as_on(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    mistral.env["selfheal-watch"] = {"paused": True, "reason": "RMA in rack 4"}
    result = run()
    assert mistral.heals() == []
    assert "kill switch is on: RMA in rack 4" in result.data["cycles"][-1]
    mistral.env["selfheal-watch"] = RuntimeError("HTTP 500")
    result = run()
    assert mistral.heals() == [] and "cannot be read" in result.data["cycles"][-1]
    mistral.env["selfheal-watch"] = {"paused": False}
    run()
    assert [h["input"]["host"] for h in mistral.heals()] == ["c1"]


def test_dry_run_decides_and_starts_or_deletes_nothing(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    for _ in range(30):
        mistral.add(WATCH, "SUCCESS", created_ago=600)
    result = run(dry_run=True)
    assert mistral.heals() == [] and mistral.deleted == []
    assert result.data["changed"] is False
    assert {c["change"] for c in result.data["changes"]} == {"would_start_heal"}


def test_old_watch_executions_are_deleted_beyond_keep(lab):
    cloud, mistral = lab
    for i in range(25):
        mistral.add(WATCH, "SUCCESS" if i % 2 else "ERROR", created_ago=1000 - i)
    result = run(keep_executions=10, period=0)
    assert len(result.data["deleted_executions"]) == 15
    finished = [e for e in mistral.execs if e["workflow_name"] == WATCH
                and e["state"] != "RUNNING"]
    assert len(finished) == 10


def test_a_second_watch_running_at_once_stops_at_once(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 0
    mistral.add(WATCH, "RUNNING", created_ago=30, id="older-watch")
    result = run()
    assert "another watch execution (older-watch) is running" in result.data["cycles"][0]
    assert mistral.heals() == [] and cloud.cycle == 0


def test_a_watch_running_for_hours_is_stuck_and_ignored(lab):
    cloud, mistral = lab
    mistral.add(WATCH, "RUNNING", created_ago=7200, id="stuck-watch")
    result = run(period=0)
    assert result.data["cycles"][0].startswith("cycle 1:")


def test_counts_carry_over_from_the_previous_watch_when_it_just_ended(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 0
    mistral.add(WATCH, "SUCCESS", created_ago=60, output={
        "streaks": {"c1": 2}, "last_cycle_at": timeutil.iso(timeutil.utcnow())})
    result = run(samples=3, period=0)  # one cycle: 2 carried + 1
    assert [s["host"] for s in result.data["started"]] == ["c1"]


def test_counts_from_a_watch_long_ago_are_not_carried(lab):
    cloud, mistral = lab
    cloud.dead["c1"] = 0
    long_ago = timeutil.utcnow() - datetime.timedelta(minutes=30)
    mistral.add(WATCH, "SUCCESS", created_ago=1900, output={
        "streaks": {"c1": 2}, "last_cycle_at": timeutil.iso(long_ago)})
    result = run(samples=3, period=0)
    assert result.data["started"] == [] and result.data["streaks"] == {"c1": 1}


def test_a_blind_cycle_is_reported_and_the_next_one_goes_on(lab):
    cloud, mistral = lab
    cloud.fail_reads = 1
    result = run(period=2)
    assert result.error is None
    assert result.data["cycles"][0].startswith("cycle 1: cannot observe: ConnectionError")
    assert result.data["cycles"][1].startswith("cycle 2: 4 compute hosts")


def test_a_watch_that_never_saw_nova_fails_with_a_reason(lab):
    cloud, mistral = lab
    cloud.fail_reads = 100
    result = run(period=2)
    assert result.error["reason"] == "watch_blind"
    assert "Check the compute API" in result.error["message"]


def test_prometheus_agreeing_makes_the_heal_power_the_host_off_at_once(lab, monkeypatch):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    monkeypatch.setattr(signals, "exporter_states",
                        lambda *a, **kw: {"c0": True, "c1": False, "c2": True, "c3": True})
    run(prometheus_url="http://prom:9090")
    assert mistral.heals()[0]["input"]["host_known_dead"] is True
    assert mistral.heals()[0]["input"]["reason"] == (
        "selfheal watch: nova stale 40s, exporter down")


def test_the_cloud_config_names_prometheus(lab, monkeypatch, tmp_path):
    cloud, mistral = lab
    config = tmp_path / "cloud.yaml"
    config.write_text('{"prometheus": {"url": "http://prom:9090", "query": "up{job=\\"x\\"}",'
                      ' "host_label": "node"}}')
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(config))
    asked = []
    monkeypatch.setattr(signals, "exporter_states",
                        lambda url, query, label, verify: asked.append((url, query, label)) or {})
    run(period=0)
    assert asked == [("http://prom:9090", 'up{job="x"}', "node")]


def test_prometheus_samples_map_to_hosts_without_port_and_by_short_name(monkeypatch):
    class Answer:
        status_code = 200

        @staticmethod
        def json():
            return {"status": "success", "data": {"result": [
                {"metric": {"instance": "c1.example.com:9100"}, "value": [0, "1"]},
                {"metric": {"instance": "c2:9100"}, "value": [0, "0"]},
                {"metric": {"instance": "c3:9100"}, "value": [0, "1"]},
                {"metric": {"instance": "c3:9101"}, "value": [0, "0"]}]}}

    monkeypatch.setattr(signals.requests, "get", lambda *a, **kw: Answer())
    states = signals.exporter_states("http://prom:9090")
    assert states == {"c1.example.com": True, "c1": True, "c2": False, "c3": False}


def test_staleness_is_measured_by_novas_clock_not_the_executors():
    # Nova's clock is 10 minutes behind the executor's: nothing is stale
    behind = timeutil.utcnow() - datetime.timedelta(minutes=10)
    services = [
        {"binary": "nova-conductor", "host": "ctl", "state": "up",
         "updated_at": behind.strftime("%Y-%m-%dT%H:%M:%S.%f")},
        {"binary": "nova-compute", "host": "c1", "state": "up", "status": "enabled",
         "updated_at": (behind - datetime.timedelta(seconds=5)).isoformat()},
        {"binary": "nova-compute", "host": "c2", "state": "up", "status": "enabled",
         "updated_at": (behind - datetime.timedelta(seconds=45)).isoformat()}]
    observations, scheduler_up = signals.nova_observations(services, stale_after=30)
    assert [(o["host"], o["nova"]) for o in observations] == [("c1", "up"), ("c2", "stale")]
    assert scheduler_up is False


def test_a_heal_that_failed_is_not_restarted_every_cycle(lab):
    # seen on the lab: a heal that ended in error at once was started again
    # at every cycle (four heals in four seconds)
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    original_start = mistral.start

    def start_and_fail(workflow_name, workflow_input, description=""):
        execution = original_start(workflow_name, workflow_input, description)
        execution["state"] = "ERROR"
        execution["output"] = {"error": {"reason": "bmc_unreachable"}}
        execution["updated_at"] = execution["created_at"]
        next(e for e in mistral.execs if e["id"] == execution["id"]).update(execution)
        return execution

    mistral.start = start_and_fail
    result = run(period=6)
    assert len(mistral.heals()) == 1
    assert "recent_failure: heal exec-" in result.data["cycles"][-1]
    assert "(bmc_unreachable)" in result.data["cycles"][-1]
    # with retry_after 0 the next watch tries again
    run(period=0, retry_after=0, samples=1)
    assert len(mistral.heals()) == 2


def test_without_keystone_the_watch_sends_mistral_no_placeholder_token(monkeypatch, tmp_path):
    # seen on the lab: a Mistral without Keystone copied the placeholder
    # token into the heal's context, and its Nova calls failed
    config = tmp_path / "cloud.yaml"
    config.write_text('{"endpoints": {"workflowv2": "http://mistral:8989/v2"}, '
                      '"headers": {"X-Auth-User": "admin"}}')
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(config))
    api = mistral_api.mistral(Context())
    assert api.endpoint == "http://mistral:8989/v2"
    assert "X-Auth-Token" not in (api.session.additional_headers or {})
    assert api.session.auth is None


def test_without_keystone_and_without_a_mistral_endpoint_the_error_says_what_to_add(
        monkeypatch, tmp_path):
    config = tmp_path / "cloud.yaml"
    config.write_text('{"endpoints": {"compute": "http://nova:8774/v2.1"}}')
    monkeypatch.setenv(clients.CLOUD_CONFIG_ENV, str(config))
    with pytest.raises(mistral_api.ActionFailure) as failure:
        mistral_api.mistral(Context())
    assert failure.value.reason == "configuration_error"
    assert "endpoints.workflowv2" in failure.value.message


def test_the_last_hosts_back_from_a_switch_blip_are_not_fenced(lab):
    # seen on the lab: as the hosts of a blip came back one by one, the share
    # of failing hosts fell under the limit and the last two were healed
    cloud, mistral = lab
    cloud.hosts = [f"c{i}" for i in range(8)]
    for name in cloud.hosts[:4]:
        cloud.dead[name] = 1
    real = cloud.all_services

    def blip_ends_at_cycle_4():
        if cloud.cycle == 3:
            for name in ("c0", "c1"):
                cloud.dead.pop(name)
        return real()

    cloud.all_services = blip_ends_at_cycle_4
    result = run(period=8)
    assert mistral.heals() == [], result.data["cycles"]
    assert any("held: global_limit" in line for line in result.data["cycles"])
    assert "held: settling" in result.data["cycles"][-1]
    # the next watch knows the limit held a moment ago
    mistral.add(WATCH, "SUCCESS", output=result.data)
    again = run(period=0)
    assert mistral.heals() == [] and "held: settling" in again.data["cycles"][-1]
    # and heals what is still dead once settle_after has passed
    mistral.add(WATCH, "SUCCESS", output=again.data)
    later = run(period=0, settle_after=0)
    assert sorted(h["input"]["host"] for h in mistral.heals()) == ["c2", "c3"], \
        later.data["cycles"]


@pytest.mark.parametrize("variables, words", [
    ({"pause": True}, "has no 'paused' variable"),
    ({"paused": "yes"}, "neither true nor false"),
    ({"paused": 1}, "neither true nor false"),
    ({}, "has no 'paused' variable"),
])
def test_a_mistyped_kill_switch_counts_as_on(lab, variables, words):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    mistral.env["selfheal-watch"] = variables
    result = run()
    assert mistral.heals() == [] and words in result.data["cycles"][-1]


@pytest.mark.parametrize("variables", [None, {"paused": False}, {"paused": "false"}])
def test_the_kill_switch_is_off_only_when_absent_or_false(lab, variables):
    cloud, mistral = lab
    cloud.dead["c1"] = 1
    mistral.env["selfheal-watch"] = variables
    run()
    assert [h["input"]["host"] for h in mistral.heals()] == ["c1"]
