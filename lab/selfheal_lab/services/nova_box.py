# SPDX-License-Identifier: Apache-2.0
"""Nova in a box: API, conductor, scheduler, placement and fake computes.

Run by the nova venv's interpreter (never imported by the lab itself)::

    .lab/venvs/nova/bin/python selfheal_lab/services/nova_box.py \\
        --port P --control-port C --hosts compute-1,compute-2 \\
        --driver fake.FakeLiveMigrateDriver --state-dir DIR \\
        [--report-interval 1 --service-down-time 6]

It assembles Nova's own functional-test fixtures (``nova.test.TestCase``,
``nova.tests.fixtures``) outside a test runner, then serves:

* on ``127.0.0.1:P`` the real Nova API paste pipeline (version discovery at
  ``/``, microversions up to Nova's maximum). Authentication is stubbed:
  every call under ``/v2.1/`` must carry ``X-Auth-User``,
  ``X-Auth-Project-Id`` and ``X-Roles`` (``X-Auth-User: admin`` plus the
  ``admin`` role makes an admin); no token is checked;
* on ``127.0.0.1:C`` a small JSON control API for the lab only (simulated
  host failures: a graceful stop or a crash, fault injection: failed or slow
  spawns and HTTP faults at the Nova API, request counters, and for a box
  that misbehaves its database engines, ``GET /databases``, and where each
  green thread waits, ``GET /stacks``). It is not Nova, and it is never
  faulted;
* once the lab asks for it (``POST /keystone`` on the control API, naming a
  0600 settings file with the lab Keystone's URL and the ``nova`` service
  user), the same Nova API on a second port behind the real
  keystonemiddleware ``auth_token``: tokens are validated by Keystone, the
  request context is Nova's own (``RequestContext.from_environ``), and Nova's
  default policy decides. The stub headers mean nothing there. This door
  records who made each request (user, project, roles and a hash of the
  token, never the token): ``GET /keystone/requests``.

Both doors sit behind :class:`HttpFaults`: rules posted to the control API
(``POST /http_faults``) answer matching Nova API requests with an error, drop
their connection or delay them.

When it serves it prints one line ``READY {json}`` on stdout.

This file must stay importable without ``selfheal_lab``: it runs in a
different virtual environment.
"""

import argparse
import collections
import errno
import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

# This folder holds the lab's own nova.py, which would shadow the nova
# package: drop it from the import path before anything imports Nova.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Seconds between two heartbeats of a compute service, and the age after
# which the API reports a service ``down``: a stopped host shows as down
# within about SERVICE_DOWN_TIME + REPORT_INTERVAL seconds. The lab's
# defaults; ``--report-interval`` and ``--service-down-time`` start a box
# with others (Nova's production defaults are 10 and 60: the benchmarks).
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
# The driver methods a crashed host never finishes (besides spawn): whatever
# acts on a guest or moves one, never the resource reports the periodic
# tasks make under the box-wide "compute_resources" lock.
FROZEN_DRIVER_METHODS = (
    "rebuild", "destroy", "cleanup", "reboot", "power_off", "power_on", "pause", "unpause",
    "suspend", "resume", "rescue", "unrescue", "snapshot", "soft_delete", "restore",
    "set_admin_password", "trigger_crash_dump", "attach_interface", "detach_interface",
    "detach_volume", "swap_volume", "extend_volume", "live_migration", "pre_live_migration",
    "post_live_migration", "post_live_migration_at_source",
    "post_live_migration_at_destination", "rollback_live_migration_at_source",
    "rollback_live_migration_at_destination", "check_can_live_migrate_source",
    "check_can_live_migrate_destination", "migrate_disk_and_power_off", "finish_migration",
    "finish_revert_migration", "confirm_migration", "resume_state_on_host_boot")

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
    parser.add_argument("--report-interval", type=int, default=REPORT_INTERVAL,
                        help="seconds between two heartbeats of a service (Nova's "
                             "report_interval)")
    parser.add_argument("--service-down-time", type=int, default=SERVICE_DOWN_TIME,
                        help="age of the last heartbeat after which a service is down "
                             "(Nova's service_down_time)")
    args = parser.parse_args(argv)
    if not 1 <= args.report_interval < args.service_down_time:
        parser.error("need 1 <= --report-interval < --service-down-time")
    return args


def route_of(method, path):
    """``GET /v2.1/servers/<uuid>`` -> ``GET /servers/{id}``."""
    path = _VERSION_PREFIX.sub("", path) or "/"
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return f"{method} {'/'.join(parts)}"


