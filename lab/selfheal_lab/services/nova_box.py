# SPDX-License-Identifier: Apache-2.0
"""Nova in a box: API, conductor, scheduler, placement and fake computes.

Run by the nova venv's interpreter (never imported by the lab itself)::

    .lab/venvs/nova/bin/python selfheal_lab/services/nova_box.py \\
        --port P --control-port C --hosts compute-1,compute-2 \\
        --driver fake.FakeLiveMigrateDriver --state-dir DIR

It assembles Nova's own functional-test fixtures (``nova.test.TestCase``,
``nova.tests.fixtures``) outside a test runner, then serves:

* on ``127.0.0.1:P`` the real Nova API paste pipeline (version discovery at
  ``/``, microversions up to Nova's maximum). Authentication is stubbed:
  every call under ``/v2.1/`` must carry ``X-Auth-User``,
  ``X-Auth-Project-Id`` and ``X-Roles`` (``X-Auth-User: admin`` plus the
  ``admin`` role makes an admin); no token is checked;
* on ``127.0.0.1:C`` a small JSON control API for the lab only (simulated
  host failures, fault injection, request counters, and for a box that
  misbehaves its database engines, ``GET /databases``, and where each green
  thread waits, ``GET /stacks``). It is not Nova;
* once the lab asks for it (``POST /keystone`` on the control API, naming a
  0600 settings file with the lab Keystone's URL and the ``nova`` service
  user), the same Nova API on a second port behind the real
  keystonemiddleware ``auth_token``: tokens are validated by Keystone, the
  request context is Nova's own (``RequestContext.from_environ``), and Nova's
  default policy decides. The stub headers mean nothing there. This door
  records who made each request (user, project, roles and a hash of the
  token, never the token): ``GET /keystone/requests``.

When it serves it prints one line ``READY {json}`` on stdout.

This file must stay importable without ``selfheal_lab``: it runs in a
different virtual environment.
"""

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

# This folder holds the lab's own nova.py, which would shadow the nova
# package: drop it from the import path before anything imports Nova.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Seconds between two heartbeats of a compute service, and the age after
# which the API reports a service ``down``: a stopped host shows as down
# within about SERVICE_DOWN_TIME + REPORT_INTERVAL seconds.
REPORT_INTERVAL = 1
SERVICE_DOWN_TIME = 6
# Delay before a (re)started service sends its first heartbeat (Nova: 5 s);
# with 1 s a restarted host is reported up again within about 2 s.
FIRST_REPORT_DELAY = 1
# Nova makes some RPC calls (set_host_enabled, select_destinations, ...)
# with long_rpc_timeout (1800 s) and relies on the broker's call monitor
# (rpc_response_timeout, 60 s) to notice a dead server sooner. The in-process
# fake transport has no call monitor, so cap long calls at the real-world
# 60 s: a call to a dead compute then fails as late as it would with RabbitMQ.
LONG_RPC_TIMEOUT = 60

AUTH_HEADERS = ("HTTP_X_AUTH_USER", "HTTP_X_AUTH_PROJECT_ID", "HTTP_X_ROLES")
# Set in the environ of requests that came through the Keystone door.
KEYSTONE_DOOR = "selfheal.keystone_door"
# The Keystone door remembers this many requests (oldest forgotten first).
DOOR_RECORDS = 20000

_ID_SEGMENT = re.compile(
    r"^([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}|[0-9]+)$")
_VERSION_PREFIX = re.compile(r"^/v2(\.1)?(?=/.)")
_NEEDS_AUTH = re.compile(r"^/v2(\.1)?/[^/]+")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--hosts", default="compute-1,compute-2,compute-3")
    parser.add_argument("--driver", default="fake.FakeLiveMigrateDriver")
    parser.add_argument("--state-dir", required=True)
    return parser.parse_args(argv)


def route_of(method, path):
    """``GET /v2.1/servers/<uuid>`` -> ``GET /servers/{id}``."""
    path = _VERSION_PREFIX.sub("", path) or "/"
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return f"{method} {'/'.join(parts)}"


