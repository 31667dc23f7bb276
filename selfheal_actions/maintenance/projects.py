# SPDX-License-Identifier: Apache-2.0
"""Tell the projects on a host about its planned maintenance, and hear back.

For each project with instances on the host, one message on a Zaqar queue of
that project (default ``selfheal-maintenance``; the project creates it, or
Zaqar does on the first post), in the project's own scope, so that no
project reads another's. The message body (:func:`notification`)::

    {"type": "selfheal.maintenance", "state": "MAINTENANCE",
     "session_id": "<the maintenance's id>", "project_id": "<project>",
     "host_id": "<the host as this project sees it: Nova's hostId>",
     "instance_ids": ["<its instances on the host>", ...],
     "planned_start": "2026-12-02T10:00:00Z", "lead_time": 600,
     "reply_by": "2026-12-02T10:00:00Z", "sent_at": "...",
     "reply": {"queue": "selfheal-maintenance",
               "own_action": {"reply": "own_action", "session_id": "...",
                              "instance_ids": ["<ids you move yourself>"]}}}

``state`` is ``MAINTENANCE`` (planned: reply before ``reply_by``),
``IN_MAINTENANCE`` (the host is being emptied) or ``MAINTENANCE_COMPLETE``.
``host_id`` is what Nova shows that project as the servers' ``hostId``:
``sha224(project_id + host)`` (nova.utils.generate_hostid), never the host
name, which a project must not learn.

A project that will move or scale in instances itself posts, on the same
queue, before ``reply_by``, the ``own_action`` body of the notification
with the ids it takes over: ``{"reply": "own_action", "session_id": ...,
"instance_ids": [...]}``. :func:`replies` reads them back; only ids of
that project's own instances on the host count (others are ignored and
listed), so a project cannot shield another's instances. The drain leaves
those to their owner for its ``owner_window``, then applies the default.

How a message reaches another project's queue:

* a Zaqar without Keystone (the cloud config names ``endpoints.messaging``
  and Mistral passes no token): the ``X-Project-ID`` header selects the
  project;
* with Keystone, Zaqar takes the project from the token (keystonemiddleware
  drops a client's ``X-Project-ID``), so the caller's token is re-scoped to
  each project (``keystoneauth1.identity.v3.Token``): the user running the
  maintenance needs a role on each project it notifies. A project it has
  none on is reported ``not_notified`` (``no_access_to_project``), never
  an error of the whole flow.
"""

import hashlib
import uuid

from selfheal_actions.common import clients
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure

SERVICE_TYPE = "messaging"
DEFAULT_QUEUE = "selfheal-maintenance"
MESSAGE_TYPE = "selfheal.maintenance"
STATES = ("MAINTENANCE", "IN_MAINTENANCE", "MAINTENANCE_COMPLETE")
OWN_ACTION = "own_action"
#: seconds a notification stays on the queue (Zaqar's maximum default: 14 days)
MESSAGE_TTL = 1209600
#: the most messages Zaqar returns per page
PAGE = 20
#: a fixed Client-ID per executor (Zaqar wants one; it only hides a client's
#: own messages from itself unless ``echo=true``)
CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "selfheal-maintenance-notifier"))

NO_ACCESS = "no_access_to_project"
UNREACHABLE = "zaqar_unreachable"
REFUSED = "zaqar_refused"


class ProjectUnreachable(Exception):
    """A project's queue cannot be used; ``reason`` is one of the codes above."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def host_id(project_id, host):
    """The host as ``project_id`` sees it: Nova's ``hostId`` of its servers."""
    return hashlib.sha224((str(project_id) + host).encode("utf-8")).hexdigest()


def affected(servers):
    """``{project_id: [instance ids, sorted]}`` of ``servers`` (Nova dicts)."""
    found = {}
    for server in servers:
        project = server.get("tenant_id") or server.get("project_id")
        found.setdefault(project, []).append(server["id"])
    return {project: sorted(ids) for project, ids in sorted(found.items())}


def notification(state, session_id, project_id, host, instance_ids, planned_start,
                 lead_time, queue, sent_at):
    """The body of the message to one project (see the module's docstring)."""
    return {"type": MESSAGE_TYPE, "state": state, "session_id": session_id,
            "project_id": project_id, "host_id": host_id(project_id, host),
            "instance_ids": list(instance_ids), "planned_start": planned_start,
            "lead_time": lead_time, "reply_by": planned_start, "sent_at": sent_at,
            "reply": {"queue": queue, "own_action": {
                "reply": OWN_ACTION, "session_id": session_id,
                "instance_ids": list(instance_ids)}}}


def is_notification(body, session_id, state, hid):
    return (isinstance(body, dict) and body.get("type") == MESSAGE_TYPE
            and body.get("session_id") == session_id and body.get("state") == state
            and body.get("host_id") == hid)


