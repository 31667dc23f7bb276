# SPDX-License-Identifier: Apache-2.0
"""Small, explicit calls to the Nova API, returning plain dicts.

Everything the actions read from or do to Nova goes through :class:`NovaApi`,
so the decision logic works on plain data, and unit tests drive the same
logic with a fake that has the same methods.
"""

import contextlib
import functools
import logging
import time

from keystoneauth1 import exceptions as ks_exc
from novaclient import api_versions
from novaclient import exceptions as nova_exc

from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import http_status
from selfheal_actions.common.timeutil import iso

LOG = logging.getLogger(__name__)

#: answers that say "try again" (a proxy or an overloaded API), not "no"
TRANSIENT_STATUSES = {500, 502, 503, 504}
#: how many times an idempotent call is tried, and the pauses between
RETRY_PAUSES = (0.5, 1.5)


def is_transient(error):
    """True for an error worth retrying: a 5xx answer, a timeout or a
    connection that failed or was reset."""
    return (http_status(error) in TRANSIENT_STATUSES
            or isinstance(error, (ks_exc.ConnectionError, ks_exc.RequestTimeout,
                                  ks_exc.GatewayTimeout)))


def retried(call):
    """Retry an idempotent Nova call (a read, or a write that sets a state)
    on transient errors, a few times with short pauses; then raise."""

    @functools.wraps(call)
    def wrapper(*args, **kwargs):
        for pause in (*RETRY_PAUSES, None):
            try:
                return call(*args, **kwargs)
            except Exception as error:
                if pause is None or not is_transient(error):
                    raise
                LOG.warning("%s failed (%s), retrying in %.1f s", call.__name__, error, pause)
                time.sleep(pause)

    return wrapper

#: force-down by service id needs 2.53; older clouds are out of scope.
MIN_MICROVERSION = "2.53"
#: from 2.95 Nova leaves evacuated servers stopped, so evacuations are sent
#: at this one at most (see NovaApi.evacuate).
KEEPS_POWER_STATE = "2.94"
#: the last microversion whose hypervisor details carry usage figures
HYPERVISOR_USAGE = "2.87"


