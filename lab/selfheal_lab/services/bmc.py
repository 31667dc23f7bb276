# SPDX-License-Identifier: Apache-2.0
"""The lab's hardware BMCs: the real sushy-tools Redfish emulator and IPMI
BMCs on pyghmi, wired to Nova in a box like real power is.

Two processes in their own venv (``requirements/bmc.txt``), started,
recorded and stopped like the other lab services (:mod:`managed`):

* ``redfish``: ``sushy-emulator`` with its fake systems driver (no
  libvirt), one system per compute host (named after it), HTTP basic auth
  from an htpasswd file of bcrypt hashes, a fresh state folder per lab;
* ``box`` (:mod:`selfheal_lab.services.bmc_box`): the wiring (a system going
  Off crashes its host in Nova in a box and darkens its exporter when the lab
  runs Prometheus, On starts both), the IPMI BMCs, and a journal of every
  power request and change with timestamps.

``up(hosts, ipmi_hosts)`` records in ``endpoints.json`` (key ``bmc``) the
Redfish URL, the box's URL and the inventory file, and writes the fencing
inventory (0600, with the lab's BMC passwords) that the lab's cloud config
names (``fencing_inventory``). ``add_hosts`` gives hosts made later (the
functional tests make their own) a BMC: the processes restart in under a
second, power states survive.

HTTPS: ``up(..., tls=True)`` or :func:`set_tls` serves the emulator over
HTTPS with a certificate for 127.0.0.1 signed by a CA the lab makes
(``tls/ca.pem`` in the BMC folder; its key is never written); the inventory's
Redfish entries then name that CA (``verify: .../ca.pem``), or, per host with
:func:`set_verify`, nothing (the default: the system's CAs) or ``false``.

Fault controls: :func:`set_fault` (``unreachable``: the inventory points at
a port where nothing answers; ``wrong_password``), :func:`disable_power_off`
(the emulator refuses ForceOff: ``SUSHY_EMULATOR_DISABLE_POWER_OFF``),
``ipmi_fault="never_off"`` (the IPMI BMC accepts the request and stays on),
:func:`cut_management_network` (nova-compute stops reporting, power stays On).

Stdlib only: this module runs in the operator's or test runner's Python.
"""

import json
import pathlib
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "bmc"
KEY = "bmc"
NAMES = ("box", "redfish")
BOX_SCRIPT = pathlib.Path(__file__).resolve().parent / "bmc_box.py"
USERNAME = "fencer"
INVENTORY = "fencing.yaml"
START_TIMEOUT = 60.0


def _dir():
    return state.service_dir(SERVICE)


def _spec_path():
    return _dir() / "spec.json"


def _read_spec():
    try:
        return json.loads(_spec_path().read_text())
    except FileNotFoundError:
        return None


def _new_spec():
    """The lab's BMC set-up: ports, passwords (random per lab), hosts."""
    return {"redfish_port": processes.free_port(), "box_port": processes.free_port(),
            "dead_port": processes.free_port(),
            "password": secrets.token_urlsafe(18), "ipmi_password": secrets.token_urlsafe(12),
            "redfish": [], "ipmi": {}, "faults": {}, "disable_power_off": False,
            "ipmi_faults": {}, "tls": False, "verify": {}}


def passwords():
    """The lab's BMC passwords (for tests that scan for leaks)."""
    spec = _read_spec() or {}
    return [p for p in (spec.get("password"), spec.get("ipmi_password")) if p]


def system_uuid(host):
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"selfheal-lab-bmc.{host}"))


def _sushy_config(spec, nova_control):
    systems = [{"uuid": system_uuid(h), "name": h, "power_state": "On",
                "external_notifier": True,
                "nics": [{"mac": "52:54:00:%02x:%02x:%02x" % tuple(
                    uuid.UUID(system_uuid(h)).bytes[:3]), "ip": "192.0.2.10"}]}
               for h in spec["redfish"]]
    config = {
        "SUSHY_EMULATOR_LISTEN_IP": "127.0.0.1",
        "SUSHY_EMULATOR_LISTEN_PORT": spec["redfish_port"],
        "SUSHY_EMULATOR_FAKE_DRIVER": True,
        "SUSHY_EMULATOR_FAKE_SYSTEMS": systems,
        "SUSHY_EMULATOR_STATE_DIR": str(_dir() / "redfish-state"),
        "SUSHY_EMULATOR_AUTH_FILE": str(_dir() / "htpasswd"),
        "SUSHY_EMULATOR_DISABLE_POWER_OFF": bool(spec["disable_power_off"]),
        "EXTERNAL_NOTIFICATION_URL": f"http://127.0.0.1:{spec['box_port']}/notify",
    }
    if spec.get("tls"):
        config.update(SUSHY_EMULATOR_SSL_CERT=str(_tls_dir() / "server.pem"),
                      SUSHY_EMULATOR_SSL_KEY=str(_tls_dir() / "server.key"))
    return "".join(f"{k} = {v!r}\n" for k, v in config.items())


