# SPDX-License-Identifier: Apache-2.0
"""The lab's Prometheus and one node exporter per compute host.

Two processes, started, recorded and stopped like the other lab services
(:mod:`managed`):

* ``prometheus``: Debian's ``prometheus`` binary (installed with apt-get by
  the lab when it is not on PATH), a fresh tsdb folder on every start, one
  scrape job ``selfheal-node`` every second over the exporters, found
  through a file of targets (``file_sd``) that the lab rewrites when hosts
  come and go; the ``instance`` label is relabelled to the compute host's
  name, so ``up{job="selfheal-node", instance="compute-1"}`` is that host;
* ``exporters`` (:mod:`selfheal_lab.services.exporter_box`, in the
  prometheus venv, ``requirements/prometheus.txt``): one HTTP server per
  host on its own 127.0.0.1 port, and a small control port.

``up(hosts)`` records in ``endpoints.json`` (key ``prometheus``) ``url``
(Prometheus's), ``exporters_url`` (the control port), ``job`` and the
hosts' exporter ports, and returns once Prometheus has scraped every host
(``up`` present for each). The lab's cloud config then names
``prometheus: {url}``.

Exporters are switched dark (connection refused: ``up`` drops to 0 within
a scrape) and lit by :func:`set_exporter`; :mod:`selfheal_lab.faults` wires
that to the host faults (a dead host, its BMC powered off, a cut management
network, a switch blip), and the BMC box does it when a host's power goes
Off or On.

Stdlib only: this module runs in the operator's or test runner's Python.
"""

import json
import pathlib
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

from selfheal_lab import backends
from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "prometheus"
KEY = "prometheus"
NAMES = ("exporters", "prometheus")
BOX_SCRIPT = pathlib.Path(__file__).resolve().parent / "exporter_box.py"
#: the scrape job of the per-host exporters
JOB = "selfheal-node"
SCRAPE_INTERVAL = "1s"
TARGETS_FILE = "targets.json"
START_TIMEOUT = 60.0
#: seconds to wait for Prometheus's first scrape of a (new) host
FIRST_SCRAPE_TIMEOUT = 30.0


def _dir():
    return state.service_dir(SERVICE)


def _spec_path():
    return _dir() / "spec.json"


def _read_spec():
    try:
        return json.loads(_spec_path().read_text())
    except FileNotFoundError:
        return None


def _write_spec(spec):
    _spec_path().write_text(json.dumps(spec, indent=2, sort_keys=True))


def _new_spec():
    return {"port": processes.free_port(), "control_port": processes.free_port(), "hosts": {}}


def render_config(targets_file, job=JOB, scrape_interval=SCRAPE_INTERVAL):
    """Prometheus's configuration (a dict; JSON is YAML): one job scraping the
    targets listed in ``targets_file`` every ``scrape_interval``, with the
    ``instance`` label set from each target's host name."""
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": job,
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            # the host name travels as a hidden label (dropped after relabelling)
            "relabel_configs": [{"source_labels": ["__host__"], "target_label": "instance"}],
        }],
    }


def render_targets(hosts):
    """The file_sd targets: one group per host (``hosts``: ``{host: port}``)."""
    return [{"targets": [f"127.0.0.1:{port}"], "labels": {"__host__": host}}
            for host, port in sorted(hosts.items())]


def _write_targets(spec):
    path = _dir() / TARGETS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(render_targets(spec["hosts"]), indent=2))
    tmp.replace(path)  # atomic: Prometheus never reads half a file
    return path


def binary():
    """The ``prometheus`` binary; installed from Debian's package when missing."""
    found = shutil.which("prometheus")
    if not found:
        backends._apt_install("prometheus")
        found = shutil.which("prometheus")
    if not found:
        raise backends.BackendError("prometheus is not on PATH and the Debian package "
                                    "prometheus did not provide it")
    return found


def _probe(info):
    return (managed.http_status(info["url"] + "/-/ready") == 200
            and managed.http_status(info["exporters_url"] + "/health") == 200)


def _fingerprint(spec, prometheus):
    return managed.fingerprint(spec["port"], spec["control_port"], prometheus,
                               managed.source_of(BOX_SCRIPT), managed.source_of(__file__),
                               venvs.stamp(SERVICE))


def _info(spec):
    return {"url": f"http://127.0.0.1:{spec['port']}",
            "exporters_url": f"http://127.0.0.1:{spec['control_port']}",
            "job": JOB, "hosts": dict(spec["hosts"])}


