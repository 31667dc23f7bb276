# SPDX-License-Identifier: Apache-2.0
import datetime

from selfheal_actions.hosts import evacuation_plan as plans
from tests.unit.fake_nova import server

HOST = "failed-1"


def decisions(servers, migrations=(), **options):
    entries = plans.plan(HOST, servers, list(migrations), plans.PlanOptions(**options))
    return {e["name"]: (e["decision"], e["reason"], e["expected_power"]) for e in entries}


def test_running_and_stopped_keep_their_power_state():
    got = decisions([server("a", vm_state="active"), server("b", vm_state="stopped")])
    assert got == {"a": ("evacuate", None, "running"), "b": ("evacuate", None, "shutoff")}


def test_error_before_failure_is_skipped_unless_asked():
    servers = [server("e", vm_state="error")]
    assert decisions(servers)["e"] == ("skip", "error_before_failure", None)
    assert decisions(servers, include_error_instances=True)["e"] == ("evacuate", None, "running")


def test_error_caused_by_our_own_failed_attempt_is_retried():
    fenced_at = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    migration = {"id": 7, "instance_uuid": "e", "status": "error",
                 "created_at": "2026-01-01T00:00:05.000000"}
    entries = plans.plan(HOST, [server("e", vm_state="error")], [migration],
                         plans.PlanOptions(), fenced_at)
    assert entries[0]["decision"] == "evacuate"


def test_exclusions_by_metadata_flavor_and_image():
    servers = [server("m", metadata={"selfheal_exclude": "True"}),
               server("f", flavor="amphora"), server("i", image="lb-image"), server("ok")]
    got = decisions(servers, exclude_flavors=["amphora"], exclude_images=["lb-image"])
    assert got["m"][:2] == ("skip", "excluded_by_metadata")
    assert got["f"][:2] == ("skip", "excluded_flavor")
    assert got["i"][:2] == ("skip", "excluded_image")
    assert got["ok"][0] == "evacuate"


def test_metadata_false_does_not_exclude():
    assert decisions([server("m", metadata={"selfheal_exclude": "false"})])["m"][0] == "evacuate"


def test_in_flight_migration_is_adopted_not_repeated():
    migration = {"id": 3, "instance_uuid": "a", "status": "pre-migrating"}
    got = decisions([server("a", task_state="rebuilding"),
                     server("b", vm_state="stopped", task_state="rebuilding")],
                    [migration, dict(migration, id=4, instance_uuid="b")])
    # the power state to prove after landing: the one the vm_state still shows
    assert got["a"] == ("adopt", "evacuation_in_flight", "running")
    assert got["b"] == ("adopt", "evacuation_in_flight", "shutoff")


def test_paused_and_stuck_tasks_are_reset_then_evacuated():
    got = decisions([server("p", vm_state="paused"),
                     server("t", vm_state="active", task_state="powering-off"),
                     server("s", vm_state="stopped", task_state="powering-on")])
    assert got["p"][0] == got["t"][0] == got["s"][0] == "reset_and_evacuate"
    assert got["p"][2] == "running" and got["s"][2] == "shutoff"


def test_deleting_and_shelved_are_skipped():
    got = decisions([server("d", task_state="deleting"), server("s", vm_state="shelved")])
    assert got["d"][:2] == ("skip", "being_deleted")
    assert got["s"][:2] == ("skip", "shelved")


def test_ha_enabled_first_then_by_name():
    servers = [server("c"), server("b", metadata={"HA_Enabled": "True"}), server("a")]
    entries = plans.plan(HOST, servers, [], plans.PlanOptions())
    assert [e["name"] for e in entries] == ["b", "a", "c"]


def test_instance_ids_restricts_the_plan():
    entries = plans.plan(HOST, [server("a"), server("b")], [], plans.PlanOptions(
        instance_ids=["b"]))
    assert [e["id"] for e in entries] == ["b"]


def test_latest_migration_wins():
    migs = [{"id": 1, "instance_uuid": "a", "status": "error"},
            {"id": 5, "instance_uuid": "a", "status": "done"}]
    assert plans.latest_migrations(migs)["a"]["id"] == 5


def test_already_evacuated_since_fencing():
    since = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    migs = [{"id": 1, "instance_uuid": "old", "status": "done",
             "created_at": "2025-12-31T23:00:00"},
            {"id": 2, "instance_uuid": "new", "status": "done",
             "created_at": "2026-01-01T00:01:00"},
            {"id": 3, "instance_uuid": "back", "status": "done",
             "created_at": "2026-01-01T00:01:00"}]
    found = plans.already_evacuated(migs, [server("back")], since)
    assert [m["instance_uuid"] for m in found] == ["new"]
    assert plans.already_evacuated(migs, [], None) == []


def test_reset_reasons_read_naturally():
    got = decisions([server("p", vm_state="paused"),
                     server("t", vm_state="active", task_state="powering-off")])
    assert got["p"][1] == "was paused"
    assert got["t"][1] == "stuck in task powering-off"
