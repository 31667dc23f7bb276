# SPDX-License-Identifier: Apache-2.0
"""JSON over HTTP for the lab's own tools: control endpoints and the few
OpenStack APIs the lab drives without a client library (Keystone, Aodh,
Zaqar)."""

import json
import urllib.error
import urllib.request


def call(url, method, path, body=None, timeout=120, error=RuntimeError, what="lab service",
         headers=None):
    """Send ``body`` as JSON to ``url + path``; return the decoded answer.

    :param error: the exception class raised on an HTTP error, with a
        message naming ``what``, the request, the status and the body.
    :param what: the service, for the error message.
    :param headers: extra request headers (a token, a client id).
    :returns: the decoded JSON answer, or None for an empty one.
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise error(f"{what} {method} {path}: HTTP {e.code} {detail}") from None
    return json.loads(text) if text.strip() else None
