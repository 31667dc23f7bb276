# SPDX-License-Identifier: Apache-2.0
"""The lab's ledger of what it created on the machine's shared backends, and
``lab.down()`` dropping it: recording only what the lab created, dropping
each entry once, keeping (and saying how to drop by hand) what failed."""

import json
import subprocess
import types

import pytest

from selfheal_lab import backends
from selfheal_lab import lab
from selfheal_lab import ledger
from selfheal_lab.services import heat
from selfheal_lab.services import mistral
from selfheal_lab.services import zaqar


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    return tmp_path


def completed(stdout="", returncode=0, stderr=""):
    return types.SimpleNamespace(stdout=stdout, stderr=stderr, returncode=returncode)


def test_record_keeps_one_entry_per_thing_with_its_details(lab_dir):
    ledger.record(ledger.POSTGRES_DATABASE, "db1", 5432, python="/v/bin/python", user="root")
    ledger.record(ledger.RABBITMQ_VHOST, "vh", 5672)
    ledger.record(ledger.POSTGRES_DATABASE, "db1", 5432, python="/w/bin/python", user="root")
    assert ledger.entries() == [
        {"kind": "rabbitmq-vhost", "name": "vh", "port": 5672},
        {"kind": "postgres-database", "name": "db1", "port": 5432, "python": "/w/bin/python",
         "user": "root"}]
    assert json.loads((lab_dir / "created.json").read_text()) == ledger.entries()
    assert ledger.recorded(ledger.RABBITMQ_VHOST, "vh", 5672)
    assert not ledger.recorded(ledger.RABBITMQ_VHOST, "vh", 5673)


def test_drop_all_drops_each_entry_once_and_reports_it(capsys):
    ledger.record(ledger.POSTGRES_DATABASE, "db1", 5432, python="p", user="postgres")
    ledger.record(ledger.REDIS_DATABASE, 7, 6379)
    calls = []
    droppers = {ledger.POSTGRES_DATABASE: calls.append, ledger.REDIS_DATABASE: calls.append}
    dropped, kept = ledger.drop_all(droppers)
    assert [e["name"] for e in calls] == ["db1", "7"]
    assert (dropped, kept) == (calls, [])
    assert ledger.entries() == []
    err = capsys.readouterr().err
    assert "dropped the PostgreSQL database db1 on 127.0.0.1:5432" in err
    assert "dropped the Redis database 7 on 127.0.0.1:6379" in err
    # idempotent: a second down has nothing left to drop
    assert ledger.drop_all(droppers) == ([], [])
    assert len(calls) == 2


def test_a_failed_drop_keeps_the_entry_and_says_how_to_drop_it_by_hand(capsys):
    ledger.record(ledger.MARIADB_DATABASE, "heatdb", 3306, python="p")
    ledger.record(ledger.RABBITMQ_VHOST, "vh", 5672)

    def refuse(entry):
        raise RuntimeError("Can't connect to MySQL server\n(111 Connection refused)")

    dropped, kept = ledger.drop_all({ledger.MARIADB_DATABASE: refuse,
                                     ledger.RABBITMQ_VHOST: lambda entry: None})
    assert [e["name"] for e in dropped] == ["vh"]
    assert [e["name"] for e in kept] == ["heatdb"]
    assert ledger.entries() == kept
    lines = [line for line in capsys.readouterr().err.splitlines() if "heatdb" in line]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert "could not drop the MariaDB database heatdb on 127.0.0.1:3306: Can't connect" in lines[0]
    assert lines[0].endswith(
        "drop it by hand: mysql -h 127.0.0.1 -P 3306 -u root -e 'DROP DATABASE IF EXISTS `heatdb`'")
    # the next down drops it
    assert ledger.drop_all({ledger.MARIADB_DATABASE: lambda entry: None})[0] == kept
    assert ledger.entries() == []


