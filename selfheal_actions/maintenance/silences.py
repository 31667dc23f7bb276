# SPDX-License-Identifier: Apache-2.0
"""Prometheus Alertmanager silences for a host in planned maintenance.

``selfheal.disable_monitoring`` silences every alert of the host for the
maintenance window, ``selfheal.enable_monitoring`` expires that silence;
both through Alertmanager's v2 API:

* ``GET /api/v2/silences?filter=<label>="<host>"``: the silences of the host;
* ``POST /api/v2/silences``: create one (no ``id``), or update one (with its
  ``id``): Alertmanager keeps the id when only ``endsAt`` moves, and expires
  the old one and answers a new id otherwise;
* ``DELETE /api/v2/silence/{id}``: expire it.

The silence matches one label exactly (``<host_label>="<host>"``; the
``instance`` label by default, as a Prometheus relabelled to the host name
sets it). It is selfheal's when ``createdBy`` is :data:`CREATED_BY` and its
comment starts with :func:`marker` (``selfheal:maintenance host=<host>``):
a rerun finds it and extends it instead of creating a second, and the end
of the maintenance expires exactly those, never an operator's own.

Where Alertmanager is, the cloud config says (Alertmanager is not in the
Keystone catalog)::

    alertmanager:
      url: http://alertmanager.example:9093
      host_label: instance        # the label that carries the host name
      verify: true                # or false, or a CA bundle path
      headers: {}                 # e.g. basic auth of a proxy in front
      default_seconds: 86400      # the window when no ``until`` is given

Without that section :func:`connect` raises :class:`SilencesUnavailable`
(``alertmanager_not_configured``) and the maintenance goes on without a
silence (or fails, changing nothing, with ``require_silence``).
"""

import datetime
import urllib.parse

import requests

from selfheal_actions.common import clients
from selfheal_actions.common import timeutil

BACKEND = "alertmanager"
#: the ``createdBy`` of every silence selfheal makes
CREATED_BY = "selfheal"
DEFAULT_HOST_LABEL = "instance"
#: seconds a silence lasts when the maintenance names no end
DEFAULT_SECONDS = 86400
#: Alertmanager's states of a silence
ACTIVE, PENDING, EXPIRED = "active", "pending", "expired"

NOT_CONFIGURED = "alertmanager_not_configured"
UNREACHABLE = "alertmanager_unreachable"
REFUSED = "alertmanager_refused"


class SilencesUnavailable(Exception):
    """Alertmanager cannot be used; ``reason`` is one of the codes above."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def marker(host):
    """The start of the comment of selfheal's silence for ``host``."""
    return f"selfheal:maintenance host={host}"