#: a client may name itself in this request header (benchmarks do, to
#: attribute requests to who sent them); unnamed requests count as "-"
CLIENT_HEADER = "HTTP_X_BENCH_CLIENT"


class RequestCounter:
    """WSGI middleware counting Nova API requests per route (both doors),
    in total and per client (the ``X-Bench-Client`` header, ``-`` without).

    ``by_client`` is never reset: readers attribute requests by taking the
    difference of two snapshots of it.
    """

    def __init__(self, app):
        self.app = app
        self.by_client = {}
        self.reset()

    def reset(self):
        self.total = 0
        self.by_route = {}

    def snapshot(self):
        return {"total": self.total, "by_route": dict(sorted(self.by_route.items())),
                "by_client": {c: dict(sorted(r.items()))
                              for c, r in sorted(self.by_client.items())}}

    def __call__(self, environ, start_response):
        route = route_of(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"))
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1
        client = self.by_client.setdefault(environ.get(CLIENT_HEADER) or "-", {})
        client[route] = client.get(route, 0) + 1
        return self.app(environ, start_response)


# Nova's names for the error answers of its API (nova.api.openstack.wsgi.Fault).
_FAULT_NAMES = {500: "computeFault", 501: "notImplemented", 503: "serviceUnavailable"}
_HTTP_FAULT_KEYS = {"match", "status", "reset", "hang_seconds", "count", "share", "seed"}


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class HttpFaultError(ValueError):
    """A rule the control API refuses (HTTP 400)."""


class HttpFaults:
    """WSGI middleware in front of both doors of the Nova API: rules that
    answer matching requests with an error, drop their connection or delay
    them (never the control port).

    A rule matches when its regular expression is found (``re.search``) in
    ``"METHOD /path?query"`` (the query only when there is one), e.g.
    ``GET /v2.1/servers/detail?all_tenants=True``. It acts on the next
    ``count`` matching requests, or on a ``share`` of them (drawn from its
    own random generator, seeded by ``seed`` when given), or, with neither,
    on every one. The first rule (oldest first) that acts on a request
    decides; a request no rule acts on reaches Nova unchanged.
    """

    def __init__(self):
        self.rules = []
        self._next_id = 1

    # --- rules ---------------------------------------------------------------

    def add(self, body):
        """Validate ``body`` and add its rule; :raises HttpFaultError: why not."""
        if not isinstance(body, dict):
            raise HttpFaultError("expected a JSON object")
        unknown = sorted(set(body) - _HTTP_FAULT_KEYS)
        if unknown:
            raise HttpFaultError(f"unknown key(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(_HTTP_FAULT_KEYS))}")
        match = body.get("match")
        if not isinstance(match, str) or not match:
            raise HttpFaultError('"match" must be a regular expression (a non-empty string) '
                                 "searched in 'METHOD /path?query'")
        try:
            regex = re.compile(match)
        except re.error as e:
            raise HttpFaultError(f'"match" is not a valid regular expression: {e}') from None
        status, reset, hang = body.get("status"), body.get("reset"), body.get("hang_seconds")
        if reset not in (None, False, True):
            raise HttpFaultError('"reset" must be true or false')
        actions = [name for name, given in (("status", status is not None), ("reset", reset),
                                            ("hang_seconds", hang is not None)) if given]
        if len(actions) != 1:
            raise HttpFaultError('give exactly one of "status" (an HTTP error 500-599), '
                                 f'"reset": true or "hang_seconds", not {actions or "none"}')
        if status is not None and not (isinstance(status, int) and not isinstance(status, bool)
                                       and 500 <= status <= 599):
            raise HttpFaultError('"status" must be an HTTP server error code, 500-599 '
                                 '(e.g. 500 or 503)')
        if hang is not None and not (_number(hang) and 0 <= hang <= 3600):
            raise HttpFaultError('"hang_seconds" must be a number of seconds, 0-3600')
        count, share, seed = body.get("count"), body.get("share"), body.get("seed")
        if count is not None and share is not None:
            raise HttpFaultError('give "count" or "share", not both')
        if count is not None and not (isinstance(count, int) and not isinstance(count, bool)
                                      and count >= 1):
            raise HttpFaultError('"count" must be an integer >= 1')
        if share is not None and not (_number(share) and 0 < share <= 1):
            raise HttpFaultError('"share" must be a number with 0 < share <= 1')
        if seed is not None:
            if share is None:
                raise HttpFaultError('"seed" only goes with "share"')
            if not isinstance(seed, (int, str)) or isinstance(seed, bool):
                raise HttpFaultError('"seed" must be an integer or a string')
        rule = {"id": self._next_id, "match": match,
                "action": actions[0], "status": status, "reset": bool(reset),
                "hang_seconds": hang, "count": count, "share": share, "seed": seed,
                "remaining": count, "matched": 0, "hits": 0}
        self._next_id += 1
        self.rules.append((rule, regex, random.Random(seed)))
        return dict(rule)

    def snapshot(self):
        return [dict(rule) for rule, _regex, _rng in self.rules]

    def clear(self):
        deleted = len(self.rules)
        self.rules = []
        return deleted

    def remove(self, rule_id):
        kept = [r for r in self.rules if r[0]["id"] != rule_id]
        deleted = len(self.rules) - len(kept)
        self.rules = kept
        return deleted

    def _acting_rule(self, line):
        for rule, regex, rng in self.rules:
            if not regex.search(line):
                continue
            rule["matched"] += 1
            if rule["count"] is not None:
                if rule["remaining"] <= 0:
                    continue
                rule["remaining"] -= 1
            elif rule["share"] is not None and rng.random() >= rule["share"]:
                continue
            rule["hits"] += 1
            return rule
        return None

    # --- the middleware ------------------------------------------------------

    def wrap(self, app):
        def faulted(environ, start_response):
            if not self.rules:
                return app(environ, start_response)
            line = (f"{environ.get('REQUEST_METHOD', 'GET')} "
                    f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '/')}")
            if environ.get("QUERY_STRING"):
                line += "?" + environ["QUERY_STRING"]
            rule = self._acting_rule(line)
            if rule is None:
                return app(environ, start_response)
            if rule["action"] == "hang_seconds":
                import eventlet

                eventlet.sleep(rule["hang_seconds"])
                return app(environ, start_response)
            if rule["action"] == "reset":
                return _reset_connection(environ, start_response)
            status = rule["status"]
            name = _FAULT_NAMES.get(status, "computeFault")
            return _json_response(start_response, status, {name: {
                "code": status,
                "message": f"selfheal lab: injected HTTP {status} (fault rule {rule['id']})"}})

        return faulted