class RequestCounter:
    """WSGI middleware counting Nova API requests per route (both doors)."""

    def __init__(self, app):
        self.app = app
        self.reset()

    def reset(self):
        self.total = 0
        self.by_route = {}

    def snapshot(self):
        return {"total": self.total, "by_route": dict(sorted(self.by_route.items()))}

    def __call__(self, environ, start_response):
        route = route_of(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"))
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1
        return self.app(environ, start_response)


def stub_door(app):
    """The no-auth door: every API call must carry the stub identity headers."""

    def door(environ, start_response):
        if _NEEDS_AUTH.match(environ.get("PATH_INFO", "")):
            missing = [h for h in AUTH_HEADERS if not environ.get(h)]
            if missing:
                names = ", ".join(h[5:].replace("_", "-").title() for h in missing)
                return _json_response(start_response, 401, {
                    "error": f"nova box: missing auth header(s) {names}"})
        return app(environ, start_response)

    return door


class KeystoneDoor:
    """The Nova API behind keystonemiddleware's ``auth_token`` (real tokens).

    :param app: the Nova API application (shared with the stub door).
    :param settings: ``{"auth_url", "username", "password", "project_name"}``
        of the service user that validates tokens (domain ``default``).

    :attr:`records` lists, per request that passed validation or was refused
    by Nova, ``{"route", "status", "user_id", "user_name", "project_id",
    "project_name", "roles", "token_sha256"}`` (the first 16 hex digits of
    the token's SHA-256, so a caller can recognise its own token).
    """

    def __init__(self, app, settings):
        self.records = collections.deque(maxlen=DOOR_RECORDS)
        self._app = app
        self.configure(settings)

    def configure(self, settings):
        """(Re)build the token validation for ``settings`` (a Keystone that
        moved, new service credentials)."""
        from keystonemiddleware import auth_token

        self.auth_url = settings["auth_url"]
        self._protected = auth_token.AuthProtocol(self._validated, {
            "www_authenticate_uri": settings["auth_url"], "auth_url": settings["auth_url"],
            "auth_type": "password", "username": settings["username"],
            "password": settings["password"], "project_name": settings["project_name"],
            "user_domain_id": "default", "project_domain_id": "default",
            "interface": "public", "include_service_catalog": "true",
            "delay_auth_decision": "false"})

    def __call__(self, environ, start_response):
        for header in AUTH_HEADERS:  # the stub identity means nothing here
            environ.pop(header, None)
        return self._protected(environ, start_response)

    def _validated(self, environ, start_response):
        environ[KEYSTONE_DOOR] = True
        token = environ.get("HTTP_X_AUTH_TOKEN", "")
        record = {
            "route": route_of(environ.get("REQUEST_METHOD", "GET"),
                              environ.get("PATH_INFO", "/")),
            "status": None,
            "user_id": environ.get("HTTP_X_USER_ID"),
            "user_name": environ.get("HTTP_X_USER_NAME"),
            "project_id": environ.get("HTTP_X_PROJECT_ID"),
            "project_name": environ.get("HTTP_X_PROJECT_NAME"),
            "roles": sorted(r for r in (environ.get("HTTP_X_ROLES") or "").split(",") if r),
            "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:16],
        }
        self.records.append(record)

        def recording_start_response(status, headers, exc_info=None):
            record["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self._app(environ, recording_start_response)


def two_door_context(stub_context, real_context):
    """Nova's request context: the real one (from the headers ``auth_token``
    set) behind the Keystone door, the test stub's elsewhere."""

    def create_context(env, **kwargs):
        if env.get(KEYSTONE_DOOR):
            return real_context(env, **kwargs)
        return stub_context(env, **kwargs)

    return create_context


def database_engines():
    """Every SQLAlchemy engine of the box: its URL, pool and recycle age."""
    import gc

    import sqlalchemy

    return [{"url": str(obj.url), "pool": type(obj.pool).__name__,
             "recycle_seconds": obj.pool._recycle}
            for obj in gc.get_objects() if isinstance(obj, sqlalchemy.engine.Engine)]


def green_thread_stacks():
    """Where every green thread of the box is now (for a box that hangs)."""
    import gc
    import traceback

    import greenlet

    stacks = []
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            stacks.append("".join(traceback.format_stack(obj.gr_frame)))
    return stacks


def _json_response(start_response, status, body):
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              409: "Conflict", 500: "Internal Server Error"}.get(status, "OK")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data)))])
    return [data]