def up(hosts=(), timeout=START_TIMEOUT):
    """Start (or keep) Prometheus and an exporter for each of ``hosts``.

    A running Prometheus is kept (hosts not yet exported are added). Returns
    once Prometheus has scraped every host at least once.

    :returns: the endpoints entry: ``url``, ``exporters_url``, ``job``,
        ``hosts`` (``{host: exporter port}``), ``pids``, ``logs``.
    """
    python = venvs.ensure(SERVICE)
    prometheus = binary()
    spec = _read_spec() or _new_spec()
    wanted = _fingerprint(spec, prometheus)
    running = managed.running(SERVICE, NAMES, wanted, _probe)
    if running:
        add_hosts(hosts)
        return state.read_endpoints()[KEY]
    for host in hosts:
        spec["hosts"].setdefault(host, processes.free_port())
    sdir = _dir()
    _write_spec(spec)
    targets = _write_targets(spec)
    (sdir / "exporters-state.json").unlink(missing_ok=True)  # a new lab: every host lit
    (sdir / "box.json").write_text(json.dumps({"control_port": spec["control_port"],
                                               "hosts": spec["hosts"]}))
    config = sdir / "prometheus.yml"
    config.write_text(json.dumps(render_config(targets), indent=2))
    data = sdir / "data"
    shutil.rmtree(data, ignore_errors=True)  # fresh tsdb: old samples linger 5 minutes
    data.mkdir()
    commands = {
        "exporters": [str(python), str(BOX_SCRIPT), "serve", "--state-dir", str(sdir)],
        "prometheus": [prometheus, f"--config.file={config}",
                       f"--storage.tsdb.path={data}",
                       f"--web.listen-address=127.0.0.1:{spec['port']}",
                       "--web.enable-lifecycle", "--log.level=warn"],
    }
    progress.step(f"starting Prometheus and {len(spec['hosts'])} node exporter(s)")
    info = managed.start(SERVICE, KEY, commands, wanted, _info(spec), _probe, timeout,
                         "Prometheus")
    wait_scraped(spec["hosts"])
    return info


def _record_hosts(spec):
    _write_spec(spec)
    _write_targets(spec)
    info = state.read_endpoints().get(KEY)
    if info:
        info["hosts"] = dict(spec["hosts"])
        state.update_endpoints(KEY, info)


def add_hosts(hosts, wait=True):
    """Give compute hosts made later an exporter (lit) and a scrape target.

    :param wait: return only once Prometheus has scraped each of them.
    """
    hosts = list(hosts)
    info = _endpoint()
    spec = _read_spec()
    new = [h for h in hosts if h not in spec["hosts"]]
    for host in new:
        spec["hosts"][host] = processes.free_port()
        _box(info, "POST", "/exporters", {"host": host, "port": spec["hosts"][host]})
    if new:
        _record_hosts(spec)
    if wait and hosts:
        wait_scraped(hosts)
    return {h: spec["hosts"][h] for h in hosts}


def remove_hosts(hosts):
    """Stop the exporters of ``hosts`` and drop them from the targets."""
    info = state.read_endpoints().get(KEY)
    spec = _read_spec()
    if not info or not spec:
        return []
    removed = [h for h in hosts if h in spec["hosts"]]
    for host in removed:
        del spec["hosts"][host]
        try:
            _box(info, "DELETE", f"/exporters/{host}")
        except (RuntimeError, OSError):  # the box forgot it, or is gone
            pass
    if removed:
        _record_hosts(spec)
    return removed


def _endpoint():
    info = state.read_endpoints().get(KEY)
    if not info:
        raise RuntimeError("Prometheus is not running (selfheal_lab.services.prometheus.up)")
    return info


def _box(info, method, path, body=None):
    return http_json.call(info["exporters_url"], method, path, body, timeout=30,
                          what="exporter box")


def running():
    """True when the lab's Prometheus is recorded as running."""
    return bool(state.read_endpoints().get(KEY)) and all(
        processes.running_pid(SERVICE, name) for name in NAMES)


def set_exporter(host, lit):
    """Switch the exporter of ``host`` dark (``lit=False``: its HTTP server is
    closed, scrapes are refused, ``up`` drops to 0) or lit again.

    A no-op returning None when Prometheus is not running or ``host`` has no
    exporter, so the host faults work on a lab without Prometheus.

    :returns: ``{"host", "port", "lit", "changed"}`` or None.
    """
    info = state.read_endpoints().get(KEY)
    if not info or host not in (info.get("hosts") or {}):
        return None
    return _box(info, "POST", f"/exporters/{host}/{'light' if lit else 'dark'}")


def exporters():
    """``{host: {"port", "lit"}}`` as the exporter box has them."""
    return _box(_endpoint(), "GET", "/exporters")


def query(expr, timeout=10):
    """Run an instant query; returns Prometheus's ``data.result`` list."""
    url = _endpoint()["url"] + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"Prometheus query {expr!r} failed: {answer}")
    return answer["data"]["result"]


def up_values():
    """``{host: 0 | 1}``: the latest ``up`` of each host's exporter."""
    return {r["metric"]["instance"]: int(float(r["value"][1]))
            for r in query(f'up{{job="{JOB}"}}')}


def wait_up(hosts, value, timeout=FIRST_SCRAPE_TIMEOUT):
    """Wait until Prometheus's ``up`` is ``value`` (0 or 1) for each of ``hosts``.

    :returns: the seconds it took.
    :raises TimeoutError: with the values last seen.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        try:
            seen = up_values()
        except (OSError, ValueError):
            seen = {}
        if all(seen.get(h) == value for h in hosts):
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise TimeoutError(f"up of {list(hosts)} not {value} after {timeout} s: {seen}")
        time.sleep(0.2)


def wait_scraped(hosts, timeout=FIRST_SCRAPE_TIMEOUT):
    """Wait until ``up`` exists for each of ``hosts`` (its first scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = up_values()
        except (OSError, ValueError, urllib.error.URLError):
            seen = {}
        if all(h in seen for h in hosts):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prometheus has not scraped {sorted(set(hosts) - set(seen))} "
                               f"after {timeout} s")
        time.sleep(0.2)


def down():
    """Stop Prometheus and the exporters (by PID); forget the hosts."""
    stopped = managed.stop(SERVICE, KEY, NAMES)
    _spec_path().unlink(missing_ok=True)
    return stopped


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