def _stamp(moment):
    """Alertmanager's time format, to the millisecond."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def connect(config=None):
    """An :class:`Alertmanager` from the cloud config's ``alertmanager`` section.

    :raises SilencesUnavailable: ``alertmanager_not_configured``.
    """
    if config is None:
        config = clients.explicit_config()
    section = config.get(BACKEND) or {}
    url = section.get("url")
    if not url:
        raise SilencesUnavailable(
            NOT_CONFIGURED, f"no Alertmanager: the cloud config ({clients.CLOUD_CONFIG_ENV}) "
            "has no 'alertmanager: {url}' section")
    session = requests.Session()
    session.headers.update(section.get("headers") or {})
    session.verify = clients.verify_setting(section)
    return Alertmanager(url, session, host_label=section.get("host_label") or DEFAULT_HOST_LABEL,
                        timeout=clients.timeout_setting(section),
                        default_seconds=section.get("default_seconds") or DEFAULT_SECONDS)


class Alertmanager:
    """The three silence calls selfheal makes, on a requests-like session."""

    backend = BACKEND

    def __init__(self, url, session, host_label=DEFAULT_HOST_LABEL, timeout=30.0,
                 default_seconds=DEFAULT_SECONDS):
        self.url = url.rstrip("/")
        self.session = session
        self.host_label = host_label
        self.timeout = timeout
        self.default_seconds = int(default_seconds)

    def _call(self, method, path, **kwargs):
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout,
                                            **kwargs)
        except requests.RequestException as error:
            raise SilencesUnavailable(UNREACHABLE, f"Alertmanager at {self.url} did not "
                                      f"answer: {type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise SilencesUnavailable(REFUSED, f"Alertmanager refused {method} {path}: HTTP "
                                      f"{response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def matchers(self, host):
        return [{"name": self.host_label, "value": host, "isRegex": False, "isEqual": True}]

    def ours(self, host):
        """selfheal's silences of ``host`` that are active or pending, oldest first."""
        query = urllib.parse.urlencode({"filter": f'{self.host_label}="{host}"'})
        found = self._call("GET", f"/api/v2/silences?{query}") or []
        wanted = self.matchers(host)
        mine = [s for s in found
                if s.get("createdBy") == CREATED_BY
                and (s.get("comment") or "").startswith(marker(host))
                and s.get("status", {}).get("state") in (ACTIVE, PENDING)
                and [_matcher(m) for m in s.get("matchers") or []] == wanted]
        return sorted(mine, key=lambda s: s.get("startsAt") or "")

    def ensure(self, host, until=None, text="", by=None, dry_run=False):
        """Silence ``host`` until ``until`` (a datetime; None: the default
        window from now, or the end the silence already has).

        One silence per host: an existing one of selfheal is kept when it
        already lasts until ``until``, and extended (or shortened) to it
        otherwise; duplicates a crash may have left are expired.

        :returns: ``{"backend", "id", "starts_at", "ends_at", "changed",
            "change"}`` with ``change`` one of ``created``, ``extended``,
            ``unchanged``; ``expired_duplicates`` when some were.
        """
        now = timeutil.utcnow()
        existing = self.ours(host)
        keep, extra = (existing[-1], existing[:-1]) if existing else (None, [])
        if until is None:
            ends = (timeutil.parse_time(keep["endsAt"]) if keep
                    else now + datetime.timedelta(seconds=self.default_seconds))
        else:
            ends = max(until, now + datetime.timedelta(seconds=60))
        state = {"backend": BACKEND, "url": self.url, "label": self.host_label}
        if keep and keep["endsAt"][:19] == _stamp(ends)[:19]:
            state.update(id=keep["id"], starts_at=keep["startsAt"], ends_at=keep["endsAt"],
                         changed=False, change="unchanged")
        else:
            body = {"matchers": self.matchers(host), "createdBy": CREATED_BY,
                    "comment": f"{marker(host)} by {by or 'manual'}: {text}".strip()[:500],
                    "endsAt": _stamp(ends)}
            if keep:  # the same start: Alertmanager then keeps the id
                body.update(id=keep["id"], startsAt=keep["startsAt"], comment=keep["comment"])
            else:  # a whole second ahead, so a later update can repeat it exactly
                body["startsAt"] = _stamp(now.replace(microsecond=0)
                                          + datetime.timedelta(seconds=1))
            new_id = None if dry_run else self._call("POST", "/api/v2/silences",
                                                     json=body)["silenceID"]
            state.update(id=keep["id"] if dry_run and keep else new_id,
                         starts_at=body["startsAt"], ends_at=body["endsAt"], changed=True,
                         change="extended" if keep else "created")
            if keep and new_id and new_id != keep["id"]:
                state["replaced"] = keep["id"]  # Alertmanager expired it
        if extra:
            if not dry_run:
                for silence in extra:
                    self.expire(silence["id"])
            state["expired_duplicates"] = [s["id"] for s in extra]
        return state

    def expire(self, silence_id):
        self._call("DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id)}")

    def end(self, host, dry_run=False):
        """Expire selfheal's silences of ``host``.

        :returns: ``{"backend", "expired": [ids], "changed"}``.
        """
        found = self.ours(host)
        if not dry_run:
            for silence in found:
                self.expire(silence["id"])
        return {"backend": BACKEND, "url": self.url, "label": self.host_label,
                "expired": [s["id"] for s in found], "changed": bool(found)}


def _matcher(m):
    return {"name": m.get("name"), "value": m.get("value"), "isRegex": bool(m.get("isRegex")),
            "isEqual": m.get("isEqual", True)}
