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
``stale_after`` seconds a waiting execution takes the claim over by deleting
the stale aggregate and creating it again: the unique name is the
compare-and-swap, so of two waiters only one wins. Each action run is its own
owner (:func:`selfheal_actions.common.clients.run_owner`); a heartbeat thread
keeps the claim fresh however long a cycle of the run takes, and an owner
whose claim was taken over or deleted notices it (``claim_lost``) and stops
instead of working on beside its successor, whose claim it never deletes.
"""

import contextlib
import logging
import threading
import time

from novaclient import exceptions as nova_exc

from selfheal_actions.common import compute
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure

LOG = logging.getLogger(__name__)

PREFIX = "selfheal-lock-"
#: seconds between two heartbeats (well below the default stale_after, 60 s)
REFRESH_EVERY = 10.0


def lock_name(host):
    return (PREFIX + host)[:255]


class HostLock:
    """A claim on one host's evacuation.

    :param api: a NovaApi (or fake) with the aggregate methods.
    :param host: the host to claim.
    :param owner: who claims it: unique per action run
        (:func:`clients.run_owner`).
    :param stale_after: seconds without a heartbeat before a takeover.
    :param execution: the workflow execution, shown in the claim's metadata.
    """

    def __init__(self, api, host, owner, stale_after=60.0, clock=None, sleep=None,
                 execution=None):
        self.api = api
        self.host = host
        self.owner = owner
        self.execution = execution
        self.stale_after = stale_after
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.aggregate_id = None
        #: the owner we found holding the claim, and the dead one we took it from
        self.waited_for = None
        self.took_over_from = None
        self.lost = None
        self._refreshed = None
        self._beating = None

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
                    f"{self.waited_for} is still healing host '{self.host}' (claim "
                    f"{lock_name(self.host)}); nothing was done. Wait for it, or if it is dead "
                    f"delete the aggregate {lock_name(self.host)}.", owner=self.waited_for)
            self.sleep(interval)
            interval = min(interval * 1.5, 2.0)

    def _metadata(self):
        metadata = {"owner": self.owner, "heartbeat": timeutil.iso(timeutil.utcnow())}
        if self.execution:
            metadata["execution"] = self.execution
        return metadata

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
        if self.waited_for == self.owner:  # our own claim
            self.aggregate_id = aggregate["id"]
            return True
        beat = timeutil.parse_time(metadata.get("heartbeat") or aggregate.get("created_at"))
        age = (timeutil.utcnow() - beat).total_seconds() if beat else 0
        if age < self.stale_after:
            return False
        # Delete the stale claim and create it again: if another waiter did
        # the same first, our delete finds nothing or our create conflicts.
        try:
            self.api.delete_aggregate(aggregate["id"])
        except nova_exc.NotFound:
            pass
        if not self._try_create():
            return False
        self.took_over_from = self.waited_for
        LOG.warning("%s: took over the claim of %s (no heartbeat for %.0f s)", self.host,
                    self.took_over_from, age)
        return True

    def refresh(self):
        """Keep the heartbeat fresh (at most one request every few seconds).

        :raises ActionFailure: ``claim_lost`` when the claim is gone or has
            another owner. A transient error is logged and tried again later.
        """
        self.check()
        if self.aggregate_id is None or self.clock() - self._refreshed < REFRESH_EVERY:
            return
        self._refreshed = self.clock()
        try:
            current = self.api.get_aggregate(self.aggregate_id)
            if ((current or {}).get("metadata") or {}).get("owner") != self.owner:
                self._lose(self._holder())
            else:
                self.api.set_aggregate_metadata(self.aggregate_id, {
                    "heartbeat": timeutil.iso(timeutil.utcnow())})
        except nova_exc.NotFound:
            self._lose(self._holder())
        except Exception as error:
            if not compute.is_transient(error):
                raise
            LOG.warning("%s: heartbeat of the claim failed (%s); trying again", self.host,
                        error)
        self.check()

    def _holder(self):
        """Who holds the claim on the host now (None: nobody)."""
        found = self.api.find_aggregate(lock_name(self.host))
        return ((found or {}).get("metadata") or {}).get("owner")

    def _lose(self, new_owner):
        self.lost = new_owner or "nobody (the claim was deleted)"
        self.aggregate_id = None

    def check(self):
        """Raise ``claim_lost`` if the claim is no longer ours; else return."""
        if self.lost:
            raise ActionFailure(
                "claim_lost",
                f"the claim on host '{self.host}' ({lock_name(self.host)}) now belongs to "
                f"{self.lost}: this run stopped so that only one healer works on the host. "
                "See changes for what it did; the other run carries on.",
                new_owner=self.lost)

    def start_heartbeat(self, interval=REFRESH_EVERY):
        """Refresh the heartbeat from a thread every ``interval`` seconds,
        however long a cycle of the run takes; :meth:`check` reports a loss."""
        stop = threading.Event()

        def beat():
            while not stop.wait(interval):
                self._refreshed = self.clock() - REFRESH_EVERY  # due now
                try:
                    self.refresh()
                except ActionFailure:
                    return  # lost: check() tells the run
                except Exception:
                    LOG.exception("%s: heartbeat of the claim failed", self.host)

        self._beating = (stop, threading.Thread(target=beat, name=f"claim-{self.host}",
                                                daemon=True))
        self._beating[1].start()

    def stop_heartbeat(self):
        if self._beating:
            stop, thread = self._beating
            stop.set()
            thread.join(timeout=5)
            self._beating = None

    def release(self):
        """Delete the claim if it is still ours (never a successor's)."""
        self.stop_heartbeat()
        if self.aggregate_id is None:
            return
        try:
            current = self.api.get_aggregate(self.aggregate_id)
            if ((current or {}).get("metadata") or {}).get("owner") == self.owner:
                self.api.delete_aggregate(self.aggregate_id)
        except nova_exc.NotFound:
            pass
        self.aggregate_id = None


@contextlib.contextmanager
def claimed(api, host, owner, timeout, execution=None):
    """Hold the claim on ``host`` for the block: acquire (waiting up to
    ``timeout`` seconds), keep its heartbeat from a thread, release at the
    end. The block calls ``lock.check()`` once per cycle to stop when the
    claim was lost.

    :yields: the :class:`HostLock`.
    """
    lock = HostLock(api, host, owner, execution=execution)
    lock.acquire(timeout=timeout)
    lock.start_heartbeat()
    try:
        yield lock
    finally:
        lock.release()