class NovaApi:
    """The Nova calls selfheal makes, on a python-novaclient client."""

    def __init__(self, nova):
        self.nova = nova
        if not self.at_least(MIN_MICROVERSION):
            raise ActionFailure(
                "unsupported_microversion",
                f"selfheal needs compute API microversion {MIN_MICROVERSION} or newer, the "
                f"client speaks {self.microversion}. Leave 'microversion' empty to negotiate.")

    @property
    def microversion(self):
        return self.nova.api_version.get_string()

    def at_least(self, version):
        return self.nova.api_version >= api_versions.APIVersion(version)

    # services
    @retried
    def compute_services(self):
        """All nova-compute services as dicts (id, host, state, status, ...)."""
        return [s.to_dict() for s in self.nova.services.list(binary="nova-compute")]

    @retried
    def all_services(self):
        """Every Nova service (compute, scheduler, conductor) as dicts."""
        return [s.to_dict() for s in self.nova.services.list()]

    @retried
    def aggregates(self):
        """Every host aggregate as dicts (``name``, ``hosts``, ``metadata``)."""
        return [a.to_dict() for a in self.nova.aggregates.list()]

    @retried
    def force_down(self, service_id, down=True):
        self.nova.services.force_down(service_id, down)

    @retried
    def disable(self, service_id, reason):
        self.nova.services.disable_log_reason(service_id, reason)

    @retried
    def enable(self, service_id):
        self.nova.services.enable(service_id)

    # servers
    @retried
    def servers_on_host(self, host):
        """Every server on ``host`` (all projects), as dicts."""
        return [s.to_dict() for s in self.nova.servers.list(
            search_opts={"all_tenants": True, "host": host})]

    @retried
    def servers_changed_since(self, since):
        """Servers (all projects) updated since ``since`` (a datetime)."""
        return [s.to_dict() for s in self.nova.servers.list(
            search_opts={"all_tenants": True, "changes-since": iso(since)})]

    @retried
    def get_server(self, server_id):
        """A server dict, or None when it does not exist."""
        try:
            return self.nova.servers.get(server_id).to_dict()
        except nova_exc.NotFound:
            return None

    def evacuate(self, server_id, target_host=None):
        """Ask Nova to evacuate; the outcome shows later in the migration record.

        Sent at microversion 2.94 at most: up to there Nova rebuilds the
        server in the power state it had, while from 2.95 it leaves every
        evacuated server stopped, and starting each one again costs a
        request and a power-on cycle per server.
        """
        with self._capped(KEEPS_POWER_STATE):
            self.nova.servers.evacuate(server_id, host=target_host)

    @contextlib.contextmanager
    def _capped(self, version):
        """Send the calls inside at ``version`` at most."""
        current = self.nova.api_version
        self.nova.api_version = min(current, api_versions.APIVersion(version))
        try:
            yield
        finally:
            self.nova.api_version = current

    def start(self, server_id):
        self.nova.servers.start(server_id)

    def stop(self, server_id):
        self.nova.servers.stop(server_id)

    def reboot(self, server_id, hard=True):
        """Reboot a server (hard: the hypervisor restarts it, whatever the guest does)."""
        self.nova.servers.reboot(server_id, "HARD" if hard else "SOFT")

    def pause(self, server_id):
        self.nova.servers.pause(server_id)

    def unpause(self, server_id):
        self.nova.servers.unpause(server_id)

    def reset_to_error(self, server_id):
        self.nova.servers.reset_state(server_id, "error")

    @retried
    def set_server_metadata(self, server_id, key, value):
        """Set one metadata item of a server (idempotent)."""
        self.nova.servers.set_meta_item(server_id, key, value)

    @retried
    def delete_server_metadata(self, server_id, key):
        """Remove one metadata item of a server; absent already is fine."""
        try:
            self.nova.servers.delete_meta(server_id, [key])
        except nova_exc.NotFound:
            pass

    @retried
    def server_groups(self):
        """Every server group of every project, as dicts (``id``, ``name``,
        ``policy`` or ``policies``, ``members``)."""
        return [g.to_dict() for g in self.nova.server_groups.list(all_projects=True)]

    @retried
    def hypervisors(self):
        """Every hypervisor with its resources as Nova reports them
        (``hypervisor_hostname``, ``service.host``, ``vcpus``, ``vcpus_used``,
        ``memory_mb``, ``memory_mb_used``, ``local_gb``, ``local_gb_used``).

        Read at microversion 2.87 at most: from 2.88 Nova leaves the
        resource figures out (Placement has them).
        """
        with self._capped(HYPERVISOR_USAGE):
            return [h.to_dict() for h in self.nova.hypervisors.list(detailed=True)]

    # migrations
    @retried
    def evacuations_from(self, host, since=None):
        """Evacuation migrations whose source is ``host``, as dicts."""
        kwargs = {"source_compute": host, "migration_type": "evacuation"}
        if since is not None and self.at_least("2.59"):
            kwargs["changes_since"] = iso(since)
        return [m.to_dict() for m in self.nova.migrations.list(**kwargs)]

    @retried
    def migrations_from(self, host, migration_type=None, since=None):
        """Migrations whose source is ``host`` (all types, or one: ``live-migration``,
        ``migration`` for cold), as dicts."""
        kwargs = {"source_compute": host}
        if migration_type:
            kwargs["migration_type"] = migration_type
        if since is not None and self.at_least("2.59"):
            kwargs["changes_since"] = iso(since)
        return [m.to_dict() for m in self.nova.migrations.list(**kwargs)]

    def live_migrate(self, server_id, target_host=None):
        """Ask Nova to live-migrate (block migration chosen by Nova, ``auto``).

        From 2.34 the request is asynchronous: the outcome shows later in the
        ``live-migration`` record (``completed``, or ``error``/``failed``).
        """
        self.nova.servers.live_migrate(server_id, target_host, "auto")

    def cold_migrate(self, server_id, target_host=None):
        """Ask Nova to cold-migrate; the record ends ``finished`` (then confirm)."""
        if target_host and self.at_least("2.56"):
            self.nova.servers.migrate(server_id, host=target_host)
        else:
            self.nova.servers.migrate(server_id)

    def confirm_migration(self, server_id):
        """Confirm a finished cold migration (the server is VERIFY_RESIZE)."""
        self.nova.servers.confirm_resize(server_id)

    # aggregates (the per-host claim of selfheal_actions.common.host_claim)
    def create_aggregate(self, name):
        """Create an empty aggregate; raises novaclient Conflict if the name exists."""
        return self.nova.aggregates.create(name, None).to_dict()

    @retried
    def get_aggregate(self, aggregate_id):
        """The aggregate dict, or None when it does not exist (any more)."""
        try:
            return self.nova.aggregates.get(aggregate_id).to_dict()
        except nova_exc.NotFound:
            return None

    def find_aggregate(self, name):
        for aggregate in self.nova.aggregates.list():
            if aggregate.name == name:
                return aggregate.to_dict()
        return None

    @retried
    def set_aggregate_metadata(self, aggregate_id, metadata):
        self.nova.aggregates.set_metadata(aggregate_id, metadata)

    def delete_aggregate(self, aggregate_id):
        self.nova.aggregates.delete(aggregate_id)


def find_service(services, host):
    """The service dict of ``host`` among ``services``.

    :raises ActionFailure: ``host_not_found``, naming the known hosts.
    """
    for service in services:
        if service["host"] == host:
            return service
    known = ", ".join(sorted(s["host"] for s in services)) or "none"
    raise ActionFailure("host_not_found",
                        f"no nova-compute service on host '{host}'. Known compute hosts: "
                        f"{known}. Check the host name (the service host, which can differ "
                        "from the hypervisor FQDN).", host=host)


def client_error(error):
    """``(http status, message)`` of a novaclient error."""
    return getattr(error, "code", None), getattr(error, "message", None) or str(error)
