# SPDX-License-Identifier: Apache-2.0
"""One healer per host: a claim that Nova itself arbitrates.

Nova does not serialise evacuations: two evacuate requests for one server
that arrive together are both accepted (the API saves the task state with no
compare-and-swap), and the server is rebuilt twice. So before evacuating, an
execution claims the host by creating a Nova host aggregate named
``selfheal-lock-<host>``. Aggregate names are unique, so exactly one create
succeeds; the others get HTTP 409 and wait for the owner to finish, then
find nothing left to do. The aggregate has no hosts and no availability
zone, so it changes no scheduling; operators see it in
``openstack aggregate list`` with its owner and heartbeat in its metadata.

An owner that died (engine crash) stops refreshing its heartbeat; after
``stale_after`` seconds a waiting execution takes the claim over.
"""

import time
import uuid

from novaclient import exceptions as nova_exc

from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure

PREFIX = "selfheal-lock-"
REFRESH_EVERY = 10.0


def lock_name(host):
    return (PREFIX + host)[:255]


class HostLock:
    """A claim on one host's evacuation.

    :param api: a NovaApi (or fake) with the aggregate methods.
    :param host: the host to claim.
    :param owner: who claims it (the workflow execution id).
    :param stale_after: seconds without a heartbeat before a takeover.
    """

    def __init__(self, api, host, owner=None, stale_after=60.0, clock=None, sleep=None):
        self.api = api
        self.host = host
        self.owner = owner or f"manual-{uuid.uuid4()}"
        self.stale_after = stale_after
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.aggregate_id = None
        self.waited_for = None
        self._refreshed = None

    def acquire(self, timeout):
        """Claim the host, waiting up to ``timeout`` seconds for another owner.

        :returns: True when claimed.
        :raises ActionFailure: ``host_busy`` when still owned at the timeout.
        """
        deadline = self.clock() + timeout
        interval = 0.5
        while True:
            if self._try_create() or self._try_take_over():
                return True
            if self.clock() >= deadline:
                raise ActionFailure(
                    "host_busy",
                    f"execution {self.waited_for} is still healing host '{self.host}' (claim "
                    f"{lock_name(self.host)}); nothing was done. Wait for it, or if it is dead "
                    f"delete the aggregate {lock_name(self.host)}.", owner=self.waited_for)
            self.sleep(interval)
            interval = min(interval * 1.5, 2.0)

    def _metadata(self):
        return {"owner": self.owner, "heartbeat": timeutil.iso(timeutil.utcnow())}

    def _try_create(self):
        try:
            aggregate = self.api.create_aggregate(lock_name(self.host))
        except nova_exc.Conflict:
            return False
        self.aggregate_id = aggregate["id"]
        self.api.set_aggregate_metadata(self.aggregate_id, self._metadata())
        self._refreshed = self.clock()
        return True

    def _try_take_over(self):
        aggregate = self.api.find_aggregate(lock_name(self.host))
        if aggregate is None:
            return False  # released meanwhile: the next create may win
        metadata = aggregate.get("metadata") or {}
        self.waited_for = metadata.get("owner")
        if self.waited_for == self.owner:  # our own claim, e.g. a retried task
            self.aggregate_id = aggregate["id"]
            return True
        beat = timeutil.parse_time(metadata.get("heartbeat") or aggregate.get("created_at"))
        age = (timeutil.utcnow() - beat).total_seconds() if beat else 0
        if age < self.stale_after:
            return False
        self.api.set_aggregate_metadata(aggregate["id"], self._metadata())
        self.aggregate_id = aggregate["id"]
        self._refreshed = self.clock()
        return True

    def refresh(self):
        """Keep the heartbeat fresh (at most one request every few seconds)."""
        if self.aggregate_id is None or self.clock() - self._refreshed < REFRESH_EVERY:
            return
        self._refreshed = self.clock()
        self.api.set_aggregate_metadata(self.aggregate_id, {"heartbeat": timeutil.iso(
            timeutil.utcnow())})

    def release(self):
        if self.aggregate_id is None:
            return
        try:
            self.api.delete_aggregate(self.aggregate_id)
        except nova_exc.NotFound:
            pass
        self.aggregate_id = None
