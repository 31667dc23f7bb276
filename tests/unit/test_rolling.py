# SPDX-License-Identifier: Apache-2.0
"""Rolling maintenance: room, order, states (pure) and its actions, on fakes."""

import pytest

from selfheal_actions.common import mistral_api
from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.maintenance import rolling
from selfheal_actions.maintenance import rolling_plan as rp
from selfheal_actions.maintenance import stop_start
from tests.unit.fake_environments import FakeEnvironments
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service
from tests.unit.test_fencing import Context


def sized(uuid, host, vcpus=1, ram=512, disk=1, **kwargs):
    found = server(uuid, host=host, **kwargs)
    found["flavor"] = {"original_name": "f", "vcpus": vcpus, "ram": ram, "disk": disk}
    return found


class FakeMistral(FakeEnvironments):
    """Environments plus the executions and workflows the plan reads."""

    def __init__(self):
        super().__init__()
        self.executions = {}
        self.workflows = {}

    def environment(self, name):
        found = self.get_environment(name)
        return None if found is None else found["variables"]

    def update_environment(self, name, variables, description=None):
        if name not in self.envs:
            raise mistral_api.EnvironmentGone(name)
        super().update_environment(name, variables)
        if description is not None:
            self.envs[name]["description"] = description

    def execution(self, execution_id):
        return self.executions.get(execution_id)

    def workflow(self, name):
        return self.workflows.get(name)


@pytest.fixture
def fakes(use_fake, monkeypatch):
    nova = use_fake(FakeNova(services=[service(h) for h in ("h1", "h2", "h3")]))
    mistral = FakeMistral()
    monkeypatch.setattr(mistral_api, "mistral", lambda context: mistral)
    return nova, mistral


def plan(**kwargs):
    kwargs.setdefault("hosts", ["h1", "h2", "h3"])
    return rolling.PlanRollingAction(**kwargs).run(Context())


# pure ------------------------------------------------------------------------

def hypervisor(host, vcpus=8, ram=8192, disk=100, used=(0, 0, 0)):
    return {"service": {"host": host}, "vcpus": vcpus, "vcpus_used": used[0],
            "memory_mb": ram, "memory_mb_used": used[1], "local_gb": disk,
            "local_gb_used": used[2]}


def test_room_places_largest_first_and_names_what_is_missing():
    services = [service(h) for h in ("h1", "h2", "h3")] + [service("off", status="disabled")]
    hypervisors = [hypervisor("h2", ram=4096), hypervisor("h3", ram=2048),
                   hypervisor("off", ram=100000)]
    fits = rp.room("h1", [sized("a", "h1", ram=3000), sized("b", "h1", ram=2000)],
                   hypervisors, services)
    assert fits["fits"] and fits["needed"] == {"vcpus": 2, "memory_mb": 5000, "disk_gb": 2}
    lacking = rp.room("h1", [sized("a", "h1", ram=3000), sized("b", "h1", ram=3000)],
                      hypervisors, services)
    assert not lacking["fits"]
    assert [u["id"] for u in lacking["unplaced"]] == ["b"]
    assert lacking["short"] == {"vcpus": 0, "memory_mb": 0, "disk_gb": 0}  # split room
    assert set(lacking["targets"]) == {"h2", "h3"}  # never a disabled host
    message = rp.room_message(lacking)
    assert "no other host fits b (b: 1 vCPU, 3000 MB RAM, 1 GB disk)" in message
    assert "h2: 8 vCPU, 4096 MB RAM, 100 GB disk free" in message
    assert not rp.room("h1", [sized("a", "h1", ram=3000)], hypervisors, services,
                       exclude=["h2"])["fits"]


def test_only_what_moves_needs_room():
    keep = sized("s", "h1", metadata={plans.POLICY_KEY: plans.STOP_START})
    owner = sized("o", "h1", metadata={plans.POLICY_KEY: plans.LEAVE_TO_OWNER})
    assert [s["id"] for s in rp.to_place([keep, owner, sized("m", "h1")])] == ["o", "m"]


