# SPDX-License-Identifier: Apache-2.0
"""A fake Prometheus Alertmanager v2 silences API, as a requests-like session.

It behaves like Alertmanager's ``silence.Silences.Set`` / ``expire`` and its
v2 API handlers (read from prometheus/alertmanager ``silence/silence.go``
and ``api/v2/api.go``, and checked against the lab's 0.25 in
``tests/functional/test_maintenance_silences.py``):

* ``POST /api/v2/silences`` without ``id`` creates a silence with a new id; a
  ``startsAt`` in the past becomes now. With an ``id`` it updates in place
  when the matchers are equal and, for an active silence, ``startsAt`` is
  the same instant and ``endsAt`` not in the past (a pending one: ``startsAt``
  not in the past); otherwise the old one is expired and a new id answered.
  An unknown id: 404. No matchers: 422; ``endsAt`` not after ``startsAt``:
  400. (0.25 takes an empty ``createdBy`` and ``comment``.)
* ``GET /api/v2/silences?filter=name="value"``: every silence whose matchers
  include that one (expired ones too), with ``status.state``.
* ``DELETE /api/v2/silence/{id}``: expires it (``endsAt`` = now; a pending
  one gets ``startsAt`` = ``endsAt`` = now); an expired
  one again: 200; an unknown id: 500 (not 404, as Alertmanager answers).
"""

import datetime
import itertools
import re
import urllib.parse

from tests.unit.fake_http import Response


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _parse(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeAlertmanager:
    """``request(method, url, json=None, timeout=None)`` like a requests session."""

    def __init__(self):
        self.silences = {}        # id -> {"matchers", "startsAt", "endsAt", ...} (datetimes)
        self.calls = []
        self.down = False
        self._ids = (f"sil-{i}" for i in itertools.count(1))

    def request(self, method, url, json=None, timeout=None, **kwargs):
        import requests

        assert timeout, "every call carries a timeout"
        self.calls.append((method, urllib.parse.urlsplit(url).path))
        if self.down:
            raise requests.ConnectionError("connection refused")
        parts = urllib.parse.urlsplit(url)
        if method == "GET" and parts.path == "/api/v2/silences":
            query = urllib.parse.parse_qs(parts.query).get("filter", [])
            return Response(200, [self._shown(i) for i in self.silences
                                  if all(self._has(i, f) for f in query)])
        if method == "POST" and parts.path == "/api/v2/silences":
            return self._post(json)
        found = re.fullmatch(r"/api/v2/silence/([^/]+)", parts.path)
        if found and method == "DELETE":
            silence = self.silences.get(urllib.parse.unquote(found.group(1)))
            if silence is None:
                return Response(500, "silence not found")
            self._expire(silence)
            return Response(200)
        if found and method == "GET":
            silence_id = found.group(1)
            if silence_id not in self.silences:
                return Response(404, "silence not found")
            return Response(200, self._shown(silence_id))
        return Response(404, "not found")

    def _expire(self, silence):
        state, now = self.state(silence), _now()
        if state == "pending":  # as Alertmanager: both ends become now
            silence["startsAt"] = silence["endsAt"] = now
        elif state == "active":
            silence["endsAt"] = now

    def state(self, silence):
        now = _now()
        if silence["endsAt"] <= now:
            return "expired"
        return "active" if silence["startsAt"] <= now else "pending"

    def _has(self, silence_id, expression):
        name, _, value = expression.partition("=")
        wanted = {"name": name, "value": value.strip('"'), "isRegex": False, "isEqual": True}
        return wanted in self.silences[silence_id]["matchers"]

    def _shown(self, silence_id):
        s = self.silences[silence_id]
        return {"id": silence_id, "matchers": s["matchers"], "createdBy": s["createdBy"],
                "comment": s["comment"], "startsAt": _stamp(s["startsAt"]),
                "endsAt": _stamp(s["endsAt"]), "updatedAt": _stamp(s["updatedAt"]),
                "status": {"state": self.state(s)}}

    def _post(self, body):
        if not body.get("matchers"):
            return Response(422, {"code": 612,
                                  "message": "matchers in body should have at least 1 items"})
        now = _now()
        new = {"matchers": [dict(m) for m in body["matchers"]], "createdBy": body["createdBy"],
               "comment": body["comment"], "startsAt": _parse(body["startsAt"]),
               "endsAt": _parse(body["endsAt"]), "updatedAt": now}
        if new["endsAt"] <= new["startsAt"]:
            return Response(400, "Failed to create silence: start time must be before end time")
        old_id = body.get("id")
        if old_id:
            old = self.silences.get(old_id)
            if old is None:
                return Response(404, "silence not found")
            if self._can_update(old, new, now):
                self.silences[old_id] = new
                return Response(200, {"silenceID": old_id})
            self._expire(old)
        if new["startsAt"] < now:
            new["startsAt"] = now
        silence_id = next(self._ids)
        self.silences[silence_id] = new
        return Response(200, {"silenceID": silence_id})

    def _can_update(self, old, new, now):
        if old["matchers"] != new["matchers"]:
            return False
        state = self.state(old)
        if state == "active":
            return new["startsAt"] == old["startsAt"] and new["endsAt"] >= now
        if state == "pending":
            return new["startsAt"] >= now
        return False

    def live(self, host, label="instance"):
        """The ids of the active or pending silences matching ``label=host``."""
        return [i for i in self.silences if self._has(i, f'{label}="{host}"')
                and self.state(self.silences[i]) != "expired"]
