# SPDX-License-Identifier: Apache-2.0
"""The few Masakari v1 calls the lab, its tests and the benchmark make
(stdlib only), with a Keystone token: the lab admin's unless one is given.

Masakari's default policy wants the admin role for every call here.
``microversion`` is the ``OpenStack-API-Version: instance-ha X`` header,
1.0 unless said: from 1.1 on, reading a notification adds its
``recovery_workflow_details``, which the API asks the engine for with an
RPC call (a poll then loads the engine, and hangs for the RPC timeout, 60 s,
while the engine is down); 1.3 adds the VM moves.
"""

import datetime
import json
import time
import urllib.error
import urllib.request

from selfheal_lab import state
from selfheal_lab.services import keystone

#: the microversion sent unless one is given (no RPC to the engine)
MICROVERSION = "1.0"
#: the one that lists a notification's VM moves (Masakari 22's newest)
VMOVES_MICROVERSION = "1.3"
#: the statuses a notification ends in
FINAL_STATUSES = ("finished", "error", "failed", "ignored")


class MasakariAPIError(RuntimeError):
    """An HTTP error from the Masakari API: ``status`` and ``body`` (decoded)."""

    def __init__(self, message, status, body):
        super().__init__(message)
        self.status = status
        self.body = body


def url():
    """The lab Masakari's API URL (``.../v1``).

    :raises MasakariAPIError: when it is not running (status 0).
    """
    info = state.read_endpoints().get("masakari")
    if not info:
        raise MasakariAPIError("Masakari is not running in the lab "
                               "(selfheal-lab up --auth --with masakari)", 0, None)
    return info["url"]


def request(method, path, body=None, token=None, microversion=MICROVERSION, timeout=60):
    """One API call; the decoded JSON answer (None when empty).

    :raises MasakariAPIError: on an HTTP error, with its status and body.
    """
    headers = {"Content-Type": "application/json",
               "X-Auth-Token": token or keystone.token()[0],
               "OpenStack-API-Version": f"instance-ha {microversion}"}
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url() + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
    except urllib.error.HTTPError as e:
        raw = e.read().decode(errors="replace")
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = raw
        raise MasakariAPIError(f"Masakari {method} {path}: HTTP {e.code} {raw[:500]}",
                               e.code, decoded) from None
    return json.loads(text) if text.strip() else None


def create_segment(name, hosts, recovery_method="auto", token=None):
    """A failover segment (service type COMPUTE) holding the compute
    ``hosts`` (Masakari's API checks each name against Nova).

    :returns: ``{"segment": {...}, "hosts": [{...}, ...]}``
    """
    segment = request("POST", "/segments", {"segment": {
        "name": name, "recovery_method": recovery_method, "service_type": "COMPUTE"}},
        token=token)["segment"]
    added = [request("POST", f"/segments/{segment['uuid']}/hosts", {"host": {
        "name": host, "type": "COMPUTE", "control_attributes": "SSH"}},
        token=token)["host"] for host in hosts]
    return {"segment": segment, "hosts": added}


def delete_segment(segment_uuid, token=None):
    """Delete a segment and its hosts (refused by Masakari while one of
    them has a notification running)."""
    for host in request("GET", f"/segments/{segment_uuid}/hosts", token=token)["hosts"]:
        request("DELETE", f"/segments/{segment_uuid}/hosts/{host['uuid']}", token=token)
    request("DELETE", f"/segments/{segment_uuid}", token=token)


def host(segment_uuid, host_uuid, token=None):
    return request("GET", f"/segments/{segment_uuid}/hosts/{host_uuid}", token=token)["host"]


def notify_host_stopped(hostname, generated_time=None, token=None):
    """What masakari-hostmonitor sends for a dead compute host: a
    COMPUTE_HOST notification, event STOPPED, host_status NORMAL,
    cluster_status OFFLINE.

    :param generated_time: a UTC ``datetime`` (default now).
    :returns: the notification Masakari created (``notification_uuid``,
        ``status``, ...).
    :raises MasakariAPIError: when Masakari refuses it (409 for a host under
        maintenance or a duplicate).
    """
    generated = (generated_time or datetime.datetime.now(datetime.timezone.utc))
    body = {"notification": {
        "type": "COMPUTE_HOST", "hostname": hostname,
        "generated_time": generated.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "payload": {"event": "STOPPED", "host_status": "NORMAL",
                    "cluster_status": "OFFLINE"}}}
    return request("POST", "/notifications", body, token=token)["notification"]


def notification(notification_uuid, token=None, microversion=MICROVERSION):
    """A notification (``status``, ...); at ``microversion`` 1.1 or later
    with ``recovery_workflow_details`` (an RPC call to the engine)."""
    return request("GET", f"/notifications/{notification_uuid}", token=token,
                   microversion=microversion)["notification"]


def vmoves(notification_uuid, token=None):
    """The VM moves Masakari recorded for a COMPUTE_HOST notification."""
    return request("GET", f"/notifications/{notification_uuid}/vmoves", token=token,
                   microversion=VMOVES_MICROVERSION)["vmoves"]


def wait_notification(notification_uuid, timeout=300, interval=0.5, token=None):
    """Poll until the notification reaches a final status; return it.

    :raises TimeoutError: with the last status seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = notification(notification_uuid, token=token)
        if found["status"] in FINAL_STATUSES:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"notification {notification_uuid} still {found['status']} "
                               f"after {timeout} s")
        time.sleep(interval)
