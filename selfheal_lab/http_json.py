"""JSON over HTTP to the lab's own control endpoints (never an OpenStack API)."""

import json
import urllib.error
import urllib.request


def call(url, method, path, body=None, timeout=120, error=RuntimeError, what="lab service"):
    """Send ``body`` as JSON to ``url + path``; return the decoded answer.

    :param error: the exception class raised on an HTTP error.
    :param what: the service, for the error message.
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        raise error(f"{what} {method} {path}: HTTP {e.code} {detail}") from None
