# SPDX-License-Identifier: Apache-2.0
"""Replace a dead member of a Heat-managed group: mark it unhealthy, update
the stack, and verify the replacement.

This is what Heat's sample autohealing workflow does in two bare calls, plus
what it lacks: it finds the member anywhere in nested stacks (by resource
name or physical id, such as the server UUID an Aodh alarm carries), survives
repeated alarms (an update already running is waited for, and a member it
already replaced is a no-op), waits for the update within a bound and checks
that the member really was replaced.
"""

import logging
import time

from heatclient import exc as heat_exc
from keystoneauth1 import exceptions as ks_exc

from selfheal_actions.common import clients
from selfheal_actions.common import inputs
from selfheal_actions.common import mistral_api
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import forbidden
from selfheal_actions.common.timeutil import parse_time
from selfheal_actions.common.timeutil import utcnow
from selfheal_actions.heat import orchestration
from selfheal_actions.heat import stack_claim
from selfheal_actions.heat import update_record
from selfheal_actions.heat.orchestration import UpdateInProgress

LOG = logging.getLogger(__name__)

#: stack polls start fast (a member replacement takes seconds) and slow down
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 2.0
#: how often a heal waiting for the stack's claim tries to mark its member
PREMARK_EVERY = 1.0
#: how many members deleted from a group are searched for a removed server
DELETED_MEMBERS_SEARCHED = 20
HEALTHY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "CHECK_COMPLETE", "RESUME_COMPLETE",
           "ADOPT_COMPLETE")


def in_progress(status):
    return status.endswith("_IN_PROGRESS")


def is_failed(status):
    return status.endswith("_FAILED") or status.startswith("DELETE_")


def find_member(resources, member):
    """The resource ``member`` names (physical id first, then resource name).

    :returns: the resource dict, or None when nothing matches.
    :raises ActionFailure: ``ambiguous_member`` when a name matches several.
    """
    by_id = [r for r in resources if r["physical_id"] == member]
    if by_id:
        return by_id[0]
    by_name = [r for r in resources if r["name"] == member]
    if len(by_name) > 1:
        raise ActionFailure(
            "ambiguous_member",
            f"{len(by_name)} resources are named '{member}' in nested stacks; give the "
            "member's physical id (e.g. the server UUID) instead.",
            candidates=[{"stack": r["stack"], "physical_id": r["physical_id"]}
                        for r in by_name])
    return by_name[0] if by_name else None


def _stack_id(identity):
    return (identity or "").rsplit("/", 1)[-1]


def group_members(resources, group):
    """Names of the members of ``group`` (the resources of its nested stack)."""
    return sorted((r["name"] for r in resources
                   if group["physical_id"] and _stack_id(r["stack"]) == group["physical_id"]),
                  key=lambda n: (len(n), n))


def check_replaceable(resource, resources=()):
    """Refuse members whose replacement is not what an alarm should cause.

    A member of a group may itself be a nested stack (the shipped template's
    members are: a server and its alarms); replacing it is the heal. A group
    or a stack that is not a group's member would rebuild everything in it.
    """
    if resource["nested"] and not (resource["type"] not in orchestration.GROUP_TYPES
                                   and _is_group_member(resource, resources)):
        members = group_members(resources, resource)
        if members:
            names = ", ".join(f"'{shown_name}'" for shown_name in members[:5])
            hint = (f"Name one member of the group: its resource name (one of {names}"
                    f"{', ...' if len(members) > 5 else ''}) or the physical id of a "
                    "resource in it (e.g. the server UUID an alarm carries).")
        else:
            hint = ("Name one member of a group: its resource name or the physical id of "
                    "a resource in it (e.g. the server UUID an alarm carries).")
        raise ActionFailure(
            "member_not_replaceable",
            f"'{resource['name']}' is a {resource['type']} (a group or nested stack): "
            f"marking it would rebuild everything in it. {hint}",
            member=resource["name"], type=resource["type"], members=members[:20])
    if resource["status"].startswith("DELETE_") and not resource["status"].endswith(
            "_IN_PROGRESS"):
        raise ActionFailure(
            "member_not_replaceable",
            f"'{resource['name']}' is being deleted ({resource['status']}); nothing to heal.",
            member=resource["name"], status=resource["status"])


def _is_group_member(resource, resources):
    """``resource`` sits directly in the nested stack of a group."""
    stack = _stack_id(resource["stack"])
    return any(r["type"] in orchestration.GROUP_TYPES and r["physical_id"] == stack
               for r in resources)


def _bounded(text, limit=500):
    """``text`` cut to ``limit`` characters (Heat's reasons can be long)."""
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + "..."


