# SPDX-License-Identifier: Apache-2.0
"""The tenants' side of planned maintenance: ``selfheal.notify_projects`` and
``selfheal.read_project_replies`` (message shapes and queue access in
:mod:`selfheal_actions.maintenance.projects`)."""

import datetime
import re

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import shown
from selfheal_actions.maintenance import projects

#: Zaqar's queue names: letters, digits, '-' and '_', at most 64
_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _queue(value):
    name = inputs.text("queue", value, required=False) or projects.DEFAULT_QUEUE
    if not _QUEUE.match(name):
        raise InvalidInput(f"input 'queue' must be a Zaqar queue name (letters, digits, - and "
                           f"_, at most 64), got {shown(value)}")
    return name


def _affected(value):
    """The ``projects`` input: null, or ``{project_id: [instance ids]}``."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, list)
            and all(isinstance(i, str) and i for i in v) for k, v in value.items()):
        raise InvalidInput("input 'projects' must map project ids to lists of instance ids "
                           f"(the 'affected' output of a notification), got {shown(value)}")
    return {k: sorted(v) for k, v in sorted(value.items())}


def _session(value, context):
    return inputs.text("session_id", value, required=False) or clients.execution_id(context)


class NotifyProjectsAction(SelfhealAction):
    """Tell each project with instances on a host about its maintenance.

    One message per project on a Zaqar queue of that project, posted in the
    project's own scope (see ``selfheal_actions/maintenance/projects.py``
    for the body, the queue access and the reply the project may post),
    carrying the host as that project sees it (Nova's ``hostId``), its
    instance ids, the planned start, the lead time and the state. Running
    it again posts nothing twice: a project whose queue already holds this
    session's message of this state is left alone.

    :param host: nova-compute host name (string, required).
    :param state: MAINTENANCE (default), IN_MAINTENANCE or
        MAINTENANCE_COMPLETE.
    :param lead_time: seconds from now to the planned start, which is also
        the end of the reply window (0-604800, default 600).
    :param projects: ``{project_id: [instance ids]}`` to notify (the
        ``affected`` output of an earlier call: after the drain the host
        is empty); null reads the host's instances from Nova.
    :param session_id: the maintenance's id, the same in every message of
        it and in the replies; empty: the workflow execution's id.
    :param queue: the queue name in each project (default
        selfheal-maintenance).
    :param dry_run: say who would be told, post nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``state``, ``session_id``, ``queue``,
        ``planned_start``, ``reply_by``, ``affected`` (``{project:
        [ids]}``), ``projects`` (per project: ``host_id``,
        ``instance_ids``, ``outcome``: posted, already_posted, would_post
        or not_notified, ``message_id``, and ``reason`` / ``message`` when
        not notified: no_access_to_project, zaqar_unreachable,
        zaqar_refused), ``not_notified`` (project ids), ``changes``.
        Error reasons: ``invalid_input``, ``configuration_error``, plus the
        compute client's.
    """

    action_name = "selfheal.notify_projects"

    def __init__(self, host, state="MAINTENANCE", lead_time=600, projects=None,
                 session_id=None, queue=projects.DEFAULT_QUEUE, dry_run=False,
                 microversion=None):
        self.host = host
        self.state = state
        self.lead_time = lead_time
        self.projects = projects
        self.session_id = session_id
        self.queue = queue
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        state = self.state
        if state not in projects.STATES:
            raise InvalidInput(f"input 'state' must be one of {list(projects.STATES)}, got "
                               f"{shown(state)}")
        lead_time = inputs.number("lead_time", self.lead_time, 0, 604800, integer=True)
        given = _affected(self.projects)
        session_id = _session(self.session_id, context)
        queue = _queue(self.queue)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        if given is None:
            nova = compute.NovaApi(clients.nova(context, version))
            given = projects.affected(nova.servers_on_host(host))
        now = timeutil.utcnow()
        planned = timeutil.iso(now + datetime.timedelta(seconds=lead_time))
        queues = projects.connect(context) if given else None
        changes = self.changes_so_far = []
        told = {}
        for project, ids in given.items():
            hid = projects.host_id(project, host)
            entry = told[project] = {"host_id": hid, "instance_ids": ids}
            body = projects.notification(state, session_id, project, host, ids, planned,
                                         lead_time, queue, timeutil.iso(now))
            try:
                zaqar = queues(project)
                if any(projects.is_notification(b, session_id, state, hid)
                       for b in zaqar.bodies(queue)):
                    entry["outcome"] = "already_posted"
                    continue
                if dry_run:
                    entry["outcome"] = "would_post"
                else:
                    entry.update(outcome="posted", message_id=zaqar.post(queue, body))
                changes.append(change(f"queue {queue} of project {project}",
                                      "notified", state=state,
                                      message_id=entry.get("message_id")))
            except projects.ProjectUnreachable as error:
                entry.update(outcome="not_notified", reason=error.reason,
                             message=error.message)
        return {"host": host, "state": state, "session_id": session_id, "queue": queue,
                "planned_start": planned, "reply_by": planned, "lead_time": lead_time,
                "affected": given, "projects": told,
                "not_notified": [p for p, e in told.items() if e["outcome"] == "not_notified"],
                "changes": changes}


class ReadProjectRepliesAction(SelfhealAction):
    """Read the projects' replies to a maintenance notification.

    On each notified project's queue, the ``own_action`` replies of this
    session (``{"reply": "own_action", "session_id": ..., "instance_ids":
    [...]}``) name the instances the project moves (or scales in) itself.
    Only that project's own instances on the host count; other ids are
    ignored and listed. Changes nothing: the replies stay on the queue, so
    running it again gives the same answer.

    :param projects: ``{project_id: [instance ids]}``: the ``affected``
        output of ``selfheal.notify_projects`` (required).
    :param session_id: the maintenance's id used in the notification;
        empty: the workflow execution's id.
    :param queue: the queue name in each project (default
        selfheal-maintenance).
    :returns: ``session_id``, ``owner_instances`` (every instance a
        project takes over: the drain's ``owner_instances`` input),
        ``projects`` (per project: ``own_action``, ``ignored``, or
        ``reason`` / ``message`` when its queue could not be read),
        ``unread`` (project ids), ``changes`` (always empty). Error
        reasons: ``invalid_input``, ``configuration_error``.
    """

    action_name = "selfheal.read_project_replies"

    def __init__(self, projects, session_id=None, queue=projects.DEFAULT_QUEUE):
        self.projects = projects
        self.session_id = session_id
        self.queue = queue

    def execute(self, context):
        given = _affected(self.projects)
        if given is None and self.projects is None:
            raise InvalidInput("input 'projects' is required: the 'affected' output of "
                               "selfheal.notify_projects")
        given = given or {}
        session_id = _session(self.session_id, context)
        queue = _queue(self.queue)
        queues = projects.connect(context) if given else None
        found, owner = {}, set()
        for project, ids in given.items():
            try:
                taken, ignored = projects.own_action(queues(project).bodies(queue),
                                                     session_id, ids)
            except projects.ProjectUnreachable as error:
                found[project] = {"own_action": [], "ignored": [], "reason": error.reason,
                                  "message": error.message}
                continue
            found[project] = {"own_action": taken, "ignored": ignored}
            owner.update(taken)
        return {"session_id": session_id, "queue": queue, "owner_instances": sorted(owner),
                "projects": found, "unread": [p for p, e in found.items() if "reason" in e],
                "changes": []}
