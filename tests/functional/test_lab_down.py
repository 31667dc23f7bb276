# SPDX-License-Identifier: Apache-2.0
"""``selfheal-lab down`` leaves nothing behind on the machine's PostgreSQL,
MariaDB, RabbitMQ and Redis.

Each test works in a lab folder of its own (``SELFHEAL_LAB_DIR``, so its own
lab tag, database names and ledger): it creates a database, virtual host or
Redis database through the lab's own creation code on the machine's server,
runs ``lab.down()`` there (which stops only the PIDs recorded in that empty
folder, not the lab the other tests use), and checks with the server's own
command-line tool that the thing is gone. The database drivers come from the
lab's Mistral and Heat venvs when they are built, else from a small venv
made here (psycopg2-binary and PyMySQL from PyPI, a few seconds).
"""

import shutil
import subprocess
import sys

import pytest

from selfheal_lab import backends
from selfheal_lab import lab
from selfheal_lab import ledger
from selfheal_lab import processes
from selfheal_lab import venvs
from selfheal_lab.services import heat
from selfheal_lab.services import mistral
from selfheal_lab.services import zaqar

pytestmark = pytest.mark.functional


def _has(python, module):
    return python.exists() and subprocess.run([str(python), "-c", f"import {module}"],
                                              capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    """``{"postgres": python with psycopg2, "mariadb": python with PyMySQL}``"""
    found = {"postgres": venvs.python("mistral"), "mariadb": venvs.python("heat")}
    if _has(found["postgres"], "psycopg2") and _has(found["mariadb"], "pymysql"):
        return found
    folder = tmp_path_factory.mktemp("drivers")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "psycopg2-binary", "PyMySQL"],
                         capture_output=True, text=True)
    assert pip.returncode == 0, f"cannot install the database drivers:\n{pip.stderr[-1500:]}"
    return {"postgres": python, "mariadb": python}


@pytest.fixture
def own_lab(tmp_path, monkeypatch):
    """A lab folder of this test's own, on the machine's backends."""
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(tmp_path))
    monkeypatch.delenv(backends.PRIVATE_BACKENDS_ENV, raising=False)
    return tmp_path


def _shared(name, tool):
    if not processes.port_open(backends.STANDARD_PORTS[name]):
        pytest.skip(f"no {name} on its standard port here")
    if not shutil.which(tool):
        pytest.skip(f"no {tool} to check {name} with")


def _out(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=60).stdout.split()


def _postgres_has(name, user):
    return _out("psql", "-h", "127.0.0.1", "-U", user, "-d", "postgres", "-Atc",
                f"SELECT datname FROM pg_database WHERE datname = '{name}'") == [name]


def _mariadb_has(name):
    return _out("mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-e",
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                f"WHERE SCHEMA_NAME = '{name}'") == [name]


def _down_twice(capsys):
    """``lab.down()``, then again with the same entries recorded anew (as if
    the first had not forgotten them): dropping what is gone succeeds."""
    created = ledger.entries()
    lab.down()
    assert ledger.entries() == []
    err = capsys.readouterr().err
    for entry in created:
        assert f"dropped the {ledger.describe(entry)}" in err
    for entry in created:
        ledger.record(**entry)
    lab.down()
    assert ledger.entries() == []
    assert "could not drop" not in capsys.readouterr().err


def test_down_drops_the_mistral_database(own_lab, drivers, capsys):
    _shared("postgres", "psql")
    name = mistral._db_name()
    db_state = mistral._create_database(drivers["postgres"], 5432)
    try:
        assert db_state["created"] and _postgres_has(name, db_state["user"])
        assert [(e["kind"], e["name"]) for e in ledger.entries()] == [
            ("postgres-database", name)]
        _down_twice(capsys)
        assert not _postgres_has(name, db_state["user"])
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", db_state["user"], "-d", "postgres",
                        "-c", f'DROP DATABASE IF EXISTS "{name}"'], capture_output=True)


def test_down_keeps_a_database_the_lab_did_not_create(own_lab, drivers):
    _shared("postgres", "psql")
    name = mistral._db_name()
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                    f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    try:
        assert mistral._create_database(drivers["postgres"], 5432)["created"] is False
        assert ledger.entries() == []
        lab.down()
        assert _postgres_has(name, "postgres")
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                        f'DROP DATABASE IF EXISTS "{name}"'], capture_output=True)


def test_down_drops_the_heat_database(own_lab, drivers, capsys):
    _shared("mariadb", "mysql")
    name = heat._db_name()
    try:
        assert heat.create_database(drivers["mariadb"], 3306, name) is True
        assert _mariadb_has(name)
        assert [(e["kind"], e["name"]) for e in ledger.entries()] == [
            ("mariadb-database", name)]
        _down_twice(capsys)
        assert not _mariadb_has(name)
    finally:
        subprocess.run(["mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e",
                        f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)


def test_down_deletes_the_labs_virtual_host(own_lab, capsys):
    _shared("rabbitmq", "rabbitmqctl")
    vhost = backends.rabbitmq_url(isolated=True).rsplit("/", 1)[1]
    try:
        assert vhost.startswith("selfheal_") and vhost in _out("rabbitmqctl", "-q",
                                                               "list_vhosts")
        assert [(e["kind"], e["name"]) for e in ledger.entries()] == [("rabbitmq-vhost", vhost)]
        _down_twice(capsys)
        assert vhost not in _out("rabbitmqctl", "-q", "list_vhosts")
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def test_down_empties_the_zaqar_redis_database(own_lab, capsys):
    _shared("redis", "redis-cli")
    db = str(zaqar._redis_db())
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", db]
    if _out(*cli, "dbsize") != ["0"]:
        pytest.skip(f"Redis database {db} holds keys of someone else")
    assert zaqar._claim_redis_db(6379) is True
    try:
        _out(*cli, "set", "selfheal-lab-down-test", "x")  # what Zaqar would store
        assert [(e["kind"], e["name"]) for e in ledger.entries()] == [("redis-database", db)]
        _down_twice(capsys)
        assert _out(*cli, "dbsize") == ["0"]
    finally:
        subprocess.run([*cli, "del", "selfheal-lab-down-test"], capture_output=True)
