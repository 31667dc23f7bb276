# SPDX-License-Identifier: Apache-2.0
"""The few Zaqar v2 calls the lab makes (stdlib only): queues,
subscriptions and messages, with the no-auth headers of the lab's Zaqar, or
with ``token`` to its server behind Keystone (queues of the token's project)."""

import urllib.parse
import uuid

from selfheal_lab import http_json
from selfheal_lab import state


class ZaqarAPIError(RuntimeError):
    pass


def _info():
    info = state.read_endpoints().get("zaqar")
    if not info:
        raise ZaqarAPIError("Zaqar is not running in the lab (selfheal-lab up --with heat)")
    return info


def _request(method, path, body=None, token=None):
    info = _info()
    if token:
        base = info["keystone_url"]
        headers = {"X-Auth-Token": token, "Client-ID": str(uuid.uuid5(uuid.NAMESPACE_URL, base))}
    else:
        base, headers = info["messaging_url"], dict(info["headers"])
    return http_json.call(base, method, path, body, timeout=30, error=ZaqarAPIError,
                          what="Zaqar", headers=headers)


def create_queue(name, token=None):
    _request("PUT", f"/v2/queues/{urllib.parse.quote(name)}", {}, token=token)


def delete_queue(name, token=None):
    _request("DELETE", f"/v2/queues/{urllib.parse.quote(name)}", token=token)


def subscribe(queue, subscriber, post_data=None, ttl=3600, token=None):
    """Subscribe ``subscriber`` (a URL) to ``queue``; returns the id.

    :param post_data: the request body template as a **JSON string** in
        which Zaqar replaces the quoted ``"$zaqar_message$"`` with the message.
    """
    options = {}
    if post_data is not None:
        options["post_data"] = post_data
    answer = _request("POST", f"/v2/queues/{urllib.parse.quote(queue)}/subscriptions",
                      {"subscriber": subscriber, "ttl": ttl, "options": options}, token=token)
    return answer["subscription_id"]


def subscriptions(queue, token=None):
    """The queue's subscriptions (``subscriber``, ``options``, ...)."""
    answer = _request("GET", f"/v2/queues/{urllib.parse.quote(queue)}/subscriptions",
                      token=token)
    return answer["subscriptions"]


def post(queue, *bodies, ttl=3600, token=None):
    """Post messages with these bodies in one request; returns their ids."""
    answer = _request("POST", f"/v2/queues/{urllib.parse.quote(queue)}/messages",
                      {"messages": [{"body": body, "ttl": ttl} for body in bodies]}, token=token)
    return [ref.rsplit("/", 1)[-1] for ref in answer["resources"]]


def messages(queue, token=None, limit=20):
    """The bodies of the messages on ``queue`` (every client's; not claimed
    ones: ``include_claimed`` fails on the Redis store), oldest first, up to
    ``limit``."""
    answer = _request("GET", f"/v2/queues/{urllib.parse.quote(queue)}/messages?echo=true"
                      f"&limit={int(limit)}", token=token) or {}
    return [m["body"] for m in answer.get("messages") or []]
