# SPDX-License-Identifier: Apache-2.0
"""One healer per stack: a claim that Mistral itself arbitrates.

Two stack updates that overlap make Heat's convergence engine cancel the
first and leave the stack ``UPDATE_FAILED``, so only one heal of a stack may
mark members and update it at a time. Before it changes anything, a heal
claims the root stack by creating a Mistral environment named
``selfheal-stack-lock-<stack id>``. Environment names are unique per project
(a database constraint), so of two creates in the same instant exactly one
succeeds and the other gets HTTP 409; the loser waits, bounded by the heal's
``timeout``, and then ends with ``stack_busy`` naming the holder: it never
goes on anyway. Manual heals (``selfheal.autoheal.mark_unhealthy``, given a
stack name) and alarm heals (given its id) both key the claim on the stack id
Heat returns, so they see each other.

Why a Mistral environment: the heals run as the stack's owner (an alarm heal
runs with the trust of the tenant whose alarm fired), and every project may
create environments in its own Mistral, the service that runs the heal;
Nova aggregates (the host claim's store) are admin-only. The environment's
variables say who holds the claim (``owner``, ``execution``, ``stack``) and
when it last proved alive (``heartbeat``); ``mistral environment-list``
shows it.

An owner that died stops refreshing its heartbeat; after ``stale_after``
seconds a waiter takes the claim over. Environments can only be deleted by
name, so the takeover is made exclusive by a second unique name: the waiter
that creates ``<claim>.reap.<hash of the dead owner>`` first re-reads the
claim and, if the dead owner still holds it, writes itself in as owner; the
others see the marker (409) and keep waiting. The owner checks the claim
before each change it makes (mark, update) and from a heartbeat thread, and
stops with ``claim_lost`` if another owner holds it. What no store without
compare-and-delete can exclude: an owner frozen for longer than
``stale_after`` that wakes up exactly between its own check and its next
request.
"""

import hashlib
import logging
import threading
import time

from selfheal_actions.common import mistral_api
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure

LOG = logging.getLogger(__name__)

PREFIX = "selfheal-stack-lock-"
#: seconds between two heartbeats (well below the default stale_after, 60 s)
REFRESH_EVERY = 10.0
#: the longest pause between two attempts of a waiting heal
MAX_WAIT_POLL = 1.0


#: the claim's environment no longer exists (raised by ``update_environment``)
ClaimGone = mistral_api.EnvironmentGone


def claim_name(stack_id):
    return (PREFIX + stack_id)[:180]


def _reap_name(stack_id, owner):
    digest = hashlib.sha256(str(owner).encode()).hexdigest()[:16]
    return f"{claim_name(stack_id)}.reap.{digest}"