def main(argv=None):
    args = parse_args(argv)
    state_dir = os.path.abspath(args.state_dir)
    tmp = os.path.join(state_dir, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, exist_ok=True)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    # oslotest reads these; a test runner's settings must not leak in here.
    for var in ("OS_TEST_TIMEOUT", "OS_STDOUT_CAPTURE", "OS_STDERR_CAPTURE",
                "OS_LOG_CAPTURE", "OS_DEBUG", "OS_NOVA_DISABLE_EVENTLET_PATCHING"):
        os.environ.pop(var, None)
    started = time.monotonic()

    # Eventlet monkey patching must happen before Nova (and urllib3,
    # oslo_context, ...) are imported; nova.test refuses to load otherwise.
    from nova import monkey_patch
    monkey_patch.patch("eventlet")

    keep_memory_databases()
    box = build_box(args)
    box.serve(args.port, args.control_port, started)


def keep_memory_databases():
    """Keep each in-memory SQLite database of the box for the box's lifetime.

    Nova's fixtures keep every database (API, cell0, cell1, Placement) in
    memory behind one connection (oslo.db's StaticPool). oslo.db recycles a
    connection older than ``connection_recycle_time`` (3600 s by default),
    and for an in-memory database a new connection is a new, empty
    database: a box that had served for an hour answered every call with
    HTTP 500 "no such table". Only an in-memory database is exempted; the
    box has no other kind.
    """
    from oslo_db.sqlalchemy import engines
    from oslo_db.sqlalchemy import utils as db_utils

    real_create_engine = engines.create_engine

    def create_engine(sql_connection, *args, **kwargs):
        url = db_utils.make_url(sql_connection)
        if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
            kwargs["connection_recycle_time"] = -1
        return real_create_engine(sql_connection, *args, **kwargs)

    engines.create_engine = create_engine