def _moment(name, value):
    text = inputs.text(name, value, required=False)
    if text is None:
        return None
    moment = parse_time(text)
    if moment is None:
        raise InvalidInput(f"input '{name}' must be an ISO 8601 time such as "
                           f"2026-11-22T10:00:00Z, got {value!r}")
    return moment


class _OwnUpdateFailed(Exception):
    """Our own update ended ``UPDATE_FAILED`` (``root``: the stack then)."""

    def __init__(self, root):
        super().__init__(root["status"])
        self.root = root


class MarkUnhealthyAction(SelfhealAction):
    """Replace one member of a Heat stack: mark it unhealthy, update the stack
    with ``existing=true``, wait, and verify that Heat replaced it.

    :param stack: the root stack (name or id): where the member is searched
        (in nested stacks too) and which is updated.
    :param member: the member as a resource name (e.g. ``"2"`` in a
        ResourceGroup) or a physical id (e.g. the server UUID of an Aodh
        event alarm). Physical ids are unique; a name that exists in several
        nested stacks is refused as ambiguous.
    :param reason: why it is unhealthy (shown in Heat's resource status
        reason); defaults to one naming this workflow execution.
    :param since: when the failure was seen (ISO 8601 UTC, e.g. the alarm
        event's ``generated``): a member rebuilt after that moment was
        already replaced by an earlier alarm and is left alone. Empty: only
        an update this action waited for counts as an earlier heal.
    :param timeout: seconds to wait for running and own stack updates, and
        for a group being resized by a scaling signal (an update would
        supersede the resize, so the heal waits for it before it marks).
    :param nested_depth: how deep to search nested stacks.
    :param stale_after: seconds without a heartbeat after which the claim on
        the stack of a heal that died is taken over.
    :param gather_seconds: after waiting for another heal of the stack, how
        long to wait before its own update, so that the heals queued behind
        it mark their members and one update replaces them all.
    :param retries: how many times an update of selfheal that left the stack
        ``UPDATE_FAILED`` is run again, by this heal or by the next heals of
        the stack (at most ``1 + retries`` updates for one failure; 0: never
        retried). A stack failed by an update selfheal did not start is never
        touched (``stack_failed``). See ``selfheal_actions.heat.update_record``.
    :param retry_delay: seconds between a failed update and its retry.
    :param rounds: after its own member is replaced, how many more updates
        this heal runs, while it holds the stack's claim, for members that
        heals waiting for the claim marked meanwhile (each pauses
        ``gather_seconds`` first); 0: none. The waiting heals then find
        their members replaced without taking the claim.
    :param dry_run: report what would be marked and updated; change nothing.
    :returns: ``outcome`` (``replaced``, ``already_replaced`` when an earlier
        alarm's update replaced it, ``member_removed`` when the group no
        longer has it, e.g. after a scale-in: nothing to heal, or
        ``would_replace``), ``stack`` (id,
        name, status), ``member`` (name, stack, old_physical_id,
        new_physical_id, status), ``waited_for_updates`` (how many updates
        of others it waited for), ``claim`` (``name`` of the stack's claim,
        ``waited_for``: the heal that held it first, ``waited_seconds``,
        ``took_over_from``; null in a dry run), ``seconds``, and ``changes``.
        Before it changes anything it claims the root stack (one heal of a
        stack at a time, ``selfheal_actions.heat.stack_claim``), waiting
        within ``timeout``. Error reasons: ``invalid_input``,
        ``stack_not_found``, ``stack_busy`` (another heal held the stack's
        claim for all of ``timeout``; nothing was done), ``claim_lost``,
        ``stack_failed`` (the stack is in a failed state that is not
        selfheal's to retry: its detail failed_update is not_selfheal when
        someone else's update failed it, retries_exhausted when selfheal's
        updates failed ``1 + retries`` times; fix it first),
        ``member_not_found``,
        ``ambiguous_member``, ``member_not_replaceable``, ``update_timeout``,
        ``update_failed`` (an update of this heal failed ``1 + retries``
        times), ``replacement_not_verified``, ``heat_error``,
        ``configuration_error``, ``service_unreachable``.
    """

    action_name = "selfheal.mark_unhealthy"

    def __init__(self, stack, member, reason="", since="", timeout=600, nested_depth=5,
                 stale_after=60, gather_seconds=1.5, retries=2, retry_delay=5, rounds=2,
                 dry_run=False):
        self.stack = stack
        self.member = member
        self.reason = reason
        self.since = since
        self.timeout = timeout
        self.nested_depth = nested_depth
        self.stale_after = stale_after
        self.gather_seconds = gather_seconds
        self.retries = retries
        self.retry_delay = retry_delay
        self.rounds = rounds
        self.dry_run = dry_run

    def _arguments(self):
        return {
            "stack": inputs.text("stack", self.stack),
            "member": inputs.text("member", self.member),
            "reason": inputs.text("reason", self.reason, required=False),
            "since": _moment("since", self.since),
            "timeout": inputs.number("timeout", self.timeout, minimum=1, maximum=7200),
            "nested_depth": inputs.number("nested_depth", self.nested_depth, minimum=1,
                                          maximum=20, integer=True),
            "stale_after": inputs.number("stale_after", self.stale_after, minimum=10,
                                         maximum=3600),
            "gather_seconds": inputs.number("gather_seconds", self.gather_seconds,
                                            minimum=0, maximum=60),
            "retries": inputs.number("retries", self.retries, minimum=0, maximum=10,
                                     integer=True),
            "retry_delay": inputs.number("retry_delay", self.retry_delay, minimum=0,
                                         maximum=600),
            "rounds": inputs.number("rounds", self.rounds, minimum=0, maximum=10,
                                    integer=True),
            "dry_run": inputs.boolean("dry_run", self.dry_run),
        }

    def execute(self, context):
        args = self._arguments()
        self.dry_run = args["dry_run"]
        reason = args["reason"] or (
            f"marked unhealthy by selfheal (execution {clients.execution_id(context)})")
        owner, execution = clients.run_owner(context), clients.execution_id(context)

        def claims(stack_id, clock, sleep, stack_name=None):
            return stack_claim.StackClaim(
                mistral_api.mistral(context), stack_id, owner,
                stale_after=args["stale_after"], clock=clock, sleep=sleep,
                execution=execution, stack_name=stack_name)

        def records(stack_id, stack_name=None):
            return update_record.UpdateRecord(mistral_api.mistral(context), stack_id,
                                              stack_name=stack_name)

        heal = MemberHealing(orchestration.HeatApi(clients.heat(context)), args, reason,
                             claims=claims, records=records, owner=owner, execution=execution)
        try:
            return heal.run()
        except heat_exc.HTTPException as e:
            raise orchestration.heat_failure(e, "answer", heal.changes) from None
        except ks_exc.ConnectionError as e:
            raise ActionFailure("service_unreachable",
                                f"cannot reach the orchestration API: {type(e).__name__}. Check "
                                "the catalog or the explicit endpoint.",
                                changes=heal.changes) from None
        except mistral_api.MistralApiError as e:
            if e.http_status == 403:
                raise forbidden(e, heal.changes) from None
            raise ActionFailure("api_error",
                                f"Mistral refused the stack's claim (an environment): {e}. "
                                "The heal needs environments:create, get, update and delete "
                                "in Mistral's policy.", changes=heal.changes,
                                http_status=e.http_status) from None