def test_next_hosts_k_at_a_time_in_order_and_a_rerun_takes_over():
    hosts = ["a", "b", "c"]
    states = rp.new_states(hosts)
    assert rp.next_hosts(hosts, states, 2) == ["a", "b"]
    states["a"] = {"state": rp.WORKING}
    assert rp.next_hosts(hosts, states, 1) == []
    assert rp.next_hosts(hosts, states, 2) == ["b"]
    states["b"] = {"state": rp.DONE}
    taken = rp.resumed(states)
    assert taken["a"] == {"state": rp.WAITING, "resumed_from": rp.WORKING}
    assert rp.next_hosts(hosts, taken, 1) == ["a"]
    assert rp.summary(hosts, states) == {"done": ["b"], "in_progress": {"a": rp.WORKING},
                                         "waiting": ["c"], "failed": []}
    assert rp.default_name(["b", "a"]) == rp.default_name(["a", "b"])


# the plan ----------------------------------------------------------------------

def test_plan_records_the_hosts_and_checks_room_for_each(fakes):
    nova, mistral = fakes
    nova.servers["a"] = sized("a", "h1")
    result = plan(name="r1", k=2)
    assert result.error is None, result.error
    assert result.data["status"]["waiting"] == ["h1", "h2", "h3"]
    assert [r["host"] for r in result.data["rooms"]] == ["h1", "h2", "h3"]
    recorded = mistral.environment("selfheal-rolling-r1")
    assert recorded["hosts"] == ["h1", "h2", "h3"] and recorded["k"] == 2
    assert recorded["execution"] == "exec-42"


def test_plan_refuses_without_room_and_records_nothing(fakes):
    nova, mistral = fakes
    nova.resources = {h: {"vcpus": 4, "memory_mb": 1024, "local_gb": 10}
                      for h in ("h1", "h2", "h3")}
    nova.servers["big"] = sized("big", "h2", ram=1000)
    nova.servers["other"] = sized("other", "h3", ram=900)
    nova.servers["third"] = sized("third", "h1", ram=500)
    result = plan(name="r1")
    assert result.error["reason"] == "not_enough_room"
    assert "not enough room to empty 'h2': no other host fits big" in result.error["message"]
    assert "Nothing was changed" in result.error["message"]
    assert mistral.envs == {} and result.error["changed"] is False


@pytest.mark.parametrize("kwargs, reason, fragment", [
    ({"hosts": ["h1", "nope"]}, "host_not_found", "no nova-compute service on host 'nope'"),
    ({"hosts": ["h1"], "aggregate": "agg"}, "invalid_input", "either 'hosts'"),
    ({"hosts": []}, "invalid_input", "either 'hosts'"),
    ({"hosts": ["h1", "h1"]}, "invalid_input", "names a host twice"),
    ({"name": "a b"}, "invalid_input", "input 'name' must be letters"),
    ({"k": 0}, "invalid_input", "'k' must be at least 1"),
    ({"work_workflow": "ops.upgrade"}, "workflow_not_found", "does not exist"),
    ({"aggregate": "agg", "hosts": None}, "aggregate_not_found", "no host aggregate"),
])
def test_plan_bad_input_changes_nothing(fakes, kwargs, reason, fragment):
    nova, mistral = fakes
    nova.aggregates = lambda: []  # NovaApi.aggregates() (the fake's dict is the claims')
    result = plan(**kwargs)
    assert result.error["reason"] == reason
    assert fragment in result.error["message"]
    assert mistral.envs == {}


def test_an_aggregate_gives_the_hosts_in_its_order(fakes):
    nova, mistral = fakes
    nova.aggregates = lambda: [{"name": "rack-2", "hosts": ["h3", "h1"], "metadata": {}}]
    result = plan(hosts=None, aggregate="rack-2")
    assert result.error is None, result.error
    assert result.data["hosts"] == ["h3", "h1"]
    assert result.data["name"] == "aggregate-rack-2"
    assert mistral.environment("selfheal-rolling-aggregate-rack-2")["aggregate"] == "rack-2"


def test_work_workflow_must_take_a_host(fakes):
    _, mistral = fakes
    mistral.workflows["ops.upgrade"] = {"name": "ops.upgrade", "input": "node, wait=5"}
    result = plan(work_workflow="ops.upgrade")
    assert result.error["reason"] == "workflow_not_found"
    assert "has no input 'host'" in result.error["message"]
    mistral.workflows["ops.upgrade"]["input"] = "host, wait=5"
    assert plan(work_workflow="ops.upgrade").error is None