def build_box(args):
    """Import Nova (after patching) and assemble the services."""
    import logging
    import warnings
    from unittest import mock

    import eventlet
    import eventlet.wsgi
    import oslo_messaging as messaging
    from nova import context as nova_context
    from nova import exception
    from nova import objects
    from nova import rpc
    from nova import test
    from nova.api import auth as nova_auth
    from nova.tests import fixtures as nova_fixtures
    from nova.tests.functional import fixtures as func_fixtures

    # Nova's own context factory, before OSAPIFixture stubs it out.
    real_context = nova_auth.NovaKeystoneContext._create_context

    class NovaBox(test.TestCase):
        """A functional-test case used as a long-lived service container."""

        def runTest(self):  # testtools wants a test method to exist
            pass

        def _clear_attrs(self):  # never tear attributes down
            pass

        def assemble(self, hosts, driver):
            self.setUp()
            self._quiet_logging()
            warnings.resetwarnings()
            warnings.simplefilter("ignore")
            self.flags(compute_driver=driver,
                       report_interval=REPORT_INTERVAL,
                       service_down_time=SERVICE_DOWN_TIME,
                       long_rpc_timeout=LONG_RPC_TIMEOUT)
            self.flags(api_paste_config=os.path.join(sys.prefix, "etc", "nova", "api-paste.ini"),
                       group="wsgi")
            # A lab cloud: tests and benchmarks boot hundreds of servers in one project.
            self.flags(instances=-1, cores=-1, ram=-1, server_groups=-1,
                       server_group_members=-1, group="quota")
            self.policy = self.useFixture(nova_fixtures.RealPolicyFixture())
            self.neutron = self.useFixture(nova_fixtures.NeutronFixture(self))
            self.glance = self.useFixture(nova_fixtures.GlanceFixture(self))
            self.useFixture(nova_fixtures.CinderFixture(self))
            self.useFixture(func_fixtures.PlacementFixture())
            self.useFixture(nova_fixtures.AllServicesCurrent())
            self._silence_notifications()
            self.stub_out("nova.servicegroup.api.INITIAL_REPORTING_DELAY", FIRST_REPORT_DELAY)
            self.api_fixture = self.useFixture(nova_fixtures.OSAPIFixture(api_version="v2.1"))
            self.stub_out("nova.api.auth.NovaKeystoneContext._create_context", two_door_context(
                nova_auth.NovaKeystoneContext._create_context, real_context))
            self.keystone_door = None
            # OSAPIFixture turns on debug; keep the log at INFO.
            self.flags(debug=False)
            self.start_service("conductor")
            self.start_service("scheduler")
            self.running = {}
            self.spawn_faults = {}
            for host in hosts:
                self.add_host(host)

        def _quiet_logging(self):
            # The test fixtures capture logs in memory and format every
            # DEBUG record; a long-running box logs INFO to stderr instead.
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s [%(name)s] %(message)s"))
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            for noisy in ("oslo_db.sqlalchemy", "alembic", "migrate.versioning.api",
                          "stevedore", "oslo_policy"):
                logging.getLogger(noisy).setLevel(logging.WARNING)

        def _silence_notifications(self):
            # The 'test' notification driver keeps every notification in
            # memory forever; a lab that runs for hours must not.
            serializer = rpc.RequestContextSerializer(rpc.JsonPayloadSerializer())
            for name in ("LEGACY_NOTIFIER", "NOTIFIER"):
                self.stub_out(f"nova.rpc.{name}", messaging.Notifier(
                    rpc.NOTIFICATION_TRANSPORT, serializer=serializer, driver="noop"))

        # --- compute hosts -------------------------------------------------

        def add_host(self, host):
            if self.running.get(host):
                return False
            if host in self.computes:
                return self.start_host(host)
            compute = self._start_compute(host)
            self._arm_faults(host, compute.manager.driver)
            self.running[host] = True
            return True

        def stop_host(self, host):
            if host not in self.computes:
                raise KeyError(host)
            if not self.running.get(host):
                return False
            self.computes[host].stop()
            self.running[host] = False
            return True

        def start_host(self, host):
            """Restart a stopped compute like a real nova-compute restart.

            A new service and manager are created (so init_host runs and
            destroys the local leftovers of instances evacuated away), but
            the fake hypervisor (the driver object) survives, like guests
            defined on a real host do.
            """
            if host not in self.computes:
                raise KeyError(host)
            if self.running.get(host):
                return False
            old_driver = self.computes[host].manager.driver
            with mock.patch("nova.virt.driver.load_compute_driver", return_value=old_driver):
                self.computes[host] = self.start_service("compute", host=host)
            self.running[host] = True
            return True

        def _arm_faults(self, host, driver):
            real_spawn = driver.spawn
            faults = self.spawn_faults

            def spawn(context, instance, *a, **kw):
                if faults.get(host, 0) > 0:
                    faults[host] -= 1
                    raise exception.NovaException(
                        f"selfheal lab: injected spawn failure on {host} "
                        f"for instance {instance.uuid}")
                return real_spawn(context, instance, *a, **kw)

            driver.spawn = spawn

        # --- facts for tools -------------------------------------------------

        def hosts(self):
            return [{"host": h, "running": bool(self.running.get(h))} for h in self.computes]

        def info(self):
            ctxt = nova_context.get_admin_context()
            flavors = [{"id": f.flavorid, "name": f.name, "vcpus": f.vcpus,
                        "ram": f.memory_mb, "disk": f.root_gb}
                       for f in objects.FlavorList.get_all(ctxt)]
            images = [{"id": i["id"], "name": i.get("name")} for i in self.glance.images.values()]
            return {"images": images, "flavors": flavors, "hosts": self.hosts(),
                    "driver": self.driver_name,
                    "report_interval": REPORT_INTERVAL,
                    "service_down_time": SERVICE_DOWN_TIME}

        # --- serving ---------------------------------------------------------

        def serve(self, port, control_port, started):
            self.counter = RequestCounter(self.api_fixture.app())
            api_sock = eventlet.listen(("127.0.0.1", port))
            control_sock = eventlet.listen(("127.0.0.1", control_port))
            eventlet.spawn(self._wsgi_server, api_sock, stub_door(self.counter))
            eventlet.spawn(self._wsgi_server, control_sock, self.control_app)
            ready = {"port": port, "control_port": control_port, "pid": os.getpid(),
                     "hosts": list(self.computes),
                     "seconds_to_ready": round(time.monotonic() - started, 1)}
            print("READY " + json.dumps(ready), flush=True)
            while True:
                eventlet.sleep(3600)

        @staticmethod
        def _wsgi_server(sock, app):
            eventlet.wsgi.server(sock, app, log=logging.getLogger("nova_box.wsgi"),
                                 log_output=False)

        def open_keystone_door(self, settings_file):
            """Serve the API behind Keystone on the port the settings name;
            an open door keeps its port and takes the new Keystone settings."""
            with open(settings_file) as f:
                settings = json.load(f)
            if self.keystone_door is None:
                door = KeystoneDoor(self.counter, settings)
                sock = eventlet.listen(("127.0.0.1", settings["port"]))
                eventlet.spawn(self._wsgi_server, sock, door)
                self.keystone_door = (door, settings["port"])
            else:
                self.keystone_door[0].configure(settings)
            return self.keystone_door_state()

        def keystone_door_state(self):
            if self.keystone_door is None:
                return {"open": False, "port": None, "auth_url": None}
            door, port = self.keystone_door
            return {"open": True, "port": port, "auth_url": door.auth_url}

        def control_app(self, environ, start_response):
            method = environ["REQUEST_METHOD"]
            parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return _json_response(start_response, 400, {"error": "body is not JSON"})
            try:
                status, result = self._control(method, parts, body)
            except KeyError as e:
                status, result = 404, {"error": f"unknown host {e.args[0]}"}
            except Exception as e:  # the lab wants the reason, not a stack
                logging.getLogger("nova_box").exception("control %s %s failed", method, parts)
                status, result = 500, {"error": f"{type(e).__name__}: {e}"}
            return _json_response(start_response, status, result)

        def _control(self, method, parts, body):
            if method == "GET" and parts == ["health"]:
                # read the database too: a box whose in-memory database was
                # lost answers, but every Nova call would fail
                objects.FlavorList.get_all(nova_context.get_admin_context())
                return 200, {"ok": True}
            if method == "GET" and parts == ["hosts"]:
                return 200, self.hosts()
            if method == "GET" and parts == ["stacks"]:
                return 200, green_thread_stacks()
            if method == "GET" and parts == ["databases"]:
                return 200, database_engines()
            if method == "POST" and parts == ["hosts"]:
                host = body.get("host")
                if not isinstance(host, str) or not host:
                    return 400, {"error": 'expected {"host": "name"}'}
                changed = self.add_host(host)
                return 200, {"host": host, "running": True, "changed": changed}
            if method == "POST" and len(parts) == 3 and parts[0] == "hosts" \
                    and parts[2] in ("stop", "start"):
                action = self.stop_host if parts[2] == "stop" else self.start_host
                changed = action(parts[1])
                return 200, {"host": parts[1], "running": self.running[parts[1]],
                             "changed": changed}
            if method == "GET" and parts == ["requests"]:
                return 200, self.counter.snapshot()
            if method == "POST" and parts == ["requests", "reset"]:
                self.counter.reset()
                return 200, self.counter.snapshot()
            if method == "POST" and parts == ["faults"]:
                host, count = body.get("host"), body.get("fail_spawns", 1)
                if host not in self.computes:
                    raise KeyError(host)
                if not isinstance(count, int) or count < 0:
                    return 400, {"error": "fail_spawns must be an integer >= 0"}
                self.spawn_faults[host] = count
                return 200, {"host": host, "fail_spawns": count}
            if method == "GET" and parts == ["faults"]:
                return 200, dict(self.spawn_faults)
            if method == "GET" and parts == ["info"]:
                return 200, self.info()
            if method == "POST" and parts == ["keystone"]:
                return 200, self.open_keystone_door(body["settings_file"])
            if method == "GET" and parts == ["keystone"]:
                return 200, self.keystone_door_state()
            if method == "GET" and parts == ["keystone", "requests"]:
                if self.keystone_door is None:
                    return 409, {"error": "the Keystone door is not open"}
                return 200, list(self.keystone_door[0].records)
            return 404, {"error": f"no route {method} /{'/'.join(parts)}"}

    box = NovaBox()
    box.driver_name = args.driver
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    box.assemble(hosts, args.driver)
    return box


def _on_sigterm(signum, frame):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    main()