class MemberHealing:
    """One run of :class:`MarkUnhealthyAction` (state between the steps)."""

    def __init__(self, heat, args, reason, clock=time.monotonic, sleep=time.sleep,
                 claims=None, records=None, owner=None, execution=None):
        self.heat = heat
        self.args = args
        self.reason = reason
        self.clock = clock
        self.sleep = sleep
        #: ``claims(stack_id, clock, sleep, stack_name=...)`` -> a StackClaim
        #: (None: no claim, e.g. in unit tests of the decisions)
        self.claims = claims
        self.claim = None
        #: ``records(stack_id, stack_name=...)`` -> an UpdateRecord (None: the
        #: failure of an update is known as ours only within this run)
        self.records = records
        self.record = None
        self.owner, self.execution = owner, execution
        #: updates of selfheal in a row for the stack's current failure,
        #: counting the one this heal runs next
        self.attempts = 1
        #: the member as first found (a retry finds its failed replacement)
        self._first = None
        self._root_id = None
        self._premarked = False
        self._next_premark = 0.0
        self._marked_at = None  # the stack's updated_time when this heal marked
        self._gather = False
        self.started = utcnow()
        self.deadline = clock() + args["timeout"]
        self.waited = 0
        self.own_update_started = None  # the stack's updated_time once ours ran
        self.changes = []

    def run(self):
        t0 = self.clock()
        root = self._root_stack()
        if self.claims is None or self.args["dry_run"]:
            if self.records is not None:  # read only: whose failure a failed stack's is
                self.record = self.records(root["id"], stack_name=root["name"])
            return self._heal(root, t0)
        # one heal of a stack at a time: keyed on the id, so that a heal
        # given the stack's name and one given its id share the claim
        self.claim = self.claims(root["id"], clock=self.clock, sleep=self.sleep,
                                 stack_name=root["name"])
        self._root_id = root["id"]
        claimed = self.claim.acquire(timeout=max(0.0, self.deadline - self.clock()),
                                     while_waiting=self._mark_while_waiting)
        if not claimed:
            # the member this heal marked while it waited was replaced by the
            # holder's update: only reading is left (no claim needed), which
            # says already_replaced
            self.waited += 1
            return self._heal(self.heat.stack(root["id"]) or root, t0)
        self.claim.start_heartbeat()
        if self.records is not None:
            self.record = self.records(root["id"], stack_name=root["name"])
        if self.claim.waited_for:
            # another heal of the stack ran first: a member named by resource
            # name and rebuilt since this heal started was rebuilt by it
            self.waited += 1
            self._gather = True
        try:
            return self._heal(self.heat.stack(root["id"]) or root, t0)
        finally:
            try:
                self.claim.release()
            except Exception:  # the claim goes stale and is taken over
                LOG.exception("stack %s: releasing the claim failed", root["id"])

    def _heal(self, root, t0):
        member = self.args["member"]
        while True:
            if in_progress(root["status"]):
                root = self._wait_for_update(root, own=False)
            retrying = False
            if is_failed(root["status"]):
                self._retry_or_refuse(root)
                retrying = True
            resources = self.heat.resources(root["identity"], self.args["nested_depth"])
            resource = self._locate(root, resources, member, retrying)
            if resource is None:
                if self._deleting(resources) and self.clock() < self.deadline:
                    # a scale-in is deleting members: it may be this one's;
                    # decide once it has ended
                    self.sleep(MAX_POLL_SECONDS)
                    root = self.heat.stack(root["id"]) or root
                    continue
                return self._already_replaced_or_unknown(root, resources, t0)
            check_replaceable(resource, resources)
            if resource["status"] == "DELETE_IN_PROGRESS":
                # a scale-in is removing it: wait, then decide (member_removed)
                root = self._wait_member_deleted(root, resource)
                continue
            if self._first is None:
                self._first = dict(resource, physical_id=resource.get(
                    "original_physical_id", resource["physical_id"]))
            if resource["physical_id"] != member and self._rebuilt_since_failure(resource):
                return self._result("already_replaced", root, resource, resource, t0)
            if self.args["dry_run"]:
                return self._would_replace(root, resource, t0)
            if self._resizing_groups(resources):
                # a scaling signal is resizing a group: an update now would
                # supersede the resize (the scale-up lost; on the lab a heal
                # once hung in it); wait, then decide again
                root = self._wait_for_resize(root, resources)
                continue
            try:
                self._check_claim()
                self._mark(resource)
                if self._gather:
                    # the heals queued behind this one mark their members now
                    # that no update runs: a moment, and one update replaces
                    # them all
                    self._gather = False
                    self.sleep(self.args.get("gather_seconds") or 0)
                    root = self.heat.stack(root["id"]) or root
                before = root["updated_time"]
                self._check_claim()
                self.own_update_started = None
                self.heat.update_existing(root["identity"])
            except UpdateInProgress:
                # Another alarm's update runs: wait for it, then decide again
                # (it may have replaced our member already).
                root = self._wait_for_update(self.heat.stack(root["id"]), own=False)
                continue
            self.changes.append(change(f"stack {root['name']}", "updated", existing=True,
                                       attempt=self.attempts))
            try:
                root = self._wait_for_update(self.heat.stack(root["id"]), own=True,
                                             before=before)
            except _OwnUpdateFailed as failed:
                # ours failed: _retry_or_refuse decides at the top of the loop
                root = failed.root
                self._failed_own = dict(root)
                delay = self.args.get("retry_delay") or 0
                if self.attempts <= self.args.get("retries", 0):
                    if self.clock() + delay >= self.deadline:
                        raise ActionFailure(
                            "update_failed",
                            f"the update of stack {root['name']} ended {root['status']} "
                            f"({_bounded(root['status_reason'])}) and no time is left within "
                            f"timeout ({self.args['timeout']} s) to retry it. The next heal "
                            "of the stack retries it (the member is still marked).",
                            changes=self.changes, stack=root["id"], status=root["status"],
                            attempts=self.attempts) from None
                    self.sleep(delay)
                    root = self.heat.stack(root["id"]) or root
                continue
            self._forget_record()
            result = self._verify(root, self._first, t0)
            self._next_rounds(root)
            result["stack"]["status"] = (self.heat.stack(root["id"]) or root)["status"]
            return result

    # --- steps -----------------------------------------------------------

    _failed_own = None  # the stack as our own update left it failed, in this run

    def _retry_or_refuse(self, root):
        """The stack is failed: go on only if it failed in an update of
        selfheal with retries left (``self.attempts`` then counts the retry);
        else raise ``update_failed`` (ours, in this run), or ``stack_failed``."""
        record = None
        if self.record is not None:
            record = self.record.read()
        if self._failed_own and self._failed_own["updated_time"] == root["updated_time"]:
            record = dict(record or {}, updated_time=root["updated_time"],
                          attempts=max(self.attempts, update_record.attempts_of(record)))
        decision = update_record.decide(root, record, self.args.get("retries", 0))
        failure = f"{root['status']} ({_bounded(root['status_reason'])})"
        if decision["decision"] == "retry":
            self.attempts = decision["attempts"] + 1
            LOG.warning("stack %s: selfheal's update %s failed (%s); retry %s of %s",
                        root["id"], decision["attempts"], root["status_reason"],
                        decision["attempts"], self.args.get("retries", 0))
            return
        if decision["decision"] == "exhausted":
            fix = (f"Fix the cause (`openstack stack event list --nested-depth 5 "
                   f"{root['name']}`), then run `openstack stack update --existing "
                   f"{root['name']}`: once the stack is healthy, alarms heal it again.")
            if self._failed_own:
                raise ActionFailure(
                    "update_failed",
                    f"the update of stack {root['name']} ended {failure}, "
                    f"{decision['attempts']} updates of selfheal in a row (retries: "
                    f"{self.args.get('retries', 0)}). The member is still marked unhealthy. "
                    + fix, changes=self.changes, stack=root["id"], status=root["status"],
                    attempts=decision["attempts"])
            raise ActionFailure(
                "stack_failed",
                f"stack {root['name']} is {failure}: selfheal's own updates failed "
                f"{decision['attempts']} times in a row, so it is not updated again. " + fix,
                changes=self.changes, stack=root["id"], status=root["status"],
                failed_update="retries_exhausted", attempts=decision["attempts"])
        raise ActionFailure(
            "stack_failed",
            f"stack {root['name']} is {failure}, left so by an update selfheal did not "
            f"start (updated {root['updated_time']}); selfheal leaves it untouched: an update "
            "now would act on someone else's broken change. The stack's owner should read "
            f"`openstack stack event list --nested-depth 5 {root['name']}`, fix the template "
            "or the cause and update the stack; alarms heal it again once it is healthy.",
            changes=self.changes, stack=root["id"], status=root["status"],
            failed_update="not_selfheal")

    def _locate(self, root, resources, member, retrying):
        """The member's resource now. On a retry, the member as first found
        (by its name and stack: its failed replacement has another physical
        id), or any failed resource with the member's old name."""
        if retrying and self._first is not None:
            same = [r for r in resources if r["name"] == self._first["name"]
                    and r["stack"] == self._first["stack"]]
            if same:
                return same[0]
        found = find_member(resources, member)
        if found is None and retrying:
            return self._failed_replacement(root, resources, member)
        return found

    def _failed_replacement(self, root, resources, member):
        """A member named by a physical id that a failed update of ours
        replaced with a resource that failed too: that resource."""
        history = self.heat.events_of_physical_id(root["identity"], member,
                                                  self.args["nested_depth"])
        if not history:
            return None
        current = [r for r in resources if r["name"] == history[0]["name"]
                   and history[0]["stack"] in (None, r["stack"])
                   and r["status"].endswith("_FAILED")]
        if not current:
            return None
        return dict(current[0], original_physical_id=member)

    def _next_rounds(self, root):
        """Coalescing, next rounds: while this heal holds the claim, members
        that waiting heals marked during its update (they mark as soon as no
        update runs) are replaced by one more update each round. Best
        effort: a round that cannot run or fails leaves the marked members
        to their own heals (which then hold the claim in turn)."""
        if self.claim is None:
            return
        for number in range(2, 2 + (self.args.get("rounds") or 0)):
            gather = self.args.get("gather_seconds") or 0
            if self.clock() + gather >= self.deadline:
                return
            self.sleep(gather)
            root = self.heat.stack(root["id"])
            if root is None or in_progress(root["status"]) or is_failed(root["status"]):
                return
            resources = self.heat.resources(root["identity"], self.args["nested_depth"])
            marked = sorted(r["name"] for r in resources if r["status"] == "CHECK_FAILED")
            if not marked or self._resizing_groups(resources):
                return
            before = root["updated_time"]
            self.attempts = 1
            self.own_update_started = None
            try:
                self._check_claim()
                self.heat.update_existing(root["identity"])
            except (UpdateInProgress, ActionFailure):
                return
            self.changes.append(change(f"stack {root['name']}", "updated", existing=True,
                                       attempt=1, round=number, marked=marked[:20]))
            try:
                root = self._wait_for_update(self.heat.stack(root["id"]), own=True,
                                             before=before)
            except (_OwnUpdateFailed, ActionFailure):
                LOG.warning("stack %s: round %s of heal %s did not complete", root["id"],
                            number, self.execution)
                return  # recorded: the next heal retries it
            self._forget_record()

    def _resizing_groups(self, resources):
        """Names of the groups whose nested stack is being changed while the
        root stack is not: a resize by a scaling policy's signal."""
        return sorted(r["name"] for r in resources
                      if r["type"] in orchestration.GROUP_TYPES and r["physical_id"]
                      and in_progress((self.heat.stack(r["physical_id"]) or {}).get("status", "")))

    def _pause(self, interval):
        """Sleep ``interval`` between two polls; return the next one (1.5x,
        at most MAX_POLL_SECONDS): quick for short waits, light on Heat for
        long ones."""
        self.sleep(interval)
        return min(interval * 1.5, MAX_POLL_SECONDS)

    def _wait_for_resize(self, root, resources):
        """Poll until no group of the stack is resizing; return the root
        stack. At the timeout: update_timeout, nothing changed by this wait."""
        self.waited += 1
        interval = FIRST_POLL_SECONDS
        while True:
            resizing = self._resizing_groups(resources)
            if not resizing:
                return self.heat.stack(root["id"]) or root
            if self.clock() > self.deadline:
                raise ActionFailure(
                    "update_timeout",
                    f"group {', '.join(resizing)} of stack {root['name']} was still resizing "
                    f"(a scaling signal) after {self.args['timeout']} s, so the stack was not "
                    "updated: an update would cancel the resize. Check `openstack stack show` "
                    "of the group's nested stack; the next alarm heals the member.",
                    changes=self.changes, stack=root["id"], groups=resizing)
            interval = self._pause(interval)

    def _wait_member_deleted(self, root, resource):
        """Poll until ``resource`` (being deleted, e.g. by a scale-in) is
        gone; return the root stack. At the timeout: member_not_replaceable."""
        interval = FIRST_POLL_SECONDS
        while True:
            if self.clock() > self.deadline:
                raise ActionFailure(
                    "member_not_replaceable",
                    f"'{resource['name']}' was still being deleted (DELETE_IN_PROGRESS) after "
                    f"{self.args['timeout']} s; nothing to heal.", changes=self.changes,
                    member=resource["name"], status=resource["status"])
            interval = self._pause(interval)
            resources = self.heat.resources(root["identity"], self.args["nested_depth"])
            now = [r for r in resources if r["name"] == resource["name"]
                   and r["stack"] == resource["stack"]]
            if not now or now[0]["status"] != "DELETE_IN_PROGRESS":
                return self.heat.stack(root["id"]) or root

    @staticmethod
    def _deleting(resources):
        """Members of a group being deleted now (a scale-in)."""
        return [r for r in resources if r["status"] == "DELETE_IN_PROGRESS"
                and _is_group_member(r, resources)]

    def _removed_with_its_member(self, resources, member):
        """A member named by the physical id of a resource inside a group
        member that a scale-in deleted whole (the shipped templates' members
        are nested stacks: a server and its alarms): the member's deleted
        stack still has its events. Returns ``(group member name, its stack)``
        or None."""
        groups = [r for r in resources if r["type"] in orchestration.GROUP_TYPES
                  and r["physical_id"]]
        for group in groups:
            deleted = self.heat.deleted_members(group["physical_id"])
            seen = set()
            for gone in deleted:
                if gone["physical_id"] in seen or len(seen) >= DELETED_MEMBERS_SEARCHED:
                    continue
                seen.add(gone["physical_id"])
                # the member's own stack (Heat lists no nested depth of a
                # deleted stack): where its server was
                if self.heat.events_of_physical_id(gone["physical_id"], member, 0):
                    return gone["name"], group
        return None

    def _record_update(self, updated_time):
        """Write down the update we started (whose failure is ours)."""
        if self.record is None:
            return
        try:
            self.record.write(updated_time, self.attempts, execution=self.execution,
                              owner=self.owner)
        except Exception:  # the heal goes on; only a later retry would miss it
            LOG.exception("stack %s: recording our update failed", self.record.stack_id)

    def _forget_record(self):
        if self.record is None or not self.record.written:
            return
        try:
            self.record.clear()
        except Exception:
            LOG.exception("stack %s: deleting the record of our update failed",
                          self.record.stack_id)

    def _mark_while_waiting(self):
        """Coalescing: while another heal holds the stack, mark this heal's
        member unhealthy (once, when no update runs), so that the holder's
        ``existing=true`` update replaces it with its own; this heal then
        finds it replaced. Only a member named by physical id (an alarm's
        server UUID): while that id exists it was not replaced, so marking
        it can never hit a fresh replacement. Marking is no update: it
        cannot cancel the holder's update. Once an update has run since and
        the member's physical id is gone, it returns True: the wait is over
        and only reading is left (``already_replaced``)."""
        member = self.args["member"]
        if self._premarked is None or self.clock() < self._next_premark:
            return False
        self._next_premark = self.clock() + PREMARK_EVERY
        try:
            root = self.heat.stack(self._root_id)
            if root is None or in_progress(root["status"]) or is_failed(root["status"]):
                return False
            if self._premarked and root["updated_time"] == self._marked_at:
                return False  # marked, and no update ran since: keep waiting
            resources = self.heat.resources(root["identity"], self.args["nested_depth"])
            by_id = [r for r in resources if r["physical_id"] == member]
            if not by_id:
                if self._premarked:
                    return True  # marked, then replaced by an update: done waiting
                self._premarked = None  # a name, or gone already: decide after the claim
                return False
            resource = by_id[0]
            check_replaceable(resource, resources)
            self._mark(resource)
            self._premarked = True
            self._marked_at = root["updated_time"]
        except UpdateInProgress:
            return False  # an update started meanwhile: try again later
        except ActionFailure:
            self._premarked = None  # not ours to mark: decided after the claim
        return False

    def _check_claim(self):
        """Before each change: the stack's claim is still ours (else claim_lost)."""
        if self.claim is not None:
            try:
                self.claim.verify()
            except ActionFailure as failure:
                failure.changes = list(self.changes)
                raise

    def _root_stack(self):
        root = self.heat.stack(self.args["stack"])
        if root is None:
            raise ActionFailure("stack_not_found",
                                f"no stack '{self.args['stack']}' is visible to this project. "
                                "Check the name or id (`openstack stack list`).",
                                stack=self.args["stack"])
        return root

    def _mark(self, resource):
        if resource["status"].endswith("_FAILED"):
            # already marked (by an earlier alarm or by hand), or a failed
            # replacement: the next update replaces it anyway
            return
        self.heat.mark_unhealthy(resource["stack"], resource["name"], self.reason)
        self.changes.append(change(f"resource {resource['name']}", "marked_unhealthy",
                                   stack=resource["stack"], physical_id=resource["physical_id"],
                                   reason=self.reason))

    def _wait_for_update(self, root, own, before=None):
        """Poll the root stack until no update runs; return it.

        :param own: the update is ours (its failure is ours to report).
        :param before: the stack's ``updated_time`` before our update, so an
            answer from before the update started is not taken as its end.
        """
        if not own:
            self.waited += 1
        interval = FIRST_POLL_SECONDS
        while True:
            if root is None:
                raise ActionFailure("stack_not_found", "the stack disappeared while healing",
                                    changes=self.changes)
            if own and self.own_update_started is None and root["updated_time"] != before:
                self.own_update_started = root["updated_time"]
                self._record_update(self.own_update_started)
            started = self.own_update_started is not None or in_progress(root["status"])
            if not in_progress(root["status"]) and (not own or started):
                break
            if own and root["updated_time"] not in (before, self.own_update_started):
                # ours ended and another alarm's update began: the member
                # tells whether ours did its job
                return root
            if self.clock() > self.deadline:
                raise ActionFailure(
                    "update_timeout",
                    f"stack {root['name']} was still {root['status']} after "
                    f"{self.args['timeout']} s. It may still finish: check `openstack stack "
                    "show`; raise 'timeout' for large stacks.",
                    changes=self.changes, stack=root["id"], status=root["status"])
            interval = self._pause(interval)
            root = self.heat.stack(root["id"])
        if own and root["status"] == "UPDATE_FAILED":
            raise _OwnUpdateFailed(root)
        if own and root["status"] != "UPDATE_COMPLETE":
            raise ActionFailure(
                "update_failed",
                f"the update of stack {root['name']} ended {root['status']}: "
                f"{root['status_reason']}. The member is still marked unhealthy; fix the "
                "cause and run `openstack stack update --existing`.",
                changes=self.changes, stack=root["id"], status=root["status"])
        return root

    def _rebuilt_since_failure(self, resource):
        """A member named by resource name was created after the failure was
        seen (``since``) or, without ``since``, by an update we waited for:
        an earlier alarm's heal replaced it. Healing it again would replace
        it twice for one failure. (A member named by physical id needs no
        such guess: while that id exists, it was not replaced.)"""
        if resource["status"] not in HEALTHY:
            return False
        since = self.args["since"] or (self.started if self.waited else None)
        if since is None:
            return False
        # creation_time, not updated_time: an update of the group touches
        # members in place without replacing them.
        created = parse_time(resource.get("creation_time"))
        return created is not None and created >= since.replace(microsecond=0)

    def _already_replaced_or_unknown(self, root, resources, t0):
        member = self.args["member"]
        history = self.heat.events_of_physical_id(root["identity"], member,
                                                  self.args["nested_depth"])
        if history:
            name = history[0]["name"]
            current = [r for r in resources if r["name"] == name
                       and (history[0]["stack"] in (None, r["stack"]))]
            if current and current[0]["status"] in HEALTHY:
                old = dict(current[0], physical_id=member)
                return self._result("already_replaced", root, old, current[0], t0)
            if not current and any(e["status"] == "DELETE_COMPLETE" for e in history):
                # deleted and not rebuilt: the group shrank (a scale-in), so
                # there is nothing left to heal
                old = {"name": name, "stack": history[0]["stack"], "physical_id": member,
                       "status": "DELETE_COMPLETE"}
                return self._result("member_removed", root, old, None, t0)
        if not history and not self._is_a_name(resources, member):
            removed = self._removed_with_its_member(resources, member)
            if removed is not None:
                name, group = removed
                stack = f"{group['name']}/{group['physical_id']}"
                current = [r for r in resources if r["name"] == name
                           and _stack_id(r["stack"]) == group["physical_id"]]
                old = {"name": name, "stack": stack, "physical_id": member,
                       "status": "DELETE_COMPLETE"}
                if current and current[0]["status"] in HEALTHY:  # replaced, not removed
                    return self._result("already_replaced", root, old, current[0], t0)
                return self._result("member_removed", root, old, None, t0)
        raise ActionFailure(
            "member_not_found",
            f"no resource named or with physical id '{member}' in stack {root['name']} or its "
            "nested stacks (nor in their history). Check the alarm's stack and instance.",
            stack=root["id"], member=member)

    @staticmethod
    def _is_a_name(resources, member):
        return any(r["name"] == member for r in resources)

    def _would_replace(self, root, resource, t0):
        changes = []
        if not resource["status"].endswith("_FAILED"):
            changes.append(change(f"resource {resource['name']}", "marked_unhealthy",
                                  stack=resource["stack"], physical_id=resource["physical_id"],
                                  reason=self.reason))
        changes.append(change(f"stack {root['name']}", "updated", existing=True))
        self.changes = changes
        return self._result("would_replace", root, resource, None, t0)

    def _verify(self, root, old, t0):
        resources = self.heat.resources(root["identity"], self.args["nested_depth"])
        new = [r for r in resources if r["name"] == old["name"] and r["stack"] == old["stack"]]
        if not new or new[0]["physical_id"] == old["physical_id"] or (
                new[0]["status"] not in HEALTHY):
            found = new[0] if new else None
            raise ActionFailure(
                "replacement_not_verified",
                f"the update of stack {root['name']} finished but member '{old['name']}' was "
                f"not replaced (now: {found and found['status']}, physical id "
                f"{found and found['physical_id']}). Check the resource's events.",
                changes=self.changes, member=old["name"], now=found)
        # Another alarm's update may have replaced it between our read and
        # our update (ours then changed nothing): say so, not "replaced".
        created = parse_time(new[0].get("creation_time"))
        ours_started = parse_time(self.own_update_started)
        if created and ours_started and created < ours_started:
            return self._result("already_replaced", root, old, new[0], t0)
        return self._result("replaced", root, old, new[0], t0)

    def _result(self, outcome, root, old, new, t0):
        member = {"name": old["name"], "stack": old["stack"],
                  "old_physical_id": old["physical_id"],
                  "new_physical_id": new["physical_id"] if new else None,
                  "status": (new or old)["status"]}
        return {"outcome": outcome, "changes": self.changes,
                "stack": {"id": root["id"], "name": root["name"], "status": root["status"]},
                "member": member, "waited_for_updates": self.waited,
                "claim": self.claim.summary() if self.claim else None,
                "seconds": round(self.clock() - t0, 2)}
