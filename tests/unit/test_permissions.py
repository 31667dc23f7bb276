# SPDX-License-Identifier: Apache-2.0
"""A caller without the rights an action needs gets ``forbidden``, naming the
missing permission, and the action changes nothing (or reports exactly what
it had changed before the refusal). Nova's 403s are modelled on the real
message of Nova's policy engine."""

from heatclient import exc as heat_exc
from novaclient import exceptions as nova_exc

from selfheal_actions.common import clients
from selfheal_actions.common import markers
from selfheal_actions.common import results
from selfheal_actions.heat import mark_unhealthy
from selfheal_actions.heat import orchestration
from selfheal_actions.hosts import evacuation
from selfheal_actions.hosts import fencing
from tests.unit.fake_environments import FakeEnvironments
from tests.unit.fake_heat import FakeHeat
from tests.unit.fake_nova import FakeNova
from tests.unit.fake_nova import server
from tests.unit.fake_nova import service

HOST = "failed-1"


class MemberContext:
    class execution:  # noqa: N801 - shape of mistral-lib's context
        workflow_execution_id = "exec-7"

    class security:  # noqa: N801
        user_name = "member"
        project_name = "demo"
        auth_token = "gAAAA-secret-token"


def refuse(fake, method, rule):
    """Make ``fake.method`` answer like Nova when ``rule`` is not granted."""

    def refused(*args, **kwargs):
        fake.calls.append((method, "refused"))
        raise nova_exc.Forbidden(403, f"Policy doesn't allow {rule} to be performed.")

    setattr(fake, method, refused)


def down_host_cloud(fenced=False):
    reason = markers.make(markers.FENCED, "e") if fenced else None
    return FakeNova(servers=[server("a"), server("b")], services=[
        service(HOST, state="down", forced_down=fenced,
                status="disabled" if fenced else "enabled", reason=reason),
        service("ok-1"), service("ok-2")])


def mutations(fake):
    reads = {"compute_services", "servers_on_host", "evacuations_from", "get_server",
             "find_aggregate", "migrations_from", "servers_changed_since"}
    return [c for c in fake.calls if c[0] not in reads and "refused" not in c]


def test_the_policy_rule_is_read_from_nova_and_heat_messages():
    nova = results.forbidden(nova_exc.Forbidden(
        403, "Policy doesn't allow os_compute_api:os-evacuate to be performed."))
    assert nova.reason == "forbidden"
    assert nova.details["missing_permission"] == "os_compute_api:os-evacuate"
    assert "os_compute_api:os-evacuate" in nova.message and "Nothing was changed" in nova.message
    heat = results.forbidden(heat_exc.HTTPForbidden("You are not authorized to use "
                                                    "resource:mark_unhealthy."))
    assert heat.details["missing_permission"] == "resource:mark_unhealthy"
    vague = results.forbidden(nova_exc.Forbidden(403, "Forbidden"))
    assert vague.details["missing_permission"] is None
    assert "a permission this call needs" in vague.message


def test_http_status_of_each_client_library():
    from keystoneauth1 import exceptions as ks_exc

    assert results.http_status(nova_exc.Forbidden(403)) == 403
    assert results.http_status(heat_exc.HTTPForbidden()) == 403
    assert results.http_status(ks_exc.Forbidden()) == 403
    assert results.http_status(ValueError("x")) is None


def test_member_fencing_is_refused_at_the_first_call_and_changes_nothing(use_fake):
    nova = use_fake(down_host_cloud())
    refuse(nova, "compute_services", "os_compute_api:os-services:list")
    result = fencing.FenceHostAction(host=HOST).run(MemberContext())
    assert result.data is None
    error = result.error
    assert error["reason"] == "forbidden"
    assert error["details"]["missing_permission"] == "os_compute_api:os-services:list"
    assert error["details"]["user"] == "member" and error["details"]["project"] == "demo"
    assert error["changed"] is False and error["changes"] == []
    assert mutations(nova) == []
    assert nova.services[0]["forced_down"] is False
    assert MemberContext.security.auth_token not in repr(error)


def test_refused_force_down_is_the_first_mutation_and_nothing_changed(use_fake):
    # a custom policy: the caller may read services but not update them
    nova = use_fake(down_host_cloud())
    refuse(nova, "force_down", "os_compute_api:os-services:update")
    result = fencing.FenceHostAction(host=HOST).run(MemberContext())
    assert result.error["reason"] == "forbidden"
    assert result.error["details"]["missing_permission"] == "os_compute_api:os-services:update"
    assert result.error["changes"] == [] and result.error["changed"] is False
    assert nova.services[0]["forced_down"] is False and nova.services[0]["status"] == "enabled"