def test_a_rerun_refuses_while_the_first_runs_then_takes_over(fakes):
    _, mistral = fakes
    assert plan(name="r1").error is None
    rolling.write_state(mistral, "r1", "h1", {"state": rp.DONE})
    rolling.write_state(mistral, "r1", "h2", {"state": rp.WORKING, "work_done": True})
    mistral.update_environment("selfheal-rolling-r1", dict(
        mistral.environment("selfheal-rolling-r1"), execution="exec-1"))
    mistral.executions["exec-1"] = {"id": "exec-1", "state": "RUNNING"}
    busy = plan(name="r1")
    assert busy.error["reason"] == "rolling_busy"
    assert "mistral execution-update exec-1 -s ERROR" in busy.error["message"]
    mistral.executions["exec-1"]["state"] = "ERROR"
    again = plan(name="r1")
    assert again.error is None and again.data["resumed"] is True
    assert again.data["status"] == {"done": ["h1"], "in_progress": {}, "waiting": ["h2", "h3"],
                                    "failed": []}
    h2 = mistral.environment("selfheal-rolling-r1--h2")
    assert h2["work_done"] is True and h2["resumed_from"] == rp.WORKING
    assert [r["host"] for r in again.data["rooms"]] == ["h2", "h3"]  # done is not rechecked
    other = plan(name="r1", hosts=["h1", "h2"])
    assert other.error["reason"] == "rolling_mismatch"


def test_dry_run_plan_records_nothing(fakes):
    _, mistral = fakes
    result = plan(name="r1", dry_run=True)
    assert result.error is None and result.data["changed"] is False
    assert mistral.envs == {}


# progress ----------------------------------------------------------------------

def progress(**kwargs):
    return rolling.RollingProgressAction(**kwargs).run(Context())


def test_progress_records_each_host_in_its_own_environment(fakes):
    _, mistral = fakes
    plan(name="r1", k=1)
    assert progress(name="r1").data["next"] == ["h1"]
    step = progress(name="r1", host="h1", state="draining")
    assert step.data["state"]["state"] == "draining" and step.data["in_progress"] == []
    assert mistral.envs["selfheal-rolling-r1--h1"]["description"] == "draining"
    assert progress(name="r1").data["next"] == []  # k=1: h1 is in progress
    progress(name="r1", host="h1", state="returning", work_done=True)
    assert mistral.envs["selfheal-rolling-r1--h1"]["description"] == "returning"
    done = progress(name="r1", host="h1", state="done")
    assert done.data["state"]["work_done"] is True
    assert progress(name="r1").data["next"] == ["h2"]
    bad = progress(name="r1", host="h1", state="finished")
    assert bad.error["reason"] == "invalid_input"
    assert progress(name="nope").error["reason"] == "rolling_not_found"
    assert progress(name="r1", host="h9", state="done").error["reason"] == "invalid_input"


def test_the_operator_wait_says_how_to_end_it(fakes):
    _, mistral = fakes
    plan(name="r1")

    class Ctx(Context):
        class execution:  # noqa: N801
            workflow_execution_id = "exec-42"
            action_execution_id = "act-7"

    wait = rolling.WaitForOperatorAction(name="r1", host="h2")
    assert wait.is_sync() is False
    assert wait.run(Ctx()) is None
    state = mistral.environment("selfheal-rolling-r1--h2")
    assert state["state"] == rp.WORKING
    assert state["resume"] == "mistral action-execution-update act-7 --state SUCCESS"


# starting what the drain stopped -------------------------------------------------

def test_start_stopped_starts_only_what_the_drain_stopped(use_fake):
    marked = {plans.STOPPED_KEY: "h1"}
    nova = use_fake(FakeNova(services=[service("h1")], servers=[
        server("ours", host="h1", vm_state="stopped", metadata=dict(marked)),
        server("owners", host="h1", vm_state="stopped"),
        server("running", host="h1", metadata=dict(marked))]))
    plan_only = stop_start.StartStoppedAction(host="h1", dry_run=True).run(Context())
    assert {i["id"]: i["outcome"] for i in plan_only.data["instances"]} == {
        "ours": "would_start", "running": "already_running"}
    assert nova.count("start") == 0
    result = stop_start.StartStoppedAction(host="h1", poll_interval=0.1).run(Context())
    assert result.error is None, result.error
    assert {i["id"]: i["outcome"] for i in result.data["instances"]} == {
        "ours": "started", "running": "already_running"}
    assert nova.servers["ours"]["OS-EXT-STS:vm_state"] == "active"
    assert nova.servers["owners"]["OS-EXT-STS:vm_state"] == "stopped"
    assert all(plans.STOPPED_KEY not in s["metadata"] for s in nova.servers.values())
    again = stop_start.StartStoppedAction(host="h1").run(Context())
    assert again.data["instances"] == [] and again.data["changed"] is False