def _box_config(spec, nova_control):
    return json.dumps({
        "control_port": spec["box_port"], "nova_control": nova_control,
        # read at each power change: the exporters of a Prometheus started later
        "endpoints_file": str(state.endpoints_path()),
        "redfish": {h: {"uuid": system_uuid(h), "power_state": "On"} for h in spec["redfish"]},
        "ipmi": {h: {"port": p, "username": USERNAME, "password": spec["ipmi_password"],
                     "fault": spec["ipmi_faults"].get(h)} for h, p in spec["ipmi"].items()},
    })


def _tls_dir():
    return _dir() / "tls"


def ca_bundle():
    """The CA that signed the emulator's HTTPS certificate (a path)."""
    return _tls_dir() / "ca.pem"


def _scheme(spec):
    return "https" if spec.get("tls") else "http"


def _inventory(spec):
    """The fencing inventory the lab's Mistral reads (JSON is YAML)."""
    hosts = {}
    for h in spec["redfish"]:
        fault = spec["faults"].get(h)
        port = spec["dead_port"] if fault == "unreachable" else spec["redfish_port"]
        hosts[h] = {"driver": "redfish", "address": f"{_scheme(spec)}://127.0.0.1:{port}",
                    "system_id": system_uuid(h), "username": USERNAME,
                    "password": "not-" + spec["password"] if fault == "wrong_password"
                    else spec["password"]}
        verify = (spec.get("verify") or {}).get(h, "ca")
        if spec.get("tls") and verify == "ca":
            hosts[h]["verify"] = str(ca_bundle())
        elif spec.get("tls") and verify == "off":
            hosts[h]["verify"] = False
    for h, p in spec["ipmi"].items():
        fault = spec["faults"].get(h)
        hosts[h] = {"driver": "ipmi", "address": "127.0.0.1",
                    "port": spec["dead_port"] if fault == "unreachable" else p,
                    "username": USERNAME,
                    "password": "not-" + spec["ipmi_password"] if fault == "wrong_password"
                    else spec["ipmi_password"]}
    return json.dumps({"hosts": hosts}, indent=2, sort_keys=True)


def inventory_path():
    return _dir() / INVENTORY


def _write_inventory(spec):
    state.write_private(inventory_path(), _inventory(spec))


