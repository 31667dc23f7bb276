# SPDX-License-Identifier: Apache-2.0
"""The lab's private backends: what a user's machine without RabbitMQ,
PostgreSQL, MariaDB or Redis on the standard ports gets.

Forced private here (SELFHEAL_LAB_PRIVATE_BACKENDS=1) in a lab folder of its
own; each one must speak its protocol on its port, and ``down`` must stop
exactly what was started.
"""

import pathlib
import shutil
import socket
import struct
import tempfile

import pytest

from selfheal_lab import backends
from selfheal_lab import processes

pytestmark = pytest.mark.functional


def _exchange(port, send, size=64):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        if send:
            conn.sendall(send)
        return conn.recv(size)


PROTOCOL_CHECKS = {
    # RESP: PING -> +PONG
    "redis": lambda port: _exchange(port, b"PING\r\n").startswith(b"+PONG"),
    # the server's handshake packet names its version
    "mariadb": lambda port: b"MariaDB" in _exchange(port, None, 256),
    # AMQP 0-9-1 protocol header -> a method frame (type 1): connection.start
    "rabbitmq": lambda port: _exchange(port, b"AMQP\x00\x00\x09\x01")[:1] == b"\x01",
    # SSLRequest -> 'N' (no TLS) or 'S'
    "postgres": lambda port: _exchange(port, struct.pack("!ii", 8, 80877103))[:1] in (b"N", b"S"),
}


@pytest.fixture
def private_lab(monkeypatch):
    # under /tmp, opened to all: the postgres and mysql users must traverse
    # it, and the checkout itself may sit in a private (0700) folder
    folder = pathlib.Path(tempfile.mkdtemp(prefix="selfheal-private-"))
    folder.chmod(0o755)
    monkeypatch.setenv("SELFHEAL_LAB_DIR", str(folder))
    monkeypatch.setenv(backends.PRIVATE_BACKENDS_ENV, "1")
    yield folder
    backends.down()
    shutil.rmtree(folder, ignore_errors=True)


def test_private_backends_start_speak_their_protocols_and_stop(private_lab):
    started = {name: backends.ensure(name) for name in PROTOCOL_CHECKS}
    for name, info in started.items():
        assert info["private"] is True
        assert info["port"] != backends.STANDARD_PORTS[name]
        assert PROTOCOL_CHECKS[name](info["port"]), f"{name} does not answer its protocol"
        assert str(private_lab) in str(processes.pid_file(backends.SERVICE, name))
    # ensure() again keeps the running ones
    assert {n: backends.ensure(n)["port"] for n in started} == {
        n: i["port"] for n, i in started.items()}
    assert sorted(b["name"] for b in backends.running_private()) == sorted(started)
    stopped = backends.down()
    assert sorted(stopped) == sorted(list(started) + ["epmd"])
    for name, info in started.items():
        assert not processes.port_open(info["port"]), f"{name} still listens"
    assert backends.running_private() == []


def test_shared_broker_gives_each_lab_a_virtual_host_of_its_own():
    import subprocess

    if backends.force_private() or not processes.port_open(backends.STANDARD_PORTS["rabbitmq"]):
        pytest.skip("no shared RabbitMQ on 127.0.0.1:5672 here: the lab's broker is private")
    url = backends.rabbitmq_url(isolated=True)
    vhost = url.rsplit("/", 1)[1]
    assert vhost == f"selfheal_{backends.lab_tag()}"
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert vhost in listed
    assert backends.rabbitmq_url(isolated=True) == url  # the second time only reads
    assert backends.rabbitmq_url().endswith(":5672/")  # the default vhost otherwise