def test_an_entry_of_an_unknown_kind_is_kept(capsys):
    ledger.record("etcd-key", "k", 2379)
    assert ledger.drop_all({}) == ([], ledger.entries())
    assert "this lab cannot drop a etcd-key" in capsys.readouterr().err


def test_lab_down_drops_every_kind_after_stopping_the_processes(monkeypatch):
    order = []
    for module in (lab.vitrage, lab.aodh, lab.zaqar, lab.heat, lab.keystone, lab.nova):
        monkeypatch.setattr(module, "down", lambda **kw: order.append("stop"))
    monkeypatch.setattr(lab.mistral, "down", lambda **kw: order.append("stop"))
    monkeypatch.setattr(lab.backends, "down", lambda: order.append("stop") or [])
    for module, name in ((mistral, "drop_database"), (heat, "drop_database"),
                         (backends, "drop_vhost"), (zaqar, "drop_redis_db")):
        monkeypatch.setattr(module, name, lambda e: order.append(e["kind"]))
    for kind in (ledger.POSTGRES_DATABASE, ledger.MARIADB_DATABASE, ledger.RABBITMQ_VHOST,
                 ledger.REDIS_DATABASE):
        ledger.record(kind, "x", 1)
    lab.down()
    assert order[-4:] == ["postgres-database", "mariadb-database", "rabbitmq-vhost",
                          "redis-database"]
    assert set(order[:-4]) == {"stop"}
    assert ledger.entries() == []


# --- what is recorded: only what the lab created, on a shared backend ------

def test_heat_records_only_a_database_it_created_on_a_shared_mariadb(monkeypatch):
    replies = iter([{"created": False}, {"created": True}, {"created": True}])
    monkeypatch.setattr(heat.subprocess, "run",
                        lambda *a, **k: completed(json.dumps(next(replies)) + "\n"))
    assert heat.create_database("/h/python", 3306, "db_existing") is False
    assert heat.create_database("/h/python", 4000, "db_private", shared=False) is True
    assert heat.create_database("/h/python", 3306, "db_new") is True
    assert ledger.entries() == [{"kind": "mariadb-database", "name": "db_new", "port": 3306,
                                 "python": "/h/python"}]


def test_heat_migrates_again_a_database_created_again(monkeypatch, lab_dir):
    """A database dropped by ``down`` is created and migrated at the next
    ``up``, although the marker of the earlier migration is still there."""
    marker = lab_dir / "services" / "heat" / "db-ready"
    marker.parent.mkdir(parents=True)
    marker.write_text("mysql://db")
    created = []
    monkeypatch.setattr(heat, "create_database", lambda *a, **k: created.pop())
    synced = []
    monkeypatch.setattr(heat.subprocess, "run", lambda argv, **k: synced.append(argv)
                        or completed())
    mariadb = {"port": 3306, "private": False}
    created.append(False)
    heat._prepare_database(lab_dir / "python", mariadb, "c.conf", "mysql://db", "heat", "db")
    assert synced == []
    created.append(True)
    heat._prepare_database(lab_dir / "python", mariadb, "c.conf", "mysql://db", "heat", "db")
    assert synced and synced[0][-1] == "db_sync"


def test_mistral_records_only_a_database_it_created_on_a_shared_postgres(monkeypatch):
    monkeypatch.setattr(mistral, "_db_name", lambda: "mdb")
    replies = iter([{"user": "postgres", "migrated": True, "created": False},
                    {"user": "root", "migrated": False, "created": True},
                    {"user": "root", "migrated": False, "created": True}])
    monkeypatch.setattr(mistral.subprocess, "run",
                        lambda *a, **k: completed(json.dumps(next(replies)) + "\n"))
    mistral._create_database("/m/python", 5432)
    mistral._create_database("/m/python", 6000, shared=False)
    assert mistral._create_database("/m/python", 5432)["created"] is True
    assert ledger.entries() == [{"kind": "postgres-database", "name": "mdb", "port": 5432,
                                 "python": "/m/python", "user": "root"}]


