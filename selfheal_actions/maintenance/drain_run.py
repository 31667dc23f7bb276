# SPDX-License-Identifier: Apache-2.0
"""Carry out a drain plan and verify every instance.

:class:`DrainRun` carries out a plan from :mod:`selfheal_actions.maintenance.drain_plan`
against a :class:`NovaApi` (or a fake with the same methods), the way
:class:`selfheal_actions.hosts.evacuation_run.EvacuationRun` carries out an
evacuation: at most ``concurrency`` migrations in flight, their outcome read
from Nova's migration records (one list per poll for the whole host, never
one call per instance per second), a failed one retried on another host,
and every instance verified: its migration ``completed`` (live) or
``confirmed`` (cold), on a different host, in the state it had before.

Two kinds of entry do not move (see the policies in
:mod:`selfheal_actions.maintenance.drain_plan`): ``stop`` ones are marked
and stopped on the host, then verified stopped; ``owner`` ones wait, up to
``owner_window`` seconds, for their owner to move them (the host's server
list is read once per cycle), and then get the default policy. A member of
an anti-affinity server group starts moving (or stopping) only while fewer
than its group's limit of members are disrupted (:func:`drain_plan.disrupted`,
read from Nova for the other members, wherever they are).
"""

import logging
import time

from novaclient import exceptions as nova_exc

from selfheal_actions.common import compute
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import change
from selfheal_actions.common.results import raise_if_forbidden
from selfheal_actions.maintenance import drain_plan as plans
from selfheal_actions.moves import records
from selfheal_actions.moves.windowed_run import FAST_POLL
from selfheal_actions.moves.windowed_run import FINISHED
from selfheal_actions.moves.windowed_run import PENDING
from selfheal_actions.moves.windowed_run import VERIFYING
from selfheal_actions.moves.windowed_run import WindowedRun

LOG = logging.getLogger(__name__)

MIGRATING = "migrating"
#: seconds after which a server group's turnstile counts as left by a dead run
GROUP_LOCK_STALE = 60
#: waiting for the owner to move the instance
OWNER_WAIT = "owner_wait"

#: what to ask Nova when a moved server is not in the state it had
_RESTORE = {("active", "stopped"): ("start", "started"),
            ("stopped", "active"): ("stop", "stopped"),
            ("paused", "active"): ("pause", "paused"),
            ("active", "paused"): ("unpause", "unpaused")}


class DrainOptions:
    """How a run behaves (validated inputs)."""

    def __init__(self, concurrency=4, max_attempts=3, target_hosts=(), timeout=1800,
                 poll_interval=2.0, candidate_hosts=(), cold_migration=plans.COLD_STOPPED,
                 owner_window=600, groups=None):
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = list(target_hosts)
        self.timeout = timeout
        self.poll_interval = poll_interval
        #: up and enabled hosts to retry on when the scheduler's pick failed
        self.candidate_hosts = list(candidate_hosts)
        self.cold_migration = cold_migration
        #: seconds an owner has to move a leave_to_owner instance
        self.owner_window = owner_window
        #: server id -> limited group (:func:`drain_plan.group_limits`)
        self.groups = groups or {}


