# SPDX-License-Identifier: Apache-2.0
"""The lab's hardware wiring and IPMI BMCs: one process in the bmc venv.

Run by :mod:`selfheal_lab.services.bmc` with the bmc venv's interpreter::

    bmc_box.py serve --state-dir DIR     # the wiring + the IPMI BMCs
    bmc_box.py htpasswd FILE USER        # bcrypt htpasswd line (password on stdin)
    bmc_box.py tls DIR                   # a CA and the emulator's certificate

``serve`` reads ``DIR/box.json`` (written by the lab, 0600)::

    {"control_port": N, "nova_control": "http://127.0.0.1:C",
     "endpoints_file": "<lab>/endpoints.json",
     "redfish": {"compute-1": {"uuid": ..., "power_state": "On"}, ...},
     "ipmi": {"compute-3": {"port": P, "username": ..., "password": ...,
                            "fault": null | "never_off"}}}

and runs:

* **the wiring**: the real sushy-emulator (a process of its own) sends a PUT
  with the system to ``/notify`` whenever a system changes (its
  ``external_notifier``: on the reset request and when the change is
  applied). A system that goes Off crashes its host in Nova in a box
  (``POST /hosts/<h>/crash``: nothing in flight finishes); one that goes On
  starts it. When the lab runs Prometheus (``prometheus`` in the endpoints
  file, read at each change), the host's exporter goes dark on Off and is lit
  on On, as a node exporter dies and boots with its machine. The reply waits
  for both, so by the time a Redfish client reads Off, the host is dead.
* **IPMI BMCs** on pyghmi's ``Bmc`` class, one UDP port per host on
  127.0.0.1, wired the same way (the crash runs before the BMC reports off).
  pyghmi's server accepts any cipher suite but only speaks suite 3 (SHA-1):
  its own client asks for 17 (SHA-256) first and then fails, so an
  open-session request for anything but SHA-1 is refused here, and the
  client falls back.
* a control API: ``GET /health``, ``GET /journal`` (every power request and
  change, with UTC timestamps, per host), ``GET /ipmi`` (IPMI power states).

No password is ever logged.
"""

import argparse
import datetime
import http.server
import json
import logging
import pathlib
import sys
import threading
import time
import urllib.request

