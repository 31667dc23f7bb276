# SPDX-License-Identifier: Apache-2.0
"""What the host watch observes: Nova's compute services and, optionally,
each host's exporter in Prometheus.

Nova's staleness is measured **by Nova's clock**: a service's age is the
time between its ``updated_at`` and the newest ``updated_at`` of any service
(compute, scheduler, conductor), so a skewed executor clock neither hides a
dead host nor invents one.
"""

import requests

from selfheal_actions.common import markers
from selfheal_actions.common import timeutil

#: the Prometheus query and label the watch reads unless configured
DEFAULT_QUERY = 'up{job="node"}'
DEFAULT_HOST_LABEL = "instance"


def _host_of(label_value):
    """``compute-1.example.com:9100`` -> ``compute-1.example.com``."""
    value = label_value or ""
    if value.startswith("["):  # [ipv6]:port
        return value[1:].split("]")[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def nova_observations(services, stale_after):
    """One observation per nova-compute service.

    :param services: every service of Nova (dicts as novaclient returns
        them: ``binary``, ``host``, ``state``, ``status``, ``forced_down``,
        ``updated_at``, ``disabled_reason``).
    :param stale_after: seconds without a report after which a host counts
        as failed even while Nova still says ``up``.
    :returns: ``(observations, scheduler_up)``; each observation has
        ``host``, ``status``, ``marker``, ``nova`` (up / down / stale /
        forced_down) and ``age`` (seconds, or None).
    """
    stamps = [timeutil.parse_time(s.get("updated_at")) for s in services]
    known = [t for t in stamps if t is not None]
    newest = max(known) if known else None
    observations = []
    for service, stamp in zip(services, stamps, strict=True):
        if service.get("binary") != "nova-compute":
            continue
        age = (newest - stamp).total_seconds() if stamp is not None and newest else None
        if service.get("forced_down"):
            nova = "forced_down"
        elif service.get("state") != "up":
            nova = "down"
        elif age is not None and age > stale_after:
            nova = "stale"
        else:
            nova = "up"
        observations.append({
            "host": service.get("host"), "status": service.get("status"),
            "marker": markers.kind_of(service.get("disabled_reason")),
            "nova": nova, "age": age, "exporter": None})
    scheduler_up = any(s.get("binary") == "nova-scheduler" and s.get("state") == "up"
                       for s in services)
    return observations, scheduler_up


def exporter_states(url, query=DEFAULT_QUERY, host_label=DEFAULT_HOST_LABEL, verify=True,
                    timeout=10.0):
    """``{host: True (up) | False (down)}`` from Prometheus' query API.

    A host name is the label's value without its port; the short name
    (before the first dot) is filled in too, as Nova often knows hosts by it.

    :raises PrometheusError: when Prometheus does not answer or answers an
        error (the message says which).
    """
    try:
        response = requests.get(url.rstrip("/") + "/api/v1/query", params={"query": query},
                                timeout=timeout, verify=verify)
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        raise PrometheusError(f"{type(error).__name__}: {str(error)[:200]}") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"HTTP {response.status_code}: {str(body.get('error'))[:200]}")
    states = {}
    for sample in body.get("data", {}).get("result", []):
        host = _host_of(sample.get("metric", {}).get(host_label))
        if not host:
            continue
        try:
            up = float(sample["value"][1]) >= 1
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        # a host seen by several targets is up only when all of them are
        states[host] = states.get(host, True) and up
        short = host.split(".")[0]
        if short != host:
            states[short] = states.get(short, True) and up
    return states


class PrometheusError(Exception):
    """Prometheus did not give an answer the watch can use."""


def add_exporters(observations, states):
    """Set each observation's ``exporter`` from :func:`exporter_states`."""
    for observation in observations:
        host = observation["host"] or ""
        observation["exporter"] = states.get(host, states.get(host.split(".")[0]))
    return observations
