# SPDX-License-Identifier: Apache-2.0
"""Tell the monitor that a host is in planned maintenance: Vitrage, optional.

Vitrage has no notion of maintenance, so selfheal makes one: a Doctor event
posted through Vitrage's event API (python-vitrageclient, ``event.post``,
what ``vitrage event post`` does) raises the alarm
:data:`selfheal_actions.common.alarm_names.MAINTENANCE_ALARM` on the ``nova.host``; the
shipped templates stay silent for a host carrying it. The same event with
status ``up`` clears it.

Vitrage is an extra (``pip install selfheal[vitrage]``). Without the client,
without a ``rca`` endpoint (the catalog's, or ``endpoints.rca`` in
``$SELFHEAL_CLOUD_CONFIG``), or when Vitrage does not answer, :func:`connect`
or the calls raise :class:`MonitoringUnavailable`, and the maintenance
actions decide (input ``require_monitoring``) whether that is an error.
"""

import datetime

from selfheal_actions.common import alarm_names
from selfheal_actions.common import clients
from selfheal_actions.common.results import ActionFailure

#: Vitrage's service type in the Keystone catalog (and the explicit endpoint key)
SERVICE_TYPE = "rca"
BACKEND = "vitrage"
#: Doctor event status values (vitrage.datasources.doctor)
DOWN, UP = "down", "up"
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

NOT_INSTALLED = "vitrage_not_installed"
NOT_CONFIGURED = "vitrage_not_configured"
UNREACHABLE = "vitrage_unreachable"


class MonitoringUnavailable(Exception):
    """The monitor cannot be told; ``reason`` is one of the codes above."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def connect(context):
    """A :class:`VitrageMonitor` for the caller's cloud.

    :raises MonitoringUnavailable: ``vitrage_not_installed`` (no
        python-vitrageclient) or ``vitrage_not_configured`` (no endpoint).
    """
    try:
        from vitrageclient import client as vitrage_client
    except ImportError:
        raise MonitoringUnavailable(
            NOT_INSTALLED, "python-vitrageclient is not installed on the Mistral executor "
            "(pip install selfheal[vitrage])") from None
    try:
        sess, endpoint, region = clients.session_for(context, SERVICE_TYPE)
    except ActionFailure:
        raise MonitoringUnavailable(
            NOT_CONFIGURED, f"no Vitrage endpoint: Mistral passed no token and "
            f"{clients.CLOUD_CONFIG_ENV} names no '{SERVICE_TYPE}' endpoint") from None
    kwargs = {"session": sess, "region_name": region}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
    return VitrageMonitor(vitrage_client.Client("1", **kwargs), endpoint)


class VitrageMonitor:
    """The two Vitrage calls selfheal makes, on a python-vitrageclient client."""

    backend = BACKEND

    def __init__(self, client, endpoint=None):
        self.client = client
        self.endpoint = endpoint

    def set_maintenance(self, host, on, reason=None, until=None, by=None):
        """Raise (``on``) or clear the maintenance alarm on ``host``.

        :raises MonitoringUnavailable: ``vitrage_unreachable`` (or
            ``vitrage_not_configured`` when the catalog has no Vitrage).
        """
        details = {"hostname": host, "status": DOWN if on else UP, "source": "selfheal"}
        for key, value in (("cause", reason), ("until", until), ("by", by)):
            if value:
                details[key] = value
        now = datetime.datetime.now(datetime.timezone.utc).strftime(EVENT_TIME_FORMAT)
        try:
            self.client.event.post(event_time=now, event_type=alarm_names.MAINTENANCE_ALARM,
                                   details=details)
        except Exception as error:  # keystoneauth and vitrageclient errors alike
            if type(error).__name__ == "EndpointNotFound":
                raise MonitoringUnavailable(
                    NOT_CONFIGURED, "the service catalog has no Vitrage "
                    f"('{SERVICE_TYPE}') endpoint") from None
            raise MonitoringUnavailable(
                UNREACHABLE, f"Vitrage did not take the maintenance event: "
                f"{type(error).__name__}: {error}") from None