def fake_rabbitmqctl(monkeypatch, vhosts, fail=()):
    """rabbitmqctl on a broker holding ``vhosts``; the commands in ``fail`` fail."""
    calls = []

    def run(argv, **kwargs):
        calls.append((argv[2:], kwargs.get("env")))
        if argv[2] in fail:
            return completed(returncode=2, stderr=f"Error: {argv[2]} refused")
        if argv[2] == "list_vhosts":
            return completed("\n".join(vhosts) + "\n")
        if argv[2] == "add_vhost":
            vhosts.append(argv[3])
        if argv[2] == "delete_vhost":
            vhosts.remove(argv[3])
        return completed()

    monkeypatch.setattr(backends.shutil, "which", lambda name: "/usr/sbin/" + name)
    monkeypatch.setattr(backends.subprocess, "run", run)
    return calls


def test_a_vhost_is_recorded_when_created_on_the_machines_broker(monkeypatch):
    vhosts = ["/", "theirs"]
    calls = fake_rabbitmqctl(monkeypatch, vhosts)
    backends._ensure_vhost("theirs")  # there already: not the lab's
    backends._ensure_vhost("in_private", env={"HOME": "/x"})  # the lab's own broker
    backends._ensure_vhost("ours")
    assert [e["name"] for e in ledger.entries()] == ["ours"]
    assert ledger.entries()[0] == {"kind": "rabbitmq-vhost", "name": "ours", "port": 5672}
    assert (["add_vhost", "ours"], None) in calls and "theirs" in vhosts


def test_drop_vhost_deletes_it_and_one_already_gone_is_fine(monkeypatch):
    vhosts = ["/", "ours"]
    calls = fake_rabbitmqctl(monkeypatch, vhosts)
    backends.drop_vhost({"name": "ours"})
    assert vhosts == ["/"]
    backends.drop_vhost({"name": "ours"})
    assert [argv[0] for argv, _ in calls] == ["list_vhosts", "delete_vhost", "list_vhosts"]


def test_drop_vhost_raises_with_rabbitmqctls_reason(monkeypatch):
    fake_rabbitmqctl(monkeypatch, ["ours"], fail=("delete_vhost",))
    with pytest.raises(backends.BackendError, match="delete_vhost refused"):
        backends.drop_vhost({"name": "ours"})


def test_database_drops_run_the_entrys_interpreter_and_raise_its_error(monkeypatch):
    runs = []

    def run(argv, **kwargs):
        runs.append(argv)
        return completed(returncode=1, stderr="Traceback ...\nOperationalError: refused\n")

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(mistral.MistralLabError, match="^OperationalError: refused$"):
        mistral.drop_database({"python": "/m/python", "port": 5432, "name": "mdb",
                               "user": "root"})
    with pytest.raises(RuntimeError, match="^OperationalError: refused$"):
        heat.drop_database({"python": "/h/python", "port": 3306, "name": "hdb"})
    assert runs[0][:2] == ["/m/python", "-c"] and "DROP DATABASE IF EXISTS" in runs[0][2]
    assert runs[0][3:] == ["127.0.0.1", "5432", "mdb", "root"]
    assert runs[1][:2] == ["/h/python", "-c"] and "DROP DATABASE IF EXISTS" in runs[1][2]
    assert runs[1][3:] == ["3306", "hdb"]


def test_zaqar_claims_its_redis_database_only_when_empty(monkeypatch):
    sizes = {}
    monkeypatch.setattr(zaqar, "_redis", lambda port, db, command: sizes[port])
    monkeypatch.setattr(zaqar, "_redis_db", lambda: 5)
    sizes.update({6379: 3, 6380: 0})
    assert zaqar._claim_redis_db(6379) is False  # someone's keys there
    assert zaqar._claim_redis_db(6380) is True
    sizes[6380] = 12  # Zaqar filled it: still this lab's
    assert zaqar._claim_redis_db(6380) is True
    assert ledger.entries() == [{"kind": "redis-database", "name": "5", "port": 6380}]
