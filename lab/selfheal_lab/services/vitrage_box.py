# SPDX-License-Identifier: Apache-2.0
"""Vitrage in a box: the real entity graph, ScenarioEvaluator and Mistral notifier.

Run by the vitrage venv's interpreter (never imported by the lab itself)::

    .lab/venvs/vitrage/bin/python selfheal_lab/services/vitrage_box.py \\
        --port P --state-dir DIR --templates-dir D \\
        --nova-compute-url U --nova-headers JSON --mistral-url M \\
        [--maintenance-alarm selfheal.maintenance]

Everything that decides is Vitrage 15's own code, in one process, the way
Vitrage's functional evaluator tests assemble it:

* config parsed by ``vitrage.common.config.parse_config`` (``transport_url =
  fake:/``, ``notifiers = mistral``, sqlite), schema from the models, every
  template of ``--templates-dir`` loaded with ``add_templates_to_db`` and set
  ACTIVE (invalid ones stay ERROR and are reported by ``GET /templates``);
* the entity graph (``Processor`` on an ``NXGraph``) fed by Vitrage's own
  ``nova.zone``, ``nova.host`` and ``nova.instance`` drivers reading the
  lab's Nova, deleting outdated entities like ``DriverExec.get_all`` does,
  and by Vitrage's own ``heat.stack`` driver on a stand-in Heat client that
  turns servers with metadata ``selfheal_stack`` into one stack each
  (edge ``comprised``, as the real heat.stack transformer makes it);
* pushed alarms enter through ``DriversNotificationEndpoint.info`` (the
  code behind Vitrage's notification listener): Doctor events on hosts
  (what ``vitrage event post`` sends), Aodh event alarms on instances;
* ``ScenarioEvaluator`` subscribed to the graph; its own action events
  (raise_alarm, ...) are processed before a request returns;
* its ``execute_mistral`` notifications travel over the in-process
  ``fake:/`` bus to Vitrage's own ``VitrageNotifierService`` and its
  ``MistralNotifier``, which creates the executions in the lab's Mistral.

Replaced (no Keystone in the lab): the client factories of
``vitrage.os_clients`` (``nova_client``, ``mistral_client``, ``heat_client``,
``aodh_client``). The Mistral client is a real python-mistralclient on
``--mistral-url`` whose ``executions.create`` also records each call.

A JSON control API on ``127.0.0.1:P`` (see ``Box.route``) drives it. The
same port answers ``POST /v1/event`` as Vitrage's own API does (the request
python-vitrageclient's ``event.post`` sends), so selfheal's actions reach the
evaluator through the real client, without Keystone. When it
serves it prints one line ``READY {json}`` on stdout. SIGTERM exits at once.

This file must stay importable without ``selfheal_lab``: it runs in a
different virtual environment.
"""

import argparse
import collections
import copy
import datetime
import http.server
import json
import os
import signal
import sys
import threading
import time
import traceback
import uuid

# This folder holds the lab's own vitrage.py, which would shadow the vitrage
# package: drop it from the import path before anything imports Vitrage.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

DATASOURCES = ("nova.zone", "nova.host", "nova.instance", "heat.stack", "doctor", "aodh")
# Pulled from the lab on start and on POST /refresh, in this order.
SNAPSHOT_DATASOURCES = ("nova.zone", "nova.host", "nova.instance", "heat.stack")
STACK_METADATA_KEY = "selfheal_stack"
NOTIFIER_WAIT = 30.0
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--templates-dir", required=True)
    parser.add_argument("--nova-compute-url", required=True)
    parser.add_argument("--nova-headers", required=True, help="JSON object")
    parser.add_argument("--mistral-url", required=True)
    parser.add_argument("--maintenance-alarm", default="selfheal.maintenance")
    return parser.parse_args(argv)


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def write_config(state_dir):
    """The Vitrage config of the box; a fresh sqlite DB on every start."""
    import vitrage

    db = os.path.join(state_dir, "vitrage.sqlite")
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass
    # The wheel ships no /etc/vitrage; its test resources hold the value
    # files (nova.host, nova.instance, nova.zone, vitrage, default).
    values_dir = os.path.join(os.path.dirname(vitrage.__file__), "tests", "resources",
                              "datasources_values")
    path = os.path.join(state_dir, "vitrage.conf")
    with open(path, "w") as f:
        f.write(f"""[DEFAULT]
transport_url = fake:/
notifiers = mistral
debug = false
use_stderr = true

[database]
connection = sqlite:///{db}

[datasources]
types = {",".join(DATASOURCES)}

[entity_graph]
datasources_values_dir = {values_dir}
""")
    return path