LOG = logging.getLogger("bmc_box")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class Box:
    def __init__(self, state_dir):
        self.dir = pathlib.Path(state_dir)
        self.config = json.loads((self.dir / "box.json").read_text())
        self.lock = threading.Lock()
        self.journal_path = self.dir / "journal.jsonl"
        self.redfish_seen = {h: s["power_state"] for h, s in self.config["redfish"].items()}
        power_file = self.dir / "ipmi-power.json"
        saved = json.loads(power_file.read_text()) if power_file.exists() else {}
        self.ipmi_power = {h: saved.get(h, "on") for h in self.config["ipmi"]}

    # --- the wiring ------------------------------------------------------------------
    def record(self, host, bmc, event, power):
        entry = {"at": _now(), "host": host, "bmc": bmc, "event": event, "power": power}
        with self.lock:
            with open(self.journal_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        LOG.info("%s %s %s: power %s", host, bmc, event, power)

    def nova(self, host, what):
        url = f"{self.config['nova_control']}/hosts/{host}/{what}"
        request = urllib.request.Request(url, data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}")
        except Exception as error:  # noqa: BLE001 - the wiring must not die
            LOG.error("Nova in a box: %s %s failed: %s", what, host, error)
            return None

    def exporter(self, host, lit):
        """The host's node exporter, when the lab runs Prometheus."""
        try:
            endpoints = json.loads(pathlib.Path(self.config["endpoints_file"]).read_text())
        except (KeyError, OSError, ValueError):
            return None
        info = endpoints.get("prometheus") or {}
        if host not in (info.get("hosts") or {}):
            return None
        url = f"{info['exporters_url']}/exporters/{host}/{'light' if lit else 'dark'}"
        request = urllib.request.Request(url, data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except Exception as error:  # noqa: BLE001 - the wiring must not die
            LOG.error("exporter of %s: %s failed: %s", host, "light" if lit else "dark", error)
            return None

    def wire(self, host, power):
        """Hardware: the host (and its exporter) dies when its power goes off,
        boots when on."""
        if power == "off":
            self.exporter(host, lit=False)
            self.nova(host, "crash")
        else:
            self.nova(host, "start")
            self.exporter(host, lit=True)

    def redfish_notification(self, system):
        host = system.get("name")
        if host not in self.redfish_seen:
            return
        pending = system.get("pending_power")
        if pending:
            self.record(host, "redfish", "requested", pending["power_state"].lower())
        state = str(system.get("power_state", "")).lower()
        if state and state != self.redfish_seen[host].lower():
            self.redfish_seen[host] = state
            self.wire(host, state)  # before the reply: the reader sees Off after the crash
            self.record(host, "redfish", "applied", state)

    # --- IPMI -------------------------------------------------------------------------
    def ipmi_switch(self, host, power):
        fault = self.config["ipmi"][host].get("fault")
        self.record(host, "ipmi", "requested", power)
        if fault == "never_off" and power == "off":
            return

        def apply():
            time.sleep(1)  # hardware is not immediate
            self.wire(host, power)
            with self.lock:
                self.ipmi_power[host] = power
                (self.dir / "ipmi-power.json").write_text(json.dumps(self.ipmi_power))
            self.record(host, "ipmi", "applied", power)
        threading.Thread(target=apply, daemon=True).start()

    def journal(self):
        if not self.journal_path.exists():
            return []
        return [json.loads(line) for line in self.journal_path.read_text().splitlines() if line]


def control_server(box):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: the journal says what matters
            pass

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path == "/health":
                return self._reply(200, {"ok": True})
            if self.path == "/journal":
                return self._reply(200, box.journal())
            if self.path == "/ipmi":
                return self._reply(200, box.ipmi_power)
            return self._reply(404, {"error": "not found"})

        def do_PUT(self):  # noqa: N802 - sushy-emulator's external notification
            length = int(self.headers.get("Content-Length") or 0)
            system = json.loads(self.rfile.read(length) or b"{}")
            box.redfish_notification(system)
            return self._reply(200, {"ok": True})

        do_POST = do_PUT  # noqa: N815

    server = http.server.ThreadingHTTPServer(("127.0.0.1", box.config["control_port"]),
                                             Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ipmi_bmcs(box):
    from pyghmi.ipmi import bmc
    from pyghmi.ipmi.private import serversession

    if getattr(serversession.ServerSession, "_selfheal_sha1_only", False) is False:
        original = serversession.ServerSession.create_open_session_response

        def sha1_only(self, request):
            # request: tag, role, 2 reserved, session id (4), then the
            # authentication record, whose algorithm is byte 12 (1 = SHA-1)
            if request[12] != 1:
                # RMCP+ status 0x04: invalid authentication algorithm
                return bytearray([request[0], 0x04, 0, 0]) + request[4:8]
            return original(self, request)
        serversession.ServerSession.create_open_session_response = sha1_only
        serversession.ServerSession._selfheal_sha1_only = True

    class LabBmc(bmc.Bmc):
        def __init__(self, host, spec):
            super().__init__({spec["username"]: spec["password"]}, port=spec["port"],
                             address="127.0.0.1")
            self.host = host

        def get_power_state(self):
            return box.ipmi_power[self.host]

        def power_off(self):
            box.ipmi_switch(self.host, "off")

        def power_shutdown(self):
            box.ipmi_switch(self.host, "off")

        def power_on(self):
            box.ipmi_switch(self.host, "on")

        def power_reset(self):
            box.ipmi_switch(self.host, "off")
            box.ipmi_switch(self.host, "on")

        power_cycle = power_reset

        def get_boot_device(self):
            return "default"

        def set_boot_device(self, bootdevice):
            return None

    return [LabBmc(host, spec) for host, spec in box.config["ipmi"].items()]


def serve(state_dir):
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    box = Box(state_dir)
    control_server(box)
    bmcs = ipmi_bmcs(box)
    LOG.info("ready: wiring on port %s, %d IPMI BMC(s)", box.config["control_port"], len(bmcs))
    print("BMC BOX READY", flush=True)
    if bmcs:
        type(bmcs[0]).listen(timeout=30)
    else:
        while True:
            time.sleep(3600)


def htpasswd(path, user):
    import bcrypt

    password = sys.stdin.read().strip().encode()
    line = f"{user}:{bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()}\n"
    with open(path, "a") as f:
        f.write(line)


def tls(directory):
    """A private CA and a server certificate it signs for 127.0.0.1 (and
    localhost), for the emulator's HTTPS: ``DIR/ca.pem`` (what a client
    trusts), ``DIR/server.pem`` and ``DIR/server.key`` (0600). The CA's key
    is never written: nothing else can be signed with it."""
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from cryptography.x509.oid import NameOID

    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(name("selfheal lab BMC CA"))
          .issuer_name(name("selfheal lab BMC CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
              .issuer_name(ca.subject).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.SubjectAlternativeName([
                  x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                  x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                           False, False), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                  ca_ski), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    fd = os.open(out / "server.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    (out / "server.pem").write_bytes(server.public_bytes(pem))
    (out / "ca.pem").write_bytes(ca.public_bytes(pem))


def main(argv=None):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--state-dir", required=True)
    h = sub.add_parser("htpasswd")
    h.add_argument("file")
    h.add_argument("user")
    t = sub.add_parser("tls")
    t.add_argument("dir")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.state_dir)
    elif args.command == "tls":
        tls(args.dir)
    else:
        htpasswd(args.file, args.user)


if __name__ == "__main__":
    main()