def test_a_refusal_after_a_change_reports_that_change(use_fake):
    nova = use_fake(down_host_cloud())
    refuse(nova, "disable", "os_compute_api:os-services:update")
    result = fencing.FenceHostAction(host=HOST).run(MemberContext())
    assert result.error["reason"] == "forbidden"
    assert [c["change"] for c in result.error["changes"]] == ["forced_down"]
    assert result.error["changed"] is True
    assert "1 change(s) were made" in result.error["message"]


def test_evacuation_refused_at_the_claim_changes_nothing(use_fake):
    nova = use_fake(down_host_cloud(fenced=True))
    refuse(nova, "create_aggregate", "os_compute_api:os-aggregates:create")
    result = evacuation.EvacuateAndVerifyAction(host=HOST, poll_interval=0.1).run(
        MemberContext())
    assert result.error["reason"] == "forbidden"
    assert result.error["details"]["missing_permission"] == "os_compute_api:os-aggregates:create"
    assert result.error["changes"] == []
    assert nova.count("evacuate") == 0 and nova.migrations == []


def test_refused_evacuation_stops_at_once_without_retrying_elsewhere(use_fake):
    nova = use_fake(down_host_cloud(fenced=True))
    refuse(nova, "evacuate", "os_compute_api:os-evacuate")
    result = evacuation.EvacuateAndVerifyAction(host=HOST, poll_interval=0.1,
                                                max_attempts=3).run(MemberContext())
    assert result.error["reason"] == "forbidden"
    assert result.error["details"]["missing_permission"] == "os_compute_api:os-evacuate"
    assert result.error["changes"] == []
    assert [c for c in nova.calls if c[0] == "evacuate"] == [("evacuate", "refused")]
    assert nova.aggregates == {}  # the claim was released
    assert {s["OS-EXT-SRV-ATTR:host"] for s in nova.servers.values()} == {HOST}


def test_refused_evacuation_after_fencing_reports_the_fencing(use_fake):
    # one call fences and evacuates (the workflow's way): a policy that lets
    # the caller fence but not evacuate leaves the host fenced, and says so
    nova = use_fake(down_host_cloud())
    refuse(nova, "evacuate", "os_compute_api:os-evacuate")
    result = evacuation.EvacuateAndVerifyAction(host=HOST, fence=True,
                                                poll_interval=0.1).run(MemberContext())
    assert result.error["reason"] == "forbidden"
    assert [c["change"] for c in result.error["changes"]] == ["forced_down", "disabled"]
    assert result.error["changed"] is True
    assert [c for c in nova.calls if c[0] == "evacuate"] == [("evacuate", "refused")]
    assert nova.aggregates == {}  # the claim was released


def test_other_errors_are_not_turned_into_forbidden(use_fake):
    nova = use_fake(down_host_cloud())

    def broken():
        raise nova_exc.ClientException(500, "boom")

    nova.compute_services = broken
    result = fencing.FenceHostAction(host=HOST).run(MemberContext())
    # a 500 is a failed service call, reported as such: never a traceback,
    # never "forbidden"
    assert result.error["reason"] == "api_error"
    assert "ClientException: boom (HTTP 500)" in result.error["message"]
    assert result.error["details"]["http_status"] == 500 and result.error["changes"] == []


def test_heat_refusal_of_mark_unhealthy_is_forbidden(monkeypatch):
    heat = FakeHeat()

    def refused(*args, **kwargs):
        raise heat_exc.HTTPForbidden("You are not authorized to use resource:mark_unhealthy.")

    heat.mark_unhealthy = refused
    monkeypatch.setattr(clients, "heat", lambda context: heat)
    monkeypatch.setattr(orchestration, "HeatApi", lambda client: client)
    monkeypatch.setattr(mark_unhealthy.mistral_api, "mistral",
                        lambda context: FakeEnvironments())
    result = mark_unhealthy.MarkUnhealthyAction(stack="web", member="1").run(MemberContext())
    assert result.error["reason"] == "forbidden"
    assert result.error["details"]["missing_permission"] == "resource:mark_unhealthy"
    assert result.error["changes"] == []
    assert all(m["status"] != "CHECK_FAILED" for m in heat.members.values())