class DrainRun(WindowedRun):
    """Move the instances of one host away and verify them.

    :param api: a :class:`selfheal_actions.common.compute.NovaApi` or a fake.
    :param host: the host to empty (its nova-compute up and disabled).
    :param entries: plan entries (:func:`drain_plan.plan`); updated in place
        with ``outcome``, ``destination``, ``attempts`` and so on.
    :param options: :class:`DrainOptions`.
    """

    IN_FLIGHT = MIGRATING
    INTERNAL = ("began", "phase", "already", "restore_asked", "confirm_asked",
                "owner_deadline", "stop_asked")
    LOG_PREFIX = "drain "
    log = LOG

    def __init__(self, api, host, entries, options, clock=time.monotonic, sleep=time.sleep,
                 on_cycle=None):
        super().__init__(api, host, options, clock=clock, sleep=sleep, on_cycle=on_cycle)
        self.work = [e for e in entries if e["decision"] in ("move", "adopt", "stop", "owner")]
        for entry in entries:
            for key in ("destination", "migration_id", "migration_status", "seconds"):
                entry.setdefault(key, None)
            entry.setdefault("attempts", 0)
            entry.setdefault("attempt_log", [])
            if entry["decision"] == "skip":
                entry["outcome"], entry["phase"] = "skipped", FINISHED
            elif entry["decision"] == "leave":
                entry["outcome"], entry["phase"] = "left", FINISHED
            elif entry["decision"] == "stay":
                entry["outcome"], entry["phase"] = "stopped", FINISHED
            elif entry["decision"] == "owner":
                entry["phase"] = OWNER_WAIT
                entry["owner_deadline"] = clock() + options.owner_window
            elif entry["decision"] == "adopt":
                entry["phase"], entry["began"] = MIGRATING, clock()
            else:
                entry["phase"] = PENDING
        self._interval = FAST_POLL
        self._last_progress = self._progress()

    def _progress(self):
        return [(e["phase"], e["attempts"], e.get("migration_status")) for e in self.work]

    def _pause(self, elapsed):
        """Poll fast while things move; back off while Nova is busy."""
        pause = self._interval
        progress = self._progress()
        moved = progress != self._last_progress
        self._last_progress = progress
        self._interval = (FAST_POLL if moved
                          else min(self._interval * 1.5, self.options.poll_interval))
        return pause

    def _no_target_reason(self, entry):
        return "no_target_left: " + self._last_failure(entry)

    def _next_target(self, entry):
        """None for the scheduler, a host name, or False when none is left."""
        if entry["method"] == plans.STOP:
            return None
        tried = {a.get("destination") or a.get("target") for a in entry["attempt_log"]
                 if a["method"] == entry["method"]}
        tried.discard(None)
        if self.options.target_hosts:
            left = [h for h in self.options.target_hosts if h not in tried and h != self.host]
            return left[0] if left else False
        if not any(a["method"] == entry["method"] for a in entry["attempt_log"]):
            return None
        left = [h for h in self.options.candidate_hosts if h not in tried and h != self.host]
        return left[entry["attempts"] % len(left)] if left else None

    @staticmethod
    def _last_failure(entry):
        log = entry["attempt_log"]
        return log[-1].get("status") or "unknown" if log else "no attempt"

    def _may_start(self, entry):
        """An anti-affinity member waits while its group has ``limit``
        members disrupted (ours in flight, or any Nova shows disrupted)."""
        group = self.options.groups.get(entry["id"])
        if group is None:
            return True
        ours = {e["id"] for e in self.work if e["phase"] in (MIGRATING, VERIFYING)
                and e["method"] in (plans.LIVE, plans.COLD, plans.STOP)}
        count = 0
        for member in group["members"]:
            if member == entry["id"]:
                continue
            if member in ours:
                count += 1
                continue
            server = self.api.get_server(member)
            if server is not None and plans.disrupted(server):
                count += 1
        if count >= group["limit"]:
            entry["reason"] = (f"waiting: {count} of server group {group['name'] or group['id']}"
                               f" ({group['policy']}) disrupted, at most {group['limit']}")
            return False
        if entry["reason"] and entry["reason"].startswith("waiting: "):
            entry["reason"] = None
        return True

    def _group_gate(self, entry):
        """For a grouped member: take the group's turnstile, count again,
        and return the release callable, or None when it must wait.

        Drains of other hosts decide at the same moment; the turnstile (a
        Nova aggregate ``selfheal-lock-group-<id>``, whose unique name makes
        its creation atomic) makes count-then-request one step, and Nova
        records the request's task state before it answers, so the next
        holder counts it. A turnstile older than ``GROUP_LOCK_STALE``
        seconds (its holder died between the two calls) is taken over.
        """
        group = self.options.groups.get(entry["id"])
        if group is None:
            return lambda: None
        name = f"selfheal-lock-group-{group['id']}"[:255]
        try:
            lock = self.api.create_aggregate(name)
        except nova_exc.Conflict:
            held = self.api.find_aggregate(name)
            created = timeutil.parse_time((held or {}).get("created_at"))
            if held and created and (timeutil.utcnow() - created.replace(
                    tzinfo=timeutil.utcnow().tzinfo)).total_seconds() > GROUP_LOCK_STALE:
                self._drop_lock(held["id"])
            entry["reason"] = f"waiting: server group {group['name'] or group['id']} busy"
            return None
        if not self._may_start(entry):
            self._drop_lock(lock["id"])
            return None
        return lambda: self._drop_lock(lock["id"])

    def _drop_lock(self, aggregate_id):
        try:
            self.api.delete_aggregate(aggregate_id)
        except nova_exc.NotFound:
            pass

    def _start_move(self, entry, target):
        release = self._group_gate(entry)
        if release is None:
            return False
        try:
            return self._request_move(entry, target)
        finally:
            release()

    def _request_move(self, entry, target):
        if entry["method"] == plans.STOP:
            return self._stop(entry)
        entry.setdefault("began", self.clock())
        entry["attempts"] += 1
        attempt = {"method": entry["method"], "target": target, "destination": None,
                   "migration_id": None, "status": None}
        entry["attempt_log"].append(attempt)
        try:
            if entry["method"] == plans.LIVE:
                self.api.live_migrate(entry["id"], target)
            else:
                self.api.cold_migrate(entry["id"], target)
        except nova_exc.ClientException as error:
            return self._refused(entry, attempt, error)
        what = "live_migration_requested" if entry["method"] == plans.LIVE \
            else "cold_migration_requested"
        self.changes.append(change(f"server {entry['id']}", what, target=target or "scheduler"))
        entry["phase"] = MIGRATING
        LOG.info("drain %s %s: %s migration %d requested (target %s)", self.host, entry["name"],
                 entry["method"], entry["attempts"], target or "scheduler")
        return True

    def _refused(self, entry, attempt, error):
        raise_if_forbidden(error, self.changes)
        code, message = compute.client_error(error)
        attempt["status"] = f"refused: {message}"
        if code == 404:
            self._finish(entry, "skipped", "server_deleted")
            return False
        if code == 409 and "task_state" in message:
            # Someone else's move is in flight: pick it up, do not repeat it.
            entry["attempts"] -= 1
            entry["attempt_log"].pop()
            entry["decision"] = "adopt"
            entry["phase"] = MIGRATING
            return True
        attempt["destination"] = attempt["target"]
        self._after_failed_attempt(entry, f"{entry['method']}_migration_refused: {message}")
        return False

    def _after_failed_attempt(self, entry, reason):
        if entry["attempts"] < self.options.max_attempts:
            entry["phase"] = PENDING
            LOG.info("drain %s %s: attempt %d failed (%s), retrying", self.host, entry["name"],
                     entry["attempts"], reason)
            return
        if (entry["method"] == plans.LIVE and self.options.cold_migration == plans.COLD_FALLBACK
                and entry["vm_state_before"] in plans.COLD_STATES):
            # Live migration is not possible for it: move it cold (it restarts).
            LOG.info("drain %s %s: live migration failed %d times (%s), falling back to a "
                     "cold migration", self.host, entry["name"], entry["attempts"], reason)
            entry["method"] = plans.COLD
            entry["attempts"] = 0
            entry["phase"] = PENDING
            entry["fallback_reason"] = reason
            return
        self._finish(entry, "failed", reason)

    def _stop(self, entry):
        """Mark the server as stopped by us, then stop it; verified stopped."""
        entry.setdefault("began", self.clock())
        entry["attempts"] += 1
        try:
            self.api.set_server_metadata(entry["id"], plans.STOPPED_KEY, self.host)
            self.api.stop(entry["id"])
        except nova_exc.ClientException as error:
            raise_if_forbidden(error, self.changes)
            code, message = compute.client_error(error)
            if code == 404:
                self._finish(entry, "skipped", "server_deleted")
            else:
                self._finish(entry, "failed", f"stop_refused: {message}")
            return False
        self.changes.append(change(f"server {entry['id']}", "stopped_for_maintenance",
                                   host=self.host))
        entry["phase"] = VERIFYING
        return False  # a stop is not a migration in flight

    def _poll_owners(self):
        """Owners' instances: gone from the host -> moved by their owner;
        still there after the window -> the default policy."""
        waiting = self._in_phase(OWNER_WAIT)
        if not waiting:
            return
        on_host = {s["id"]: s for s in self.api.servers_on_host(self.host)}
        now = self.clock()
        for entry in waiting:
            server = on_host.get(entry["id"])
            if server is None:
                self._owner_moved(entry)
            elif now >= entry["owner_deadline"]:
                self._owner_window_over(entry, server)

    def _owner_moved(self, entry):
        server = self.api.get_server(entry["id"])
        if server is None:
            self._finish(entry, "removed_by_owner")
            return
        where = server.get("OS-EXT-SRV-ATTR:host")
        if where == self.host:
            return  # listed a moment ago without it: read again next cycle
        entry["destination"] = where
        entry["vm_state_after"] = records.vm_state(server)
        self._finish(entry, "moved_by_owner")

    def _owner_window_over(self, entry, server):
        if records.task_state(server) is not None:
            entry["reason"] = (f"owner's task {records.task_state(server)} in progress after "
                               f"the {self.options.owner_window:.0f} s window")
            return  # the owner is at it: wait for it to end
        decision, method, reason = plans.decide(
            server, None, self.options.cold_migration, plans.DEFAULT_POLICY, self.host)
        entry["owner_window_over"] = True
        entry["decision"], entry["method"] = decision, method
        entry["reason"] = f"still on the host after the {self.options.owner_window:.0f} s " \
                          "owner window: default policy"
        LOG.info("drain %s %s: owner did not move it within %.0f s, %s", self.host,
                 entry["name"], self.options.owner_window, decision)
        if decision == "move":
            entry["phase"] = PENDING
        else:
            self._finish(entry, "left", reason)

    # reading migration records
    def _poll_migrations(self):
        self._poll_owners()
        watching = self._in_phase(MIGRATING)
        if not watching:
            return
        migrations = self.api.migrations_from(self.host, since=self._since())
        latest = {}
        for method in (plans.LIVE, plans.COLD):
            typed = [m for m in migrations if plans.method_of(m) == method]
            latest[method] = records.latest_migrations(typed)
        for entry in watching:
            migration = latest[entry["method"]].get(entry["id"])
            if migration is None or migration["id"] in self._finished_ids(entry):
                continue
            self._note_migration(entry, migration)
            phase = plans.migration_phase(migration)
            if phase == plans.DONE:
                entry["phase"] = VERIFYING
            elif phase == plans.AWAITING_CONFIRM:
                self._confirm(entry)
            elif phase == plans.FAILED:
                self._adopted_attempt_failed(entry, migration, "move", method=entry["method"])
                where = f" to {migration['dest_compute']}" if migration.get("dest_compute") else ""
                self._after_failed_attempt(
                    entry, f"{entry['method']}_migration_{migration.get('status')}{where}")

    def _confirm(self, entry):
        """A finished cold migration waits for confirmation; confirm it once."""
        if entry.get("confirm_asked") == entry["migration_id"]:
            return
        try:
            self.api.confirm_migration(entry["id"])
        except nova_exc.ClientException as error:
            code, message = compute.client_error(error)
            if code == 409:
                return  # not VERIFY_RESIZE yet: next poll
            self._finish(entry, "failed", f"confirm_refused: {message}")
            return
        entry["confirm_asked"] = entry["migration_id"]
        self.changes.append(change(f"server {entry['id']}", "cold_migration_confirmed",
                                   migration_id=entry["migration_id"]))

    def _check_landed(self, entry, server):
        if entry["method"] == plans.STOP:
            self._check_stopped(entry, server)
            return
        host = server.get("OS-EXT-SRV-ATTR:host")
        if records.task_state(server) is not None:
            return  # Nova has not finished with it yet
        if host == self.host:
            self._finish(entry, "failed", "still_on_host after a finished migration")
            return
        entry["destination"] = host
        actual = records.vm_state(server)
        entry["vm_state_after"] = actual
        if actual == "error":
            self._finish(entry, "failed", f"error_after_migration on {host}")
            return
        expected = entry["expected_state"] or actual
        if actual == expected:
            outcome = "migrated" if entry["method"] == plans.LIVE else "cold_migrated"
            self._finish(entry, outcome)
            return
        if entry.get("restore_asked"):
            return  # asked already; wait for Nova to get there
        entry["restore_asked"] = True
        verb, done = _RESTORE.get((expected, actual), (None, None))
        if verb is None:
            self._finish(entry, "failed", f"state_not_restored: {actual}, was {expected}")
            return
        try:
            getattr(self.api, verb)(entry["id"])
        except nova_exc.ClientException as error:
            self._finish(entry, "failed", f"state_not_restored: {error}")
            return
        self.changes.append(change(f"server {entry['id']}", done))


    def _check_stopped(self, entry, server):
        if records.task_state(server) is not None:
            return  # powering off
        actual = records.vm_state(server)
        entry["vm_state_after"] = actual
        if actual == "stopped":
            self._finish(entry, "stopped")
        elif actual not in ("active",):
            self._finish(entry, "failed", f"not_stopped: {actual}")