class LabClients:
    """What replaces ``vitrage.os_clients``' Keystone-based client factories."""

    def __init__(self, box, nova_url, nova_headers, mistral_url):
        self.box = box
        self.nova_url = nova_url
        self.nova_headers = nova_headers
        self.mistral_url = mistral_url

    def install(self):
        from vitrage import os_clients

        os_clients.nova_client = self.nova_client
        os_clients.mistral_client = self.mistral_client
        os_clients.heat_client = self.heat_client
        os_clients.aodh_client = self.aodh_client

    def nova_client(self):
        from keystoneauth1 import session
        from keystoneauth1 import token_endpoint
        from novaclient import client
        from oslo_config import cfg

        sess = session.Session(auth=token_endpoint.Token(self.nova_url, "lab"),
                               additional_headers=self.nova_headers)
        # Same version Vitrage asks for (CONF.nova_version), lab endpoint.
        return client.Client(cfg.CONF.nova_version, session=sess,
                             endpoint_override=self.nova_url)

    @staticmethod
    def check_mistral_client():
        """Vitrage's MistralNotifier passes ``workflow_identifier=``, which
        python-mistralclient renamed to ``wf_identifier`` in 4.2.0: with a
        newer client every execute_mistral fails and is only logged."""
        import inspect

        from mistralclient.api.v2 import executions

        params = inspect.signature(executions.ExecutionManager.create).parameters
        if "workflow_identifier" not in params:
            raise RuntimeError(
                "python-mistralclient in this venv has no executions.create("
                "workflow_identifier=...); Vitrage's MistralNotifier would fail on "
                "every execute_mistral: install python-mistralclient<4.2")

    def mistral_client(self):
        from mistralclient.api.v2 import client

        real = client.Client(mistral_url=self.mistral_url)
        create = real.executions.create
        box = self.box

        def recording_create(*args, **kwargs):
            workflow = kwargs.get("workflow_identifier", args[0] if args else None)
            workflow_input = kwargs.get("workflow_input")
            sent = time.time()
            try:
                execution = create(*args, **kwargs)
            except Exception as e:
                box.record_execution(workflow, workflow_input, sent,
                                     error=f"{type(e).__name__}: {e}")
                raise
            box.record_execution(workflow, workflow_input, sent,
                                 execution_id=getattr(execution, "id", None))
            return execution

        real.executions.create = recording_create
        return real

    def heat_client(self):
        return StandInHeat(self.nova_client())

    def aodh_client(self):
        return _NoAodh()


class _Resource:
    def __init__(self, data):
        self._data = data

    def to_dict(self):
        return copy.deepcopy(self._data)


class StandInHeat:
    """A Heat client for Vitrage's HeatStackDriver until Heat joins the lab:
    every server with metadata ``selfheal_stack: NAME`` is a resource
    (``OS::Nova::Server``) of a stack NAME."""

    def __init__(self, nova):
        self._nova = nova
        self._resources = {}
        self.stacks = self
        self.resources = _StandInResources(self._resources)

    # stacks manager
    def list(self, **kwargs):
        servers = self._nova.servers.list(search_opts={"all_tenants": 1})
        stacks = {}
        self._resources.clear()
        for server in servers:
            name = (getattr(server, "metadata", None) or {}).get(STACK_METADATA_KEY)
            if not name:
                continue
            stack_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"selfheal-lab-stack:{name}"))
            if stack_id not in stacks:
                stacks[stack_id] = {
                    "id": stack_id, "stack_name": name, "stack_status": "CREATE_COMPLETE",
                    "creation_time": getattr(server, "created", None),
                    "project": getattr(server, "tenant_id", None), "parent": None,
                }
            self._resources.setdefault(stack_id, []).append({
                "resource_name": server.name, "resource_type": "OS::Nova::Server",
                "physical_resource_id": server.id, "resource_status": "CREATE_COMPLETE",
            })
        return [_Resource(s) for s in stacks.values()]

    def get(self, stack_id):
        return _Resource({"id": stack_id, "parent": None})


