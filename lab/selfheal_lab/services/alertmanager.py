# SPDX-License-Identifier: Apache-2.0
"""The lab's Prometheus Alertmanager (Debian's ``prometheus-alertmanager``).

One process, started, recorded and stopped like the other lab services
(:mod:`managed`): the Debian binary (installed with apt-get by the lab when
it is not on PATH), a fresh storage folder on every start (silences do not
outlive the lab), listening on its own 127.0.0.1 port, gossip off
(``--cluster.listen-address=``, which would otherwise bind 0.0.0.0:9094),
and a configuration with one receiver that sends nowhere: the lab needs its
silences API, not notifications.

``up()`` records in ``endpoints.json`` (key ``alertmanager``) ``url``; the
lab's cloud config then names ``alertmanager: {url}``, where the
maintenance actions find it (:mod:`selfheal_actions.maintenance.silences`).

Stdlib only: this module runs in the operator's or test runner's Python.
"""

import json
import shutil
import urllib.parse

from selfheal_lab import backends
from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab.services import managed

SERVICE = "alertmanager"
KEY = "alertmanager"
NAMES = ("alertmanager",)
#: the Debian package and the binary it installs
PACKAGE = BINARY = "prometheus-alertmanager"
START_TIMEOUT = 60.0


def render_config():
    """Alertmanager's configuration (a dict; JSON is YAML): a route to one
    receiver without integrations (alerts and silences work, nothing is sent)."""
    return {"route": {"receiver": "null", "group_by": ["instance"]},
            "receivers": [{"name": "null"}]}


def binary():
    """The ``prometheus-alertmanager`` binary; installed from Debian's package
    when missing."""
    found = shutil.which(BINARY)
    if not found:
        backends._apt_install(PACKAGE)
        found = shutil.which(BINARY)
    if not found:
        raise backends.BackendError(f"{BINARY} is not on PATH and the Debian package "
                                    f"{PACKAGE} did not provide it")
    return found


def _probe(info):
    return managed.http_status(info["url"] + "/-/ready") == 200


def _port():
    previous = state.read_endpoints().get(KEY) or {}
    port = previous.get("port")
    if not port or processes.port_open(port):
        port = processes.free_port()
    return port


def up(timeout=START_TIMEOUT):
    """Start (or keep) Alertmanager.

    :returns: the endpoints entry: ``url``, ``port``, ``pids``, ``logs``.
    """
    program = binary()
    sdir = state.service_dir(SERVICE)
    config = sdir / "alertmanager.yml"
    config.write_text(json.dumps(render_config(), indent=2))
    wanted = managed.fingerprint(program, managed.source_of(__file__))
    running = managed.running(SERVICE, NAMES, wanted, _probe)
    if running:
        return running
    managed.stop(SERVICE, KEY, NAMES)
    port = _port()
    data = sdir / "data"
    shutil.rmtree(data, ignore_errors=True)  # no silence outlives the lab
    data.mkdir()
    commands = {"alertmanager": [
        program, f"--config.file={config}", f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn"]}
    progress.step(f"starting Alertmanager on port {port}")
    info = {"url": f"http://127.0.0.1:{port}", "port": port}
    return managed.start(SERVICE, KEY, commands, wanted, info, _probe, timeout, "Alertmanager")


def running():
    """True when the lab's Alertmanager is recorded as running."""
    return bool(state.read_endpoints().get(KEY)) and all(
        processes.running_pid(SERVICE, name) for name in NAMES)


def silences(host=None, label="instance"):
    """The silences Alertmanager holds (every state), or those matching
    ``label=host`` exactly when ``host`` is given."""
    info = state.read_endpoints().get(KEY)
    if not info:
        raise RuntimeError("Alertmanager is not running (selfheal-lab up --with alertmanager)")
    found = http_json.call(info["url"], "GET", "/api/v2/silences", timeout=30,
                           what="Alertmanager") or []
    if host is None:
        return found
    return [s for s in found
            if any(m["name"] == label and m["value"] == host and not m.get("isRegex")
                   for m in s["matchers"])]


def silence(silence_id):
    """One silence by id (Alertmanager's JSON)."""
    info = state.read_endpoints()[KEY]
    return http_json.call(info["url"], "GET",
                          f"/api/v2/silence/{urllib.parse.quote(silence_id)}",
                          timeout=30, what="Alertmanager")


def down():
    """Stop Alertmanager (by PID)."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