def _reset_connection(environ, start_response):
    """Close the client's TCP connection at once, without an answer.

    eventlet.wsgi keeps the accepted socket in its ``Input`` object: with
    ``SO_LINGER`` (on, 0 s) closing it sends a TCP RST; telling eventlet the
    request was already handled (as its websocket support does) makes it
    write nothing and drop the connection.
    """
    import eventlet.wsgi

    sock = getattr(environ.get("eventlet.input"), "_sock", None)
    if sock is None:  # not served by eventlet.wsgi: the closest is an empty 500
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return [b""]
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError as e:
        if e.errno not in (errno.EBADF, errno.ENOTCONN):
            raise
    eventlet.wsgi.WSGI_LOCAL.already_handled = True
    return []


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
              409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented",
              502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}.get(status, "Error" if status >= 400 else "OK")
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
    import greenlet
    import oslo_messaging as messaging
    from nova import context as nova_context
    from nova import exception
    from nova import objects
    from nova import rpc
    from nova import test
    from nova import utils as nova_utils
    from nova.api import auth as nova_auth
    from nova.tests import fixtures as nova_fixtures
    from nova.tests.functional import fixtures as func_fixtures
    from oslo_concurrency import lockutils

    log = logging.getLogger("nova_box")

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
                       report_interval=self.report_interval,
                       service_down_time=self.service_down_time,
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
            self.spawn_faults = {}  # host -> spawns left to fail
            self.spawn_seconds = {}  # host -> seconds each spawn waits first
            self.crashed = {}  # host -> crashed and not started since
            self.lives = {}  # host -> crashes so far (which "process" runs)
            self.frozen = {}  # host -> green threads its crash froze
            self.http_faults = HttpFaults()
            self._track_instance_locks()
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

        def crash_host(self, host):
            """Kill a compute host at once, as a power cut does.

            Unlike :meth:`stop_host` (a graceful stop that lets the work in
            flight finish), nothing of the host's work completes: its RPC
            servers stop consuming, its heartbeat and periodic tasks die,
            and every guarded driver call in progress or still to come on
            it (see :meth:`_arm_faults`) blocks forever, even after a
            restart (that is a new process; the old one's work is gone).
            """
            if host not in self.computes:
                raise KeyError(host)
            if self.crashed.get(host):
                return False
            self.crashed[host] = True
            self.lives[host] = self.lives.get(host, 0) + 1
            if self.running.get(host):
                service = self.computes[host]
                for server in (service.rpcserver, getattr(service, "rpcserver_alt", None)):
                    if server is not None:
                        try:
                            server.stop()  # no wait(): handlers in flight stay frozen
                        except Exception:
                            log.exception("crash of %s: stopping an RPC server failed", host)
                service.tg.stop()  # heartbeat and periodic tasks, killed
            self.running[host] = False
            log.warning("compute host %s crashed (lab fault)", host)
            return True

        def start_host(self, host):
            """Restart a stopped or crashed compute like a real nova-compute
            restart.

            A new service and manager are created (so init_host runs and
            destroys the local leftovers of instances evacuated away), but
            the fake hypervisor (the driver object) survives, like guests
            defined on a real host do. The work a crash froze stays frozen;
            the instance locks it held are released, as a dead process's
            locks are.
            """
            if host not in self.computes:
                raise KeyError(host)
            if self.running.get(host):
                return False
            if self.crashed.pop(host, False):
                for frozen in self.frozen.pop(host, []):
                    self._release_locks(frozen)
            old_driver = self.computes[host].manager.driver
            with mock.patch("nova.virt.driver.load_compute_driver", return_value=old_driver):
                self.computes[host] = self.start_service("compute", host=host)
            self.running[host] = True
            return True

        def _arm_faults(self, host, driver):
            """Wrap the host's driver: crashes freeze its calls; spawns can
            be slowed down (``spawn_seconds``) and made to fail."""
            real_spawn = driver.spawn
            faults = self.spawn_faults

            def spawn(context, instance, *a, **kw):
                life = self.lives.get(host, 0)
                self._freeze_if_crashed(host, life, "spawn", instance)
                seconds = self.spawn_seconds.get(host, 0)
                if seconds:
                    eventlet.sleep(seconds)
                    self._freeze_if_crashed(host, life, "spawn", instance)
                if faults.get(host, 0) > 0:
                    faults[host] -= 1
                    raise exception.NovaException(
                        f"selfheal lab: injected spawn failure on {host} "
                        f"for instance {instance.uuid}")
                return real_spawn(context, instance, *a, **kw)

            def guard(name, real):
                @functools.wraps(real)
                def guarded(*a, **kw):
                    self._freeze_if_crashed(host, self.lives.get(host, 0), name,
                                            kw.get("instance"))
                    return real(*a, **kw)
                return guarded

            driver.spawn = spawn
            for name in FROZEN_DRIVER_METHODS:
                real = getattr(driver, name, None)
                if real is not None:
                    setattr(driver, name, guard(name, real))

        def _freeze_if_crashed(self, host, life, what, instance=None):
            """Block this green thread forever if ``host`` crashed since the
            call began (``life``); return at once otherwise."""
            if not self.crashed.get(host) and self.lives.get(host, 0) == life:
                return
            me = greenlet.getcurrent()
            if self.crashed.get(host):
                self.frozen.setdefault(host, []).append(me)
            else:  # the host was restarted meanwhile: its old locks are gone
                self._release_locks(me)
            log.warning("%s on crashed host %s frozen forever (instance %s)", what, host,
                        getattr(instance, "uuid", "?"))
            while True:
                eventlet.sleep(3600)

        def _track_instance_locks(self):
            """Record which green thread holds which of Nova's in-process
            named locks (``nova.utils.synchronized(name)``, e.g. the per
            instance lock of a build or a delete), so that a restart can
            release those its crash froze."""
            real = nova_utils.synchronized
            held = self.held_locks = {}

            def synchronized(name, *args, **kwargs):
                locked = real(name, *args, **kwargs)
                if args or kwargs:  # external or fair locks are not tracked
                    return locked

                def decorate(f):
                    @functools.wraps(f)
                    def holding(*a, **kw):
                        me = greenlet.getcurrent()
                        held.setdefault(me, []).append(name)
                        try:
                            return f(*a, **kw)
                        finally:
                            names = held.get(me, [])
                            if name in names:
                                names.remove(name)
                            if not names:
                                held.pop(me, None)
                    return locked(holding)
                return decorate

            self.stub_out("nova.utils.synchronized", synchronized)

        def _release_locks(self, frozen):
            for name in self.held_locks.pop(frozen, []):
                lockutils.internal_lock(name).release()
                log.info("released lock %s of crashed work", name)

        # --- facts for tools -------------------------------------------------

        def hosts(self):
            return [{"host": h, "running": bool(self.running.get(h)),
                     "crashed": bool(self.crashed.get(h))} for h in self.computes]

        def info(self):
            ctxt = nova_context.get_admin_context()
            flavors = [{"id": f.flavorid, "name": f.name, "vcpus": f.vcpus,
                        "ram": f.memory_mb, "disk": f.root_gb}
                       for f in objects.FlavorList.get_all(ctxt)]
            images = [{"id": i["id"], "name": i.get("name")} for i in self.glance.images.values()]
            return {"images": images, "flavors": flavors, "hosts": self.hosts(),
                    "driver": self.driver_name,
                    "report_interval": self.report_interval,
                    "service_down_time": self.service_down_time}

        # --- serving ---------------------------------------------------------

        def serve(self, port, control_port, started):
            self.counter = RequestCounter(self.api_fixture.app())
            api_sock = eventlet.listen(("127.0.0.1", port))
            control_sock = eventlet.listen(("127.0.0.1", control_port))
            eventlet.spawn(self._wsgi_server, api_sock,
                           self.http_faults.wrap(stub_door(self.counter)))
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
                eventlet.spawn(self._wsgi_server, sock, self.http_faults.wrap(door))
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

        def _spawn_fault_state(self, host):
            return {"host": host, "fail_spawns": self.spawn_faults.get(host, 0),
                    "spawn_seconds": self.spawn_seconds.get(host, 0)}

        def _set_spawn_faults(self, body):
            """``{"host", "fail_spawns"?, "spawn_seconds"?}``; with neither,
            the next spawn fails (``fail_spawns`` 1)."""
            if not isinstance(body, dict) or not isinstance(body.get("host"), str):
                return 400, {"error": 'expected {"host": "name", "fail_spawns": n, '
                                      '"spawn_seconds": s} (either or both)'}
            host = body["host"]
            unknown = sorted(set(body) - {"host", "fail_spawns", "spawn_seconds"})
            if unknown:
                return 400, {"error": f"unknown key(s) {', '.join(unknown)}; known: "
                                      "host, fail_spawns, spawn_seconds"}
            if host not in self.computes:
                raise KeyError(host)
            if "fail_spawns" not in body and "spawn_seconds" not in body:
                body = dict(body, fail_spawns=1)
            count, seconds = body.get("fail_spawns"), body.get("spawn_seconds")
            if "fail_spawns" in body and (not isinstance(count, int) or isinstance(count, bool)
                                          or count < 0):
                return 400, {"error": "fail_spawns must be an integer >= 0"}
            if "spawn_seconds" in body and (not _number(seconds) or not 0 <= seconds <= 86400):
                return 400, {"error": "spawn_seconds must be a number of seconds, 0-86400"}
            if "fail_spawns" in body:
                self.spawn_faults[host] = count
            if "spawn_seconds" in body:
                self.spawn_seconds[host] = seconds
            return 200, self._spawn_fault_state(host)

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
                    and parts[2] in ("stop", "start", "crash"):
                action = {"stop": self.stop_host, "start": self.start_host,
                          "crash": self.crash_host}[parts[2]]
                changed = action(parts[1])
                return 200, {"host": parts[1], "running": self.running[parts[1]],
                             "crashed": bool(self.crashed.get(parts[1])), "changed": changed}
            if method == "GET" and parts == ["requests"]:
                return 200, self.counter.snapshot()
            if method == "POST" and parts == ["requests", "reset"]:
                self.counter.reset()
                return 200, self.counter.snapshot()
            if method == "POST" and parts == ["faults"]:
                return self._set_spawn_faults(body)
            if method == "GET" and parts == ["faults"]:
                return 200, {h: self._spawn_fault_state(h)
                             for h in self.computes
                             if h in self.spawn_faults or h in self.spawn_seconds}
            if method == "POST" and parts == ["http_faults"]:
                try:
                    return 200, self.http_faults.add(body)
                except HttpFaultError as e:
                    return 400, {"error": f"bad HTTP fault rule: {e}"}
            if method == "GET" and parts == ["http_faults"]:
                return 200, self.http_faults.snapshot()
            if method == "DELETE" and parts == ["http_faults"]:
                return 200, {"deleted": self.http_faults.clear()}
            if method == "DELETE" and len(parts) == 2 and parts[0] == "http_faults":
                if not parts[1].isdigit() or not self.http_faults.remove(int(parts[1])):
                    return 404, {"error": f"no HTTP fault rule {parts[1]}"}
                return 200, {"deleted": 1}
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
    box.report_interval = args.report_interval
    box.service_down_time = args.service_down_time
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