class StackClaim:
    """A claim on one stack's heals.

    :param store: a :class:`~selfheal_actions.common.mistral_api.MistralApi`
        (or a fake) with ``create_environment`` (False on 409),
        ``get_environment`` (None when absent), ``update_environment`` and
        ``delete_environment``.
    :param stack_id: the root stack's id (never its name).
    :param owner: who claims it: unique per action run
        (:func:`selfheal_actions.common.clients.run_owner`).
    :param stale_after: seconds without a heartbeat before a takeover.
    :param execution: the workflow execution, shown in the claim.
    :param stack_name: shown in the claim.
    """

    def __init__(self, store, stack_id, owner, stale_after=60.0, clock=None, sleep=None,
                 execution=None, stack_name=None):
        self.store = store
        self.stack_id = stack_id
        self.name = claim_name(stack_id)
        self.owner = owner
        self.execution = execution
        self.stack_name = stack_name
        self.stale_after = stale_after
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.held = False
        #: the owner we found holding the claim (and its execution), the dead
        #: one we took it from, and how long we waited
        self.waited_for = None
        self.waited_for_execution = None
        self.took_over_from = None
        self.waited_seconds = 0.0
        self.lost = None
        self._refreshed = None
        self._beating = None

    # --- acquire ------------------------------------------------------------

    def acquire(self, timeout, while_waiting=None):
        """Claim the stack, waiting up to ``timeout`` seconds for its holder.

        :param while_waiting: called after each failed attempt (the heal
            marks its member meanwhile, so that the holder's update replaces
            it too); when it returns True the wait ends unclaimed.
        :returns: True when claimed, False when ``while_waiting`` ended it.
        :raises ActionFailure: ``stack_busy`` when still held at the timeout.
        """
        started = self.clock()
        deadline = started + timeout
        interval = 0.25
        while True:
            if self._try_create() or self._try_take_over():
                self.waited_seconds = round(self.clock() - started, 2)
                return True
            if while_waiting is not None and while_waiting():
                self.waited_seconds = round(self.clock() - started, 2)
                return False  # the caller needs the claim no more
            if self.clock() >= deadline:
                holder = self.waited_for_execution or self.waited_for
                raise ActionFailure(
                    "stack_busy",
                    f"execution {holder} is still healing stack "
                    f"{self.stack_name or self.stack_id} (it holds the claim {self.name}, a "
                    f"Mistral environment); nothing was done. Heal again once it has ended. "
                    f"If that execution is dead, its claim is taken over after "
                    f"{self.stale_after:.0f} s without a heartbeat, or delete it: mistral "
                    f"environment-delete {self.name}",
                    owner=self.waited_for, execution=self.waited_for_execution,
                    claim=self.name, waited_seconds=round(self.clock() - started, 2))
            self.sleep(interval)
            interval = min(interval * 1.5, MAX_WAIT_POLL)

    def _variables(self, **extra):
        variables = {"owner": self.owner, "stack": self.stack_id,
                     "heartbeat": timeutil.iso(timeutil.utcnow())}
        if self.execution:
            variables["execution"] = self.execution
        if self.stack_name:
            variables["stack_name"] = self.stack_name
        variables.update(extra)
        return variables

    def _try_create(self):
        if not self.store.create_environment(
                self.name, self._variables(),
                description="selfheal: one heal of this stack at a time (claim)"):
            return False
        self.held = True
        self._refreshed = self.clock()
        return True

    def _holder(self):
        found = self.store.get_environment(self.name)
        return None if found is None else (found.get("variables") or {})

    def _try_take_over(self):
        variables = self._holder()
        if variables is None:
            return False  # released meanwhile: the next create may win
        self.waited_for = variables.get("owner")
        self.waited_for_execution = variables.get("execution")
        if self.waited_for == self.owner:  # our own claim
            self.held = True
            self._refreshed = self.clock()
            return True
        if self._age(variables) < self.stale_after:
            return False
        stale_owner = self.waited_for
        marker = _reap_name(self.stack_id, stale_owner)
        if not self.store.create_environment(marker, {"reaper": self.owner,
                                                      "stale_owner": stale_owner}):
            return False  # another waiter is taking it over
        try:
            current = self._holder()
            if (current is None or current.get("owner") != stale_owner
                    or self._age(current) < self.stale_after):
                return False  # released, taken or alive again: wait as before
            try:
                self.store.update_environment(self.name, self._variables(took_over_from=str(
                    stale_owner)))
            except ClaimGone:
                return False
        finally:
            self.store.delete_environment(marker)
        self.held = True
        self._refreshed = self.clock()
        self.took_over_from = stale_owner
        LOG.warning("stack %s: took over the claim of %s (no heartbeat for %s s)",
                    self.stack_id, stale_owner, self.stale_after)
        return True

    @staticmethod
    def _age(variables):
        beat = timeutil.parse_time(variables.get("heartbeat"))
        return (timeutil.utcnow() - beat).total_seconds() if beat else float("inf")

    # --- hold -------------------------------------------------------------------

    def verify(self):
        """Re-read the claim; raise ``claim_lost`` unless it is still ours.
        Called before each change of the stack."""
        self.check()
        if not self.held:
            return
        variables = self._holder()
        owner = (variables or {}).get("owner")
        if owner != self.owner:
            self._lose(owner)
        self.check()

    def refresh(self, force=False):
        """Keep the heartbeat fresh (at most one write every few seconds).

        :raises ActionFailure: ``claim_lost`` when the claim is gone or has
            another owner. A transient error is logged and tried again later.
        """
        self.check()
        if not self.held:
            return
        if not force and self.clock() - self._refreshed < REFRESH_EVERY:
            return
        self._refreshed = self.clock()
        try:
            variables = self._holder()
            if (variables or {}).get("owner") != self.owner:
                self._lose((variables or {}).get("owner"))
            else:
                self.store.update_environment(self.name, dict(
                    variables, heartbeat=timeutil.iso(timeutil.utcnow())))
        except ClaimGone:
            self._lose(None)
        self.check()

    def _lose(self, new_owner):
        self.lost = new_owner or "nobody (the claim was deleted)"
        self.held = False

    def check(self):
        """Raise ``claim_lost`` if the claim is known to be no longer ours."""
        if self.lost:
            raise ActionFailure(
                "claim_lost",
                f"the claim on stack {self.stack_name or self.stack_id} ({self.name}) now "
                f"belongs to {self.lost}: this heal stopped so that only one heal changes the "
                "stack. See changes for what it did; heal again if the member is still "
                "dead.", new_owner=self.lost, claim=self.name)

    def start_heartbeat(self, interval=REFRESH_EVERY):
        """Refresh the heartbeat from a thread every ``interval`` seconds."""
        stop = threading.Event()

        def beat():
            while not stop.wait(interval):
                try:
                    self.refresh(force=True)
                except ActionFailure:
                    return  # lost: check() tells the heal
                except Exception:
                    LOG.exception("stack %s: heartbeat of the claim failed", self.stack_id)

        thread = threading.Thread(target=beat, name=f"claim-{self.stack_id}", daemon=True)
        self._beating = (stop, thread)
        thread.start()

    def stop_heartbeat(self):
        if self._beating:
            stop, thread = self._beating
            stop.set()
            thread.join(timeout=5)
            self._beating = None

    def release(self):
        """Delete the claim if it is still ours (never a successor's)."""
        self.stop_heartbeat()
        if not self.held:
            return
        self.held = False
        if (self._holder() or {}).get("owner") == self.owner:
            self.store.delete_environment(self.name)

    def summary(self):
        """What the result says about the claim."""
        return {"name": self.name, "waited_for": self.waited_for_execution or self.waited_for,
                "waited_seconds": self.waited_seconds, "took_over_from": self.took_over_from}