def _redfish_status(info):
    url = info["redfish_url"] + "/redfish/v1/"
    if not url.startswith("https://"):
        return managed.http_status(url)
    try:  # the lab's CA, verified like the actions do it
        context = ssl.create_default_context(cafile=info["ca_bundle"])
        with urllib.request.urlopen(url, timeout=3, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def _probe(info):
    return (managed.http_status(info["box_url"] + "/health") == 200
            and _redfish_status(info) == 200)


def _fingerprint(spec, nova_control):
    return managed.fingerprint(spec, nova_control, managed.source_of(BOX_SCRIPT),
                               managed.source_of(__file__), venvs.stamp(SERVICE))


def _nova_control():
    info = state.read_endpoints().get("nova")
    if not info:
        raise RuntimeError("the BMCs need Nova in a box: start the lab first (lab.up)")
    return info["control_url"]


def up(hosts=(), ipmi_hosts=(), timeout=START_TIMEOUT, tls=None):
    """Start (or keep) the BMCs for ``hosts`` (Redfish) and ``ipmi_hosts``.

    :param tls: True: the emulator serves HTTPS (:func:`set_tls`); None:
        as it is.
    :returns: the endpoints entry: ``redfish_url``, ``box_url``,
        ``inventory`` (the file's path), ``redfish_hosts``, ``ipmi_hosts``,
        ``ca_bundle`` (with TLS, else None).
    """
    python = venvs.ensure(SERVICE)
    spec = _read_spec() or _new_spec()
    if tls is not None:
        spec["tls"] = bool(tls)
    fresh = not spec["redfish"] and not spec["ipmi"]
    for h in hosts:
        if h not in spec["redfish"] and h not in spec["ipmi"]:
            spec["redfish"].append(h)
    for h in ipmi_hosts:
        if h not in spec["ipmi"]:
            if h in spec["redfish"]:
                spec["redfish"].remove(h)
            spec["ipmi"][h] = processes.free_port()
    return _apply(python, spec, timeout, fresh)


def _apply(python, spec, timeout=START_TIMEOUT, fresh=False):
    nova_control = _nova_control()
    sdir = _dir()
    state.write_private(_spec_path(), json.dumps(spec))
    if spec.get("tls") and not ca_bundle().exists():
        subprocess.run([str(python), str(BOX_SCRIPT), "tls", str(_tls_dir())], check=True)
    _write_inventory(spec)
    wanted = _fingerprint(spec, nova_control)
    running = managed.running(SERVICE, NAMES, wanted, _probe)
    if running:
        return running
    if fresh:  # a fresh emulator state per lab: config systems load only once
        import shutil

        shutil.rmtree(sdir / "redfish-state", ignore_errors=True)
        (sdir / "journal.jsonl").unlink(missing_ok=True)
        (sdir / "ipmi-power.json").unlink(missing_ok=True)
    (sdir / "redfish-state").mkdir(exist_ok=True)
    htpasswd = sdir / "htpasswd"
    htpasswd.unlink(missing_ok=True)
    subprocess.run([str(python), str(BOX_SCRIPT), "htpasswd", str(htpasswd), USERNAME],
                   input=spec["password"], text=True, check=True)
    htpasswd.chmod(0o600)
    config = sdir / "sushy.conf"
    state.write_private(config, _sushy_config(spec, nova_control))
    state.write_private(sdir / "box.json", _box_config(spec, nova_control))
    info = {"redfish_url": f"{_scheme(spec)}://127.0.0.1:{spec['redfish_port']}",
            "ca_bundle": str(ca_bundle()) if spec.get("tls") else None,
            "box_url": f"http://127.0.0.1:{spec['box_port']}",
            "inventory": str(inventory_path()), "redfish_hosts": list(spec["redfish"]),
            "ipmi_hosts": dict(spec["ipmi"])}
    commands = {
        "box": [str(python), str(BOX_SCRIPT), "serve", "--state-dir", str(sdir)],
        "redfish": [str(python.parent / "sushy-emulator"), "--config", str(config)],
    }
    progress.step(f"starting the BMCs: sushy-emulator ({len(spec['redfish'])} Redfish "
                  f"systems) and {len(spec['ipmi'])} IPMI BMC(s)")
    return managed.start(SERVICE, KEY, commands, wanted, info, _probe, timeout, "BMCs")


def add_hosts(hosts=(), ipmi_hosts=()):
    """Give hosts a BMC (Redfish, or IPMI for ``ipmi_hosts``)."""
    return up(hosts, ipmi_hosts)


def _change(update):
    spec = _read_spec()
    if spec is None:
        raise RuntimeError("the BMCs are not running (selfheal_lab.services.bmc.up)")
    update(spec)
    return _apply(venvs.ensure(SERVICE), spec)


def set_fault(host, fault=None):
    """``unreachable`` / ``wrong_password`` in the host's inventory entry, or None."""
    def update(spec):
        if fault:
            spec["faults"][host] = fault
        else:
            spec["faults"].pop(host, None)
    return _change(update)


def set_tls(enabled=True):
    """The emulator serves HTTPS with the lab's CA (restarts it), or HTTP."""
    return _change(lambda spec: spec.update(tls=bool(enabled)))


def set_verify(host, verify="ca"):
    """What the inventory entry of ``host`` says under TLS: ``ca`` (the
    lab's CA bundle, the default), ``system`` (no ``verify``: the system's
    CAs, which do not know the lab's) or ``off`` (``verify: false``)."""
    if verify not in ("ca", "system", "off"):
        raise ValueError(f"verify must be ca, system or off, not {verify!r}")
    return _change(lambda spec: spec.setdefault("verify", {}).update({host: verify}))


def disable_power_off(disabled=True):
    """The Redfish emulator refuses ForceOff (restarts it)."""
    return _change(lambda spec: spec.update(disable_power_off=bool(disabled)))


def power_off_disabled():
    return bool((_read_spec() or {}).get("disable_power_off"))


def set_ipmi_fault(host, fault=None):
    """``never_off``: the IPMI BMC of ``host`` accepts power-off and stays on."""
    def update(spec):
        if fault:
            spec["ipmi_faults"][host] = fault
        else:
            spec["ipmi_faults"].pop(host, None)
    return _change(update)


def cut_management_network(host):
    """A management-network failure: the host's nova-compute stops reporting
    (its service goes down in Nova) and its exporter cannot be scraped when
    the lab runs Prometheus, while its power stays On
    (:func:`selfheal_lab.faults.cut_management_network`).

    :returns: the Nova box's answer.
    """
    from selfheal_lab import faults

    return faults.cut_management_network(host)["nova"]


def journal(host=None):
    """Every power request and change the BMCs saw: ``[{"at", "host", "bmc",
    "event": requested | applied, "power"}]``, oldest first."""
    info = state.read_endpoints().get(KEY)
    if not info:
        return []
    entries = http_json.call(info["box_url"], "GET", "/journal", timeout=10,
                             what="bmc box") or []
    return [e for e in entries if host is None or e["host"] == host]


def down():
    """Stop the BMCs (by PID), forget the inventory and the set-up."""
    stopped = managed.stop(SERVICE, KEY, NAMES)
    inventory_path().unlink(missing_ok=True)
    _spec_path().unlink(missing_ok=True)
    for name in ("ca.pem", "server.pem", "server.key"):  # a new CA for the next lab
        (_tls_dir() / name).unlink(missing_ok=True)
    return stopped


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
