# SPDX-License-Identifier: Apache-2.0
"""A fake Zaqar v2 messages API without Keystone, as a keystoneauth-like session.

As Zaqar 23 (read from zaqar/transport/wsgi/v2_0/messages.py and the Redis
message store, and checked on the lab's real Zaqar in
tests/functional/test_maintenance_projects.py):

* the project is the ``X-Project-ID`` header; every request needs a
  ``Client-ID``; queues are made on the first post;
* ``POST /v2/queues/{q}/messages`` ``{"messages": [{"body", "ttl"}]}`` ->
  201 ``{"resources": ["/v2/queues/{q}/messages/{id}", ...]}``; a ttl
  above 1209600: 400;
* ``GET /v2/queues/{q}/messages?limit=&marker=&echo=&include_claimed=`` ->
  200 ``{"messages": [{"id", "href", "age", "ttl", "body"}], "links":
  [{"rel": "next", "href": "...marker=..."}]}`` (``links`` empty when no
  message came back); at most ``limit`` (default 10, max 20) per page; a
  client's own messages only with ``echo=true``; ``include_claimed=true``
  without a marker: 503 (a bug of the Redis store, seen in the lab); a queue
  that does not exist: 200 with no messages.
"""

import itertools
import re
import urllib.parse

from tests.unit.fake_http import Response

MAX_TTL = 1209600
MAX_PAGE = 20


class FakeZaqar:
    """``request(url, method, headers=..., json=..., raise_exc=False)``."""

    def __init__(self):
        self.queues = {}          # (project, queue) -> [message dicts]
        self.requests = []
        self.refuse = set()       # projects answered 403
        self._ids = (f"m{i:04d}" for i in itertools.count(1))

    def request(self, url, method, headers=None, json=None, raise_exc=True, **kwargs):
        headers = headers or {}
        project = headers.get("X-Project-ID")
        client = headers.get("Client-ID")
        parts = urllib.parse.urlsplit(url)
        self.requests.append((method, parts.path, project))
        if not client:
            return Response(400, {"title": "Missing header", "description": "Client-ID"})
        if not project:
            return Response(400, {"title": "Empty project header not allowed"})
        if project in self.refuse:
            return Response(403, {"title": "Forbidden"})
        found = re.fullmatch(r"/v2/queues/([^/]+)/messages", parts.path)
        if not found:
            return Response(404)
        key = (project, found.group(1))
        if method == "POST":
            ids = []
            for message in json["messages"]:
                if message.get("ttl", 3600) > MAX_TTL:
                    return Response(400, {"title": "Invalid API request"})
            for message in json["messages"]:
                ids.append(next(self._ids))
                self.queues.setdefault(key, []).append(
                    {"id": ids[-1], "body": message["body"], "ttl": message.get("ttl", 3600),
                     "client": client})
            return Response(201, {"resources": [f"{parts.path}/{i}" for i in ids]})
        if method == "GET":
            query = dict(urllib.parse.parse_qsl(parts.query))
            limit = int(query.get("limit", 10))
            if limit > MAX_PAGE:
                return Response(400, {"title": "Invalid API request"})
            if query.get("include_claimed") == "true" and "marker" not in query:
                # Zaqar 23's Redis store: zrank(key, None) -> DataError -> 503
                return Response(503, {"title": "Service temporarily unavailable"})
            echo = query.get("echo") == "true"
            messages = [m for m in self.queues.get(key, [])
                        if echo or m["client"] != client]
            if "marker" in query:
                messages = [m for m in messages if m["id"] > query["marker"]]
            page = messages[:limit]
            links = []
            if page:
                links = [{"rel": "next", "href": parts.path + "?" + urllib.parse.urlencode(
                    dict(query, marker=page[-1]["id"]))}]
            return Response(200, {"messages": [
                {"id": m["id"], "href": f"{parts.path}/{m['id']}", "age": 0, "ttl": m["ttl"],
                 "body": m["body"]} for m in page], "links": links})
        return Response(405)

    def bodies(self, project, queue):
        return [m["body"] for m in self.queues.get((project, queue), [])]

    def reply(self, project, queue, body, client="tenant-app-0001"):
        """A project's own application posts on its queue."""
        self.request(f"http://zaqar/v2/queues/{queue}/messages", "POST",
                     headers={"X-Project-ID": project, "Client-ID": client},
                     json={"messages": [{"body": body, "ttl": 300}]})