class _StandInResources:
    def __init__(self, resources):
        self._by_stack = resources

    def list(self, stack_id, **kwargs):
        return [_Resource(r) for r in self._by_stack.get(stack_id, [])]


class _NoAodh:
    """AodhDriver lists existing alarms at start; the lab has no Aodh."""

    class alarm:  # noqa: N801 (mimics aodhclient's manager attribute)
        @staticmethod
        def list():
            return []


class Box:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()          # graph, processor, evaluator, DB
        self.record_lock = threading.Condition()
        self.notifications = []
        self.pending = []                      # emitted, not yet sent by the notifier
        self.templates = []
        self.action_events = collections.deque()
        self.posted_at = None
        self.last_snapshot = None
        self.aodh_states = {}
        self.snapshot_count = 0
        self.errors = []                       # processing errors of the current request
        self.api_events = []                   # bodies posted to the Vitrage API route

    # --- assembly ----------------------------------------------------------

    def build(self):
        from oslo_config import cfg
        from oslo_db.sqlalchemy import enginefacade
        from vitrage import storage
        from vitrage.common import config
        from vitrage.entity_graph import driver_exec
        from vitrage.entity_graph.processor.processor import Processor
        from vitrage.evaluator.scenario_evaluator import ScenarioEvaluator
        from vitrage.evaluator.scenario_repository import ScenarioRepository
        from vitrage.graph.driver.networkx_graph import NXGraph
        from vitrage.notifier.service import VitrageNotifierService
        from vitrage.storage.sqlalchemy import models

        conf_file = write_config(self.args.state_dir)
        config.parse_config(["vitrage-box", "--config-file", conf_file])
        self.conf = cfg.CONF
        clients = LabClients(self, self.args.nova_compute_url,
                             json.loads(self.args.nova_headers), self.args.mistral_url)
        clients.check_mistral_client()
        clients.install()

        self.db = storage.get_connection_from_config()
        models.Base.metadata.create_all(enginefacade.writer.get_engine())
        self.load_templates()

        self.graph = NXGraph("Entity Graph")
        self.processor = Processor(e_graph=self.graph)
        self.push_endpoint = driver_exec.DriversNotificationEndpoint(self.process).init()
        self.driver_exec = driver_exec.DriverExec(self.process, None, self.graph)

        self.scenario_repo = ScenarioRepository()
        self.evaluator = ScenarioEvaluator(self.graph, self.scenario_repo,
                                           self._actions_callback, enabled=False)
        notifier = self.evaluator._action_executor.notifier
        if "mistral" not in notifier.oslo_notifiers:
            raise RuntimeError("Vitrage's EvaluatorNotifier has no mistral notifier")
        real_notify = notifier.notify

        def observed_notify(execution_engine, properties):
            # Observation only: what the evaluator emitted, and when.
            if execution_engine == "mistral":
                with self.record_lock:
                    self.pending.append({"workflow": properties.get("workflow"),
                                         "input": copy.deepcopy(properties.get("input")),
                                         "emitted_at": time.time(),
                                         "event_posted_at": self.posted_at})
            return real_notify(execution_engine, properties)

        notifier.notify = observed_notify

        self.notifier_service = VitrageNotifierService(0)
        self.notifier_service.run()

        with self.lock:
            self.posted_at = time.time()
            self.snapshot(initial=True)
            self.evaluator.run_evaluator()
            self._drain()

    def load_templates(self):
        """Every template file through Vitrage's own template DB code."""
        import yaml
        from vitrage.common.constants import TemplateStatus
        from vitrage.evaluator.template_db.template_repository import add_templates_to_db

        tdir = self.args.templates_dir
        names = sorted(n for n in os.listdir(tdir)
                       if not n.startswith(".") and os.path.isfile(os.path.join(tdir, n)))
        for name in names:
            entry = {"file": name, "name": None, "uuid": None}
            self.templates.append(entry)
            if not name.endswith((".yaml", ".yml")):
                entry.update(status="SKIPPED", status_details="not a .yaml file")
                continue
            try:
                with open(os.path.join(tdir, name)) as f:
                    template = yaml.load(f, Loader=yaml.BaseLoader)
            except Exception as e:
                entry.update(status="ERROR", status_details=f"YAML: {e}")
                continue
            if not isinstance(template, dict) or not isinstance(template.get("metadata"), dict):
                entry.update(status="ERROR", status_details="no metadata section")
                continue
            try:
                rows = add_templates_to_db(self.db, [template], None)
            except Exception as e:
                entry.update(status="ERROR", status_details=f"{type(e).__name__}: {e}")
                continue
            row = rows[0]
            status = row.status
            if status == TemplateStatus.LOADING:
                self.db.templates.update(row.uuid, "status", TemplateStatus.ACTIVE)
                status = TemplateStatus.ACTIVE
            entry.update(name=row.name, uuid=row.uuid or None, status=status,
                         status_details=row.status_details, type=row.template_type)

    # --- event processing ----------------------------------------------------

    def _actions_callback(self, event_type, data):
        # What Vitrage sends back to the graph over its evaluator topic.
        self.action_events.append(data)

    def _drain(self):
        while self.action_events:
            data = self.action_events.popleft()
            for event in data if isinstance(data, list) else [data]:
                self.processor.process_event(event)

    def process(self, events):
        """Feed datasource events to the processor; returns how many.

        Like Vitrage's EventsCoordination, an event whose processing raises
        is logged and dropped; the error is also kept for the response.
        """
        count = 0
        with self.lock:
            for event in events:
                try:
                    self.processor.process_event(event)
                    self._drain()
                except Exception as e:
                    traceback.print_exc()
                    self.errors.append(f"{type(e).__name__}: {e}")
                    self.action_events.clear()
                count += 1
        return count

    def snapshot(self, initial=False):
        """Pull every snapshot datasource, like DriverExec.get_all."""
        from vitrage.common.constants import DatasourceAction
        from vitrage.datasources import utils as ds_utils
        from vitrage.utils.datetime import format_utcnow

        action = DatasourceAction.INIT_SNAPSHOT if initial else DatasourceAction.SNAPSHOT
        # Sample times have one-second resolution and outdated entities are
        # those sampled strictly before this pull: start in a new second.
        while self.last_snapshot is not None and format_utcnow() <= self.last_snapshot:
            time.sleep(0.05)
        counts = {}
        with self.lock:
            for name in SNAPSHOT_DATASOURCES:
                driver = ds_utils.get_drivers_by_name([name])[0]
                now = format_utcnow()
                events = driver.get_all(action)
                processed = self.process(events)
                deleted = 0
                if driver.should_delete_outdated_entities():
                    outdated = self.driver_exec._find_vertices_to_delete(name, now)
                    if outdated:
                        deleted = self.process(list(self.driver_exec._to_events(outdated)))
                counts[name] = {"events": processed, "deleted": deleted}
            self.last_snapshot = format_utcnow()
            self.snapshot_count += 1
        return counts

    def record_execution(self, workflow, workflow_input, sent, execution_id=None, error=None):
        now = time.time()
        with self.record_lock:
            match = None
            for item in self.pending:
                if item["workflow"] == workflow and item["input"] == workflow_input:
                    match = item
                    break
            if match is None and self.pending:
                match = self.pending[0]
            if match is not None:
                self.pending.remove(match)
            row = {"workflow": workflow, "input": workflow_input, "sent_at": sent,
                   "created_at": now, "emitted_at": (match or {}).get("emitted_at"),
                   "event_posted_at": (match or {}).get("event_posted_at")}
            if error is None:
                row["execution_id"] = execution_id
            else:
                row["error"] = error
            self.notifications.append(row)
            self.record_lock.notify_all()

    def wait_notifier(self, timeout=NOTIFIER_WAIT):
        """Until the notifier has sent everything the evaluator emitted."""
        deadline = time.monotonic() + timeout
        with self.record_lock:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return len(self.pending)
                self.record_lock.wait(left)
        return 0

    def _before(self):
        with self.lock:
            self.errors = []
        with self.record_lock:
            return len(self.notifications)

    def _after(self, before):
        pending = self.wait_notifier()
        with self.record_lock:
            new = self.notifications[before:]
        with self.lock:
            errors, self.errors = self.errors, []
        return {"executions": copy.deepcopy(new), "pending": pending,
                "processing_errors": errors}

    # --- pushed alarms -------------------------------------------------------

    def doctor_event(self, alarm_type, hostname, status, details=None):
        """What Vitrage's event API (``vitrage event post``) puts on the bus,
        handed to the datasource notification endpoint."""
        from vitrage.datasources.doctor.properties import DoctorProperties

        if status not in ("down", "up"):
            raise ValueError('status must be "down" or "up"')
        body = {"hostname": hostname, "status": status, "source": "selfheal-lab"}
        body.update(details or {})
        payload = {"type": alarm_type,
                   "time": datetime.datetime.utcnow().strftime(EVENT_TIME_FORMAT),
                   "details": body}
        event_type = (DoctorProperties.CUSTOM_EVENT_UP if status == "up"
                      else DoctorProperties.CUSTOM_EVENT_DOWN)
        return self._push(event_type, payload)

    def api_event_post(self, body):
        """``POST /v1/event``, Vitrage's event API as python-vitrageclient's
        ``event.post`` calls it (body ``{"time", "type", "details"}``): like
        vitrage-graph's EventApis.post, the details' status picks the Doctor
        event (down raises the alarm, up clears it) and the event goes to the
        doctor datasource."""
        from vitrage.datasources.doctor.properties import DoctorProperties

        details = body.get("details")
        if not body.get("type") or not isinstance(details, dict) \
                or not details.get("hostname"):
            raise ValueError('expected {"time", "type", "details": {"hostname", "status"}}')
        status = details.get("status")
        if status not in ("down", "up"):
            raise ValueError(f'details.status must be "down" or "up", got {status!r}')
        event_type = (DoctorProperties.CUSTOM_EVENT_UP if status == "up"
                      else DoctorProperties.CUSTOM_EVENT_DOWN)
        payload = {"type": body["type"], "details": dict(details),
                   "time": body.get("time") or datetime.datetime.utcnow().strftime(
                       EVENT_TIME_FORMAT)}
        with self.record_lock:
            self.api_events.append(copy.deepcopy(body))
        return self._push(event_type, payload)

    def aodh_instance_alarm(self, name, instance_id, status, severity="critical"):
        """An Aodh event alarm on an instance (Doctor alarms only attach to hosts)."""
        if status not in ("down", "up"):
            raise ValueError('status must be "down" or "up"')
        alarm_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"selfheal-lab-alarm:{name}:{instance_id}"))
        state = "alarm" if status == "down" else "ok"
        now = datetime.datetime.utcnow().strftime(EVENT_TIME_FORMAT)
        if alarm_id not in self.aodh_states:
            if state == "ok":
                return {"executions": [], "pending": 0, "note": "no such alarm"}
            payload = {
                "alarm_id": alarm_id, "user_id": None, "project_id": None,
                "severity": severity, "timestamp": now,
                "detail": {
                    "name": name, "type": "event", "state": state, "severity": severity,
                    "description": f"selfheal lab: {name} on {instance_id}",
                    "enabled": True, "repeat_actions": False,
                    "state_timestamp": now, "state_reason": "posted to the lab",
                    "rule": {"event_type": name, "query": [
                        {"field": "traits.resource_id", "op": "eq", "type": "",
                         "value": instance_id}]},
                },
            }
            event_type = "alarm.creation"
        else:
            payload = {"alarm_id": alarm_id, "timestamp": now, "detail": {"state": state}}
            event_type = "alarm.state_transition"
        self.aodh_states[alarm_id] = state
        return self._push(event_type, payload)

    def _push(self, event_type, payload):
        before = self._before()
        with self.lock:
            self.posted_at = time.time()
            ctxt = {"message_id": str(uuid.uuid4()), "publisher_id": "selfheal_lab",
                    "timestamp": _now_iso()}
            self.push_endpoint.info(ctxt, "selfheal_lab", event_type, payload, {})
        return self._after(before)

    # --- facts ---------------------------------------------------------------

    def alarms(self):
        from vitrage.common.constants import EdgeLabel
        from vitrage.common.constants import EntityCategory
        from vitrage.common.constants import VertexProperties as VProps

        result = []
        with self.lock:
            for alarm in self.graph.get_vertices(vertex_attr_filter={
                    VProps.VITRAGE_CATEGORY: EntityCategory.ALARM,
                    VProps.VITRAGE_IS_DELETED: False}):
                resource = None
                for edge in self.graph.get_edges(alarm.vertex_id):
                    if edge.label == EdgeLabel.ON and not edge.get("vitrage_is_deleted"):
                        target = self.graph.get_vertex(edge.target_id)
                        resource = {"type": target.get(VProps.VITRAGE_TYPE),
                                    "id": target.get(VProps.ID),
                                    "name": target.get(VProps.NAME)}
                result.append({"name": alarm.get(VProps.NAME),
                               "type": alarm.get(VProps.VITRAGE_TYPE),
                               "severity": alarm.get(VProps.SEVERITY),
                               "vitrage_id": alarm.vertex_id, "resource": resource,
                               "resource_type": (resource or {}).get("type"),
                               "resource_id": (resource or {}).get("id"),
                               "resource_name": (resource or {}).get("name")})
        return sorted(result, key=lambda a: (str(a["name"]), json.dumps(a["resource"])))

    def topology(self):
        from vitrage.common.constants import EntityCategory
        from vitrage.common.constants import VertexProperties as VProps

        with self.lock:
            resources = [v for v in self.graph.get_vertices(vertex_attr_filter={
                VProps.VITRAGE_CATEGORY: EntityCategory.RESOURCE,
                VProps.VITRAGE_IS_DELETED: False})]
            out = []
            for v in resources:
                edges = []
                for e in self.graph.get_edges(v.vertex_id):
                    if e.source_id != v.vertex_id or e.get("vitrage_is_deleted"):
                        continue
                    t = self.graph.get_vertex(e.target_id)
                    if t.get(VProps.VITRAGE_CATEGORY) != EntityCategory.RESOURCE:
                        continue
                    edges.append({"label": e.label, "type": t.get(VProps.VITRAGE_TYPE),
                                  "id": t.get(VProps.ID), "name": t.get(VProps.NAME)})
                out.append({"type": v.get(VProps.VITRAGE_TYPE), "id": v.get(VProps.ID),
                            "name": v.get(VProps.NAME),
                            "placeholder": bool(v.get(VProps.VITRAGE_IS_PLACEHOLDER)),
                            "state": v.get(VProps.VITRAGE_AGGREGATED_STATE), "edges": edges})
        return sorted(out, key=lambda r: (str(r["type"]), str(r["name"])))

    def validate(self, text, params=None):
        """Vitrage's validation of a template text, as add_templates_to_db does
        it (BaseLoader, validate, resolve parameters, validate again)."""
        import yaml
        from vitrage.evaluator.template_db import template_repository as repo
        from vitrage.evaluator.template_functions.v2 import resolve_parameters

        try:
            template = yaml.load(text, Loader=yaml.BaseLoader)
        except Exception as e:
            return {"is_valid_config": False, "status_code": None, "message": f"YAML: {e}"}
        if not isinstance(template, dict) or not isinstance(template.get("metadata"), dict):
            return {"is_valid_config": False, "status_code": None,
                    "message": "no metadata section"}
        final_type = template["metadata"].get("type")
        if not final_type:
            return {"is_valid_config": False, "status_code": 66,
                    "message": "Unknown template type"}
        with self.lock:
            result = repo._validate_template(self.db, template, final_type, params)
            if result.is_valid_config:
                result = resolve_parameters(template, params)
                if result.is_valid_config:
                    template.pop("parameters", None)
                    result = repo._validate_template(self.db, template, final_type)
        return {"is_valid_config": bool(result.is_valid_config),
                "status_code": result.status_code, "message": result.comment}

    # --- Vitrage's template API (/v1/template) ------------------------------
    #
    # The requests python-vitrageclient's template manager sends (list, show,
    # versions: GET; add: PUT; validate: POST; delete: DELETE), answered in
    # the shapes of Vitrage's TemplateController and TemplateApis. Adding and
    # deleting run Vitrage's own template DB code and then do synchronously
    # what Vitrage's evaluator worker does on a template event.

    @staticmethod
    def _template_dict(row):
        return {"uuid": row.uuid or None, "name": row.name, "status": row.status,
                "date": str(row.created_at) if getattr(row, "created_at", None) else None,
                "status details": row.status_details, "type": row.template_type}

    @staticmethod
    def _template_files(body):
        templates = body.get("templates")
        if not isinstance(templates, list) or not templates or not all(
                isinstance(t, list) and len(t) == 2 and isinstance(t[1], dict)
                and isinstance(t[1].get("metadata"), dict) for t in templates):
            raise ValueError('expected {"templates": [[path, {"metadata": ...}], ...], '
                             '"template_type", "params"}')
        return [t[1] for t in templates]

    def _template_rows(self, ids):
        """Rows not deleted, by uuid or by name (Vitrage's API takes either)."""
        from vitrage.common.constants import TemplateStatus

        rows = {}
        for value in ids if isinstance(ids, list) else [ids]:
            found = self.db.templates.query(uuid=value) or self.db.templates.query(name=value)
            for row in found:
                if row.status != TemplateStatus.DELETED:
                    rows[row.uuid] = row
        return list(rows.values())

    def _evaluate_templates(self, rows, mode, new_status):
        """As EvaluatorWorker._template_action, then the reload: run only these
        templates' scenarios on the whole graph (DO on add, UNDO on delete),
        set their new status, then load every active template."""
        from vitrage.common.constants import TemplateTypes
        from vitrage.evaluator.scenario_repository import ScenarioRepository

        names = [r.name for r in rows if r.template_type == TemplateTypes.STANDARD]
        if names:
            repo = ScenarioRepository()
            for scenario in repo._all_scenarios:
                scenario.enabled = any(scenario.id.startswith(n) for n in names)
            self.evaluator.scenario_repo = repo
            self.evaluator.run_evaluator(mode)
            self._drain()
        for row in rows:
            self.db.templates.update(row.uuid, "status", new_status)
        self.scenario_repo = ScenarioRepository()
        self.evaluator.scenario_repo = self.scenario_repo

    def template_list(self):
        from vitrage.common.constants import TemplateStatus

        with self.lock:
            rows = [r for r in self.db.templates.query() if r.status != TemplateStatus.DELETED]
        rows.sort(key=lambda r: str(getattr(r, "created_at", "")))
        return [self._template_dict(r) for r in rows]

    def template_show(self, template_id):
        with self.lock:
            rows = self._template_rows(template_id)
        return rows[0].file_content if rows else None

    def template_add(self, body):
        from vitrage.common.constants import TemplateStatus
        from vitrage.evaluator.actions.base import ActionMode
        from vitrage.evaluator.template_db.template_repository import add_templates_to_db

        files = self._template_files(body)
        before = self._before()
        with self.lock:
            if body.get("overwrite"):
                self.template_delete([f["metadata"].get("name") for f in files])
            rows = add_templates_to_db(self.db, files, body.get("template_type"),
                                       body.get("params"))
            loading = [r for r in rows if r.status == TemplateStatus.LOADING]
            if loading:
                self._evaluate_templates(loading, ActionMode.DO, TemplateStatus.ACTIVE)
            result = []
            for row in rows:
                fresh = self.db.templates.query(uuid=row.uuid) if row.uuid else []
                result.append(self._template_dict(fresh[0] if fresh else row))
        self._after(before)     # what the new templates fired has reached Mistral
        return result

    def template_delete(self, ids):
        from vitrage.common.constants import TemplateStatus
        from vitrage.evaluator.actions.base import ActionMode

        with self.lock:
            rows = self._template_rows(ids)
            active = []
            for row in rows:
                if row.status == TemplateStatus.ERROR:
                    self.db.templates.update(row.uuid, "status", TemplateStatus.DELETED)
                else:
                    self.db.templates.update(row.uuid, "status", TemplateStatus.DELETING)
                    active.append(row)
            if active:
                self._evaluate_templates(active, ActionMode.UNDO, TemplateStatus.DELETED)
        return None

    def template_validate(self, body):
        from vitrage.evaluator.template_db import template_repository as repo

        files = self._template_files(body)
        with self.lock:
            results = repo.validate_templates(self.db, files, body.get("template_type"),
                                              body.get("params"))
        out = []
        for result, (path, _) in zip(results, body["templates"], strict=True):
            ok = bool(result.is_valid_config)
            out.append({"file path": path,
                        "status": "validation OK" if ok else "validation failed",
                        "description": "Template validation" if ok else result.description,
                        "message": str(result.comment), "status code": result.status_code})
        return {"results": out}

    def template_route(self, method, rest, body):
        if method == "GET" and not rest:
            return 200, self.template_list()
        if method == "GET" and rest == "versions":
            from vitrage.evaluator.template_schema_factory import TemplateSchemaFactory

            versions = sorted(TemplateSchemaFactory.supported_versions())
            return 200, [{"version": f"v{v}",
                          "status": "SUPPORTED" if v < max(versions) else "CURRENT"}
                         for v in versions]
        if method == "GET":
            content = self.template_show(rest)
            if content is None:
                return 404, {"error": f"no template {rest}"}
            return 200, content
        if method == "PUT" and not rest:
            return 200, self.template_add(body)
        if method == "POST" and not rest:
            return 200, self.template_validate(body)
        if method == "DELETE" and not rest:
            ids = body.get("uuid", body.get("id"))
            if not ids:
                return 400, {"error": 'expected {"id": [uuid or name, ...]}'}
            return 200, self.template_delete(ids)
        return 404, {"error": f"no route {method} /v1/template/{rest}"}

    # --- control API ---------------------------------------------------------

    def route(self, method, path, body):
        if method == "GET" and path == "/health":
            return 200, {"ok": True, "vertices": self.graph.num_vertices(),
                         "snapshots": self.snapshot_count,
                         "invalid_templates": [t for t in self.templates
                                               if t["status"] not in ("ACTIVE", "SKIPPED")]}
        if path == "/v1/template" or path.startswith("/v1/template/"):
            return self.template_route(method, path[len("/v1/template"):].strip("/"), body)
        if method == "POST" and path == "/refresh":
            before = self._before()
            with self.lock:
                self.posted_at = time.time()
                counts = self.snapshot()
            return 200, dict(self._after(before), datasources=counts)
        if method == "POST" and path == "/events":
            alarm_type, hostname = body.get("type"), body.get("hostname")
            if not alarm_type or not hostname:
                return 400, {"error": 'expected {"type", "hostname", "status"}'}
            details = {k: v for k, v in body.items() if k not in ("type", "hostname", "status")}
            return 200, self.doctor_event(alarm_type, hostname, body.get("status", "down"),
                                          details)
        if method == "POST" and path == "/instance_events":
            name, instance_id = body.get("name"), body.get("instance_id")
            if not name or not instance_id:
                return 400, {"error": 'expected {"name", "instance_id", "status"}'}
            return 200, self.aodh_instance_alarm(name, instance_id, body.get("status", "down"),
                                                 body.get("severity", "critical"))
        if method == "POST" and path == "/maintenance":
            hostname = body.get("hostname")
            if not hostname:
                return 400, {"error": 'expected {"hostname", "status"}'}
            return 200, self.doctor_event(self.args.maintenance_alarm, hostname,
                                          body.get("status", "down"))
        if method == "POST" and path == "/v1/event":
            return 200, self.api_event_post(body)
        if method == "GET" and path == "/api_events":
            with self.record_lock:
                return 200, copy.deepcopy(self.api_events)
        if method == "GET" and path == "/notifications":
            with self.record_lock:
                return 200, copy.deepcopy(self.notifications)
        if method == "POST" and path == "/notifications/reset":
            with self.record_lock:
                dropped = len(self.notifications)
                self.notifications = []
            return 200, {"dropped": dropped}
        if method == "GET" and path == "/alarms":
            return 200, self.alarms()
        if method == "GET" and path == "/topology":
            return 200, self.topology()
        if method == "GET" and path == "/templates":
            return 200, self.templates
        if method == "POST" and path == "/validate":
            if not isinstance(body.get("template"), str):
                return 400, {"error": 'expected {"template": "<yaml text>"}'}
            return 200, self.validate(body["template"], body.get("params"))
        return 404, {"error": f"no route {method} {path}"}


def make_handler(box):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self, method):
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as e:
                return self._send(400, {"error": f"bad JSON body: {e}"})
            try:
                status, result = box.route(method, self.path.split("?")[0].rstrip("/") or "/",
                                           body)
            except ValueError as e:
                status, result = 400, {"error": str(e)}
            except Exception as e:  # the lab wants the reason
                traceback.print_exc()
                status, result = 500, {"error": f"{type(e).__name__}: {e}"}
            self._send(status, result)

        def _send(self, status, result):
            data = json.dumps(result, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

        def do_PUT(self):  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self):  # noqa: N802
            self._handle("DELETE")

        def log_message(self, fmt, *args):
            pass

    return Handler


def main(argv=None):
    args = parse_args(argv)
    args.state_dir = os.path.abspath(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    started = time.monotonic()
    box = Box(args)
    box.build()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(box))
    server.daemon_threads = True
    ready = {"port": args.port, "pid": os.getpid(),
             "templates": box.templates,
             "vertices": box.graph.num_vertices(),
             "seconds_to_ready": round(time.monotonic() - started, 1)}
    print("READY " + json.dumps(ready), flush=True)
    server.serve_forever()


def _on_sigterm(signum, frame):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    main()
