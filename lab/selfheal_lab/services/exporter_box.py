# SPDX-License-Identifier: Apache-2.0
"""The lab's per-host node exporters: one process in the prometheus venv.

Run by :mod:`selfheal_lab.services.prometheus` with that venv's interpreter::

    exporter_box.py serve --state-dir DIR

``serve`` reads ``DIR/box.json`` (written by the lab)::

    {"control_port": N, "hosts": {"compute-1": P1, "compute-2": P2, ...}}

and runs one small exporter per compute host: an HTTP server of its own on
``127.0.0.1:P`` serving that host's registry (prometheus_client's
``make_wsgi_app``) with ``node_boot_time_seconds`` and
``node_uname_info{nodename=<host>}``, like a node exporter on the machine.

An exporter goes **dark** by closing its listening socket, so Prometheus's
scrape meets "connection refused" and ``up`` drops to 0, as when the host
dies, loses power or its network; **lit** again it listens on the same port
with a new boot time (a host that came back has rebooted). Which exporters are
dark is kept in ``DIR/exporters-state.json``, so a restarted box keeps it.

Control API (JSON, 127.0.0.1 only): ``GET /health``; ``GET /exporters``
(``{host: {"port", "lit"}}``); ``POST /exporters {"host", "port"}`` adds one
(lit); ``POST /exporters/<host>/dark`` and ``/light``; ``DELETE
/exporters/<host>`` stops and forgets one. Answers ``{"host", "port", "lit",
"changed"}``; an unknown host is a 404.
"""

import argparse
import http.server
import json
import logging
import pathlib
import socketserver
import sys
import threading
import time
import wsgiref.simple_server

LOG = logging.getLogger("exporter_box")


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):  # one scrape a second per host: no log
        pass


class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Exporter:
    """One host's exporter: its registry and, while lit, its HTTP server."""

    def __init__(self, host, port):
        from prometheus_client import CollectorRegistry
        from prometheus_client import Gauge

        self.host, self.port = host, port
        self.registry = CollectorRegistry()
        self.boot_time = Gauge("node_boot_time_seconds", "Node boot time, in unixtime.",
                               registry=self.registry)
        uname = Gauge("node_uname_info", "Labeled system information.", ["nodename"],
                      registry=self.registry)
        uname.labels(nodename=host).set(1)
        self.server = None
        self.thread = None

    @property
    def lit(self):
        return self.server is not None

    def light(self, attempts=20):
        """Listen again (a rebooted host: new boot time). False if already lit."""
        if self.server is not None:
            return False
        from prometheus_client import make_wsgi_app

        self.boot_time.set(time.time())
        for attempt in range(attempts):
            try:
                server = wsgiref.simple_server.make_server(
                    "127.0.0.1", self.port, make_wsgi_app(self.registry), _Server,
                    handler_class=_QuietHandler)
                break
            except OSError as error:  # the port is briefly held: try again
                if attempt == attempts - 1:
                    raise
                LOG.warning("exporter of %s: port %s busy (%s), retrying", self.host,
                            self.port, error)
                time.sleep(0.25)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                       daemon=True, name=f"exporter-{self.host}")
        self.thread.start()
        LOG.info("exporter of %s lit on 127.0.0.1:%s", self.host, self.port)
        return True

    def dark(self):
        """Close the listening socket: connections are refused. False if already dark."""
        if self.server is None:
            return False
        server, self.server = self.server, None
        server.shutdown()
        server.server_close()
        self.thread.join(timeout=5)
        LOG.info("exporter of %s dark", self.host)
        return True

    def describe(self, changed=None):
        answer = {"host": self.host, "port": self.port, "lit": self.lit}
        if changed is not None:
            answer["changed"] = changed
        return answer


class Box:
    def __init__(self, state_dir):
        self.dir = pathlib.Path(state_dir)
        self.config = json.loads((self.dir / "box.json").read_text())
        self.state_path = self.dir / "exporters-state.json"
        self.lock = threading.Lock()
        self.exporters = {}
        saved = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        for host, port in self.config["hosts"].items():
            self.add(host, port, lit=saved.get(host, {}).get("lit", True), save=False)
        self.save()

    def save(self):
        data = {h: {"port": e.port, "lit": e.lit} for h, e in self.exporters.items()}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_path)

    def add(self, host, port, lit=True, save=True):
        exporter = self.exporters.get(host)
        changed = exporter is None
        if changed:
            exporter = self.exporters[host] = Exporter(host, int(port))
            if lit:
                exporter.light()
            if save:
                self.save()
        return exporter.describe(changed)

    def switch(self, host, what):
        exporter = self.exporters[host]
        changed = exporter.light() if what == "light" else exporter.dark()
        self.save()
        return exporter.describe(changed)

    def remove(self, host):
        exporter = self.exporters.pop(host)
        exporter.dark()
        self.save()
        return dict(exporter.describe(True), removed=True)

    def control(self, method, parts, body):
        with self.lock:
            if method == "GET" and parts == ["health"]:
                return 200, {"ok": True}
            if method == "GET" and parts == ["exporters"]:
                return 200, {h: {"port": e.port, "lit": e.lit}
                             for h, e in self.exporters.items()}
            if method == "POST" and parts == ["exporters"]:
                host, port = body.get("host"), body.get("port")
                if not isinstance(host, str) or not host or not isinstance(port, int):
                    return 400, {"error": 'expected {"host": "name", "port": N}'}
                return 200, self.add(host, port)
            if len(parts) >= 2 and parts[0] == "exporters" and parts[1] not in self.exporters:
                return 404, {"error": f"no exporter for host {parts[1]}"}
            if method == "POST" and len(parts) == 3 and parts[0] == "exporters" \
                    and parts[2] in ("dark", "light"):
                return 200, self.switch(parts[1], parts[2])
            if method == "DELETE" and len(parts) == 2 and parts[0] == "exporters":
                return 200, self.remove(parts[1])
            return 404, {"error": f"no route {method} /{'/'.join(parts)}"}


def control_server(box):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                status, answer = 400, {"error": "expected a JSON object"}
            else:
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                try:
                    status, answer = box.control(self.command, parts, body)
                except Exception as error:  # noqa: BLE001 - answer, never die
                    LOG.exception("control %s %s failed", self.command, self.path)
                    status, answer = 500, {"error": str(error)}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - http.server's naming

    server = http.server.ThreadingHTTPServer(("127.0.0.1", box.config["control_port"]),
                                             Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve(state_dir):
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    box = Box(state_dir)
    control_server(box)
    LOG.info("ready: control on port %s, %d exporter(s)", box.config["control_port"],
             len(box.exporters))
    while True:
        time.sleep(3600)


def main(argv=None):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    serve(args.state_dir)


if __name__ == "__main__":
    main()