def own_action(bodies, session_id, instance_ids):
    """What one project's replies take over: ``(taken, ignored)`` id lists.

    :param bodies: the message bodies on its queue.
    :param instance_ids: its instances on the host (the only ones it may take).
    """
    mine = set(instance_ids)
    taken, ignored = set(), set()
    for body in bodies:
        if not (isinstance(body, dict) and body.get("reply") == OWN_ACTION
                and body.get("session_id") == session_id):
            continue
        ids = body.get("instance_ids")
        for value in ids if isinstance(ids, list) else []:
            if isinstance(value, str):
                (taken if value in mine else ignored).add(value)
    return sorted(taken), sorted(ignored)


class Queues:
    """The Zaqar v2 calls made for one project: post and list messages."""

    def __init__(self, session, endpoint, headers=None):
        self.session = session
        self.endpoint = endpoint.rstrip("/")
        self.headers = dict(headers or {}, **{"Client-ID": CLIENT_ID})

    def _call(self, method, path, **kwargs):
        try:
            response = self.session.request(self.endpoint + path, method, headers=self.headers,
                                            raise_exc=False, **kwargs)
        except Exception as error:  # keystoneauth connection and auth errors
            if type(error).__name__ in ("Unauthorized", "Forbidden", "AuthorizationFailure"):
                raise ProjectUnreachable(NO_ACCESS, f"no token for the project: {error}"
                                         ) from None
            raise ProjectUnreachable(UNREACHABLE, f"Zaqar did not answer: "
                                     f"{type(error).__name__}: {error}") from None
        if response.status_code in (401, 403):
            raise ProjectUnreachable(NO_ACCESS, f"Zaqar refused the project's queue: HTTP "
                                     f"{response.status_code}")
        if response.status_code >= 400:
            raise ProjectUnreachable(REFUSED, f"Zaqar refused {method} {path}: HTTP "
                                     f"{response.status_code} {response.text[:300]}")
        return response.json() if response.content and response.content.strip() else None

    def post(self, queue, body):
        """Post one message; returns its id."""
        answer = self._call("POST", f"/v2/queues/{queue}/messages",
                            json={"messages": [{"body": body, "ttl": MESSAGE_TTL}]})
        return answer["resources"][0].rsplit("/", 1)[-1]

    def bodies(self, queue, limit=1000):
        """Every message body on ``queue``, the caller's own ones too.

        Not ``include_claimed``: Zaqar 23's Redis store fails (503) on it
        without a marker. A message a project's client holds claimed is
        therefore not seen (a notification could then be posted again).
        """
        found, marker = [], None
        while len(found) < limit:
            path = (f"/v2/queues/{queue}/messages?echo=true"
                    f"&limit={PAGE}" + (f"&marker={marker}" if marker else ""))
            answer = self._call("GET", path) or {}
            messages = answer.get("messages") or []
            found.extend(m.get("body") for m in messages)
            nexts = [link["href"] for link in answer.get("links") or []
                     if link.get("rel") == "next"]
            if len(messages) < PAGE or not nexts or "marker=" not in nexts[0]:
                break
            marker = nexts[0].split("marker=", 1)[1].split("&", 1)[0]
        return found


def connect(context):
    """A function ``project_id -> Queues`` for the caller's cloud.

    :raises ActionFailure: ``configuration_error`` when neither a token nor
        an explicit ``messaging`` endpoint is available.
    """
    security = getattr(context, "security", None)
    token = getattr(security, "auth_token", None) if security is not None else None
    if not token:  # a Zaqar without Keystone: the header picks the project
        sess, endpoint, _ = clients.session_for(context, SERVICE_TYPE)
        return lambda project: Queues(sess, endpoint, {"X-Project-ID": project})
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    config = clients.explicit_config()
    override = config["endpoints"].get(SERVICE_TYPE)
    auth_url = getattr(security, "auth_uri", None)
    if not auth_url:
        raise ActionFailure("configuration_error", "Mistral passed a token but no Keystone "
                            "URL (auth_uri): cannot reach the projects' queues")
    region = getattr(security, "region_name", None) or config.get("region_name")

    def for_project(project):
        plugin = v3.Token(auth_url=auth_url, token=token, project_id=project)
        sess = ks_session.Session(auth=plugin, verify=clients.verify_setting(config),
                                  timeout=clients.timeout_setting(config))
        try:
            endpoint = override or sess.get_endpoint(service_type=SERVICE_TYPE,
                                                     interface="public", region_name=region)
        except Exception as error:  # keystoneauth: no role on the project, no catalog
            name = type(error).__name__
            reason = NO_ACCESS if name in ("Unauthorized", "Forbidden", "NotFound",
                                           "AuthorizationFailure") else UNREACHABLE
            raise ProjectUnreachable(reason, f"no token scoped to project {project} "
                                     f"({name}: {error}); the caller needs a role on it"
                                     ) from None
        if not endpoint:
            raise ProjectUnreachable(UNREACHABLE, "the catalog has no messaging endpoint")
        return Queues(sess, endpoint)

    return for_project


def now_iso():
    return timeutil.iso(timeutil.utcnow())
