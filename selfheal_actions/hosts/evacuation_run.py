# SPDX-License-Identifier: Apache-2.0
"""Carry out an evacuation plan and verify every instance.

:class:`EvacuationRun` carries out a plan from
:mod:`selfheal_actions.hosts.evacuation_plan` against a :class:`NovaApi` (or a fake
with the same methods): it keeps at most ``concurrency`` evacuations in
flight, reads their outcome from Nova's migration records (a cheap list per
poll for the whole host, never one call per instance per second), retries a
failed one on another host, and verifies every instance: migration ``done``,
on a different host, in the power state it had before.
"""

import logging
import time

from novaclient import exceptions as nova_exc

from selfheal_actions.common import compute
from selfheal_actions.common.results import change
from selfheal_actions.common.results import raise_if_forbidden
from selfheal_actions.moves import records
from selfheal_actions.moves.windowed_run import FAST_POLL
from selfheal_actions.moves.windowed_run import FINISHED
from selfheal_actions.moves.windowed_run import PENDING
from selfheal_actions.moves.windowed_run import VERIFYING
from selfheal_actions.moves.windowed_run import WindowedRun

LOG = logging.getLogger(__name__)

#: an adopted rebuild with no migration record after this long is redone
ADOPT_GRACE = 30
#: the pause grows with the time the run has taken, so noticing that the
#: last evacuation finished adds at most this share to the run (and a long
#: run makes few polls: Nova is read per host, not per instance)
POLL_SHARE = 0.1
#: ...but while instances wait for a free place in the concurrency window,
#: a place freed must be refilled soon: the pause stays at most this long
WINDOW_POLL = 0.5

EVACUATING = "evacuating"


class RunOptions:
    """How a run behaves (validated inputs)."""

    def __init__(self, concurrency=25, max_attempts=3, target_hosts=(), timeout=600,
                 poll_interval=2.0, candidate_hosts=()):
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = list(target_hosts)
        self.timeout = timeout
        self.poll_interval = poll_interval
        #: up and enabled hosts to retry on when the scheduler's pick failed
        self.candidate_hosts = list(candidate_hosts)


class EvacuationRun(WindowedRun):
    """Carry out the evacuations of one host and verify them.

    :param api: a :class:`selfheal_actions.common.compute.NovaApi` or a fake.
    :param host: the fenced source host.
    :param entries: plan entries (:func:`evacuation_plan.plan`); updated in
        place with ``outcome``, ``destination``, ``attempts`` and so on.
    :param options: :class:`RunOptions`.
    """

    IN_FLIGHT = EVACUATING
    INTERNAL = ("began", "phase", "already", "power_fixed")
    log = LOG

    def __init__(self, api, host, entries, options, clock=time.monotonic, sleep=time.sleep,
                 on_cycle=None):
        super().__init__(api, host, options, clock=clock, sleep=sleep, on_cycle=on_cycle)
        self.work = [e for e in entries if e["decision"] != "skip"]
        for entry in entries:
            entry.setdefault("attempts", 0)
            entry.setdefault("attempt_log", [])
            entry.setdefault("destination", None)
            entry.setdefault("migration_id", None)
            entry.setdefault("migration_status", None)
            entry.setdefault("seconds", None)
            if entry["decision"] == "skip":
                entry["outcome"] = "skipped"
                entry["phase"] = FINISHED
            elif entry["decision"] == "adopt":
                entry["phase"] = EVACUATING
                entry["began"] = self.clock()
            else:
                entry["phase"] = PENDING
        self.known_migrations = {}

    def _pause(self, elapsed):
        pause = min(self.options.poll_interval, max(FAST_POLL, POLL_SHARE * elapsed))
        if self._in_phase(PENDING):
            pause = min(pause, WINDOW_POLL)
        return pause

    def _next_target(self, entry):
        """None for the scheduler, a host name, or False when none is left."""
        tried = {a["destination"] for a in entry["attempt_log"] if a.get("destination")}
        tried |= {a["target"] for a in entry["attempt_log"] if a.get("target")}
        if self.options.target_hosts:
            left = [h for h in self.options.target_hosts if h not in tried and h != self.host]
            return left[0] if left else False
        if not entry["attempt_log"]:
            return None
        left = [h for h in self.options.candidate_hosts if h not in tried and h != self.host]
        # Spread retries over the hosts left; with none known, ask the scheduler again.
        return left[entry["attempts"] % len(left)] if left else None

    def _start_move(self, entry, target):
        entry.setdefault("began", self.clock())
        entry["attempts"] += 1
        attempt = {"target": target, "destination": None, "migration_id": None, "status": None}
        entry["attempt_log"].append(attempt)
        try:
            if entry["decision"] == "reset_and_evacuate" and entry["attempts"] == 1:
                self.api.reset_to_error(entry["id"])
                self.changes.append(change(f"server {entry['id']}", "reset_to_error"))
            self.api.evacuate(entry["id"], target)
        except nova_exc.ClientException as error:
            return self._evacuate_refused(entry, attempt, error)
        self.changes.append(change(f"server {entry['id']}", "evacuation_requested",
                                   target=target or "scheduler"))
        entry["phase"] = EVACUATING
        LOG.info("%s %s: evacuation %d requested (target %s)", self.host, entry["name"],
                 entry["attempts"], target or "scheduler")
        return True

    def _evacuate_refused(self, entry, attempt, error):
        raise_if_forbidden(error, self.changes)
        code, message = compute.client_error(error)
        attempt["status"] = f"refused: {message}"
        if code == 404:
            self._finish(entry, "skipped", "server_deleted")
            return False
        if code == 400 and "in use" in message:
            server = self.api.get_server(entry["id"])
            if server is not None and server.get("OS-EXT-SRV-ATTR:host") != self.host:
                # Already moved by a concurrent run: verify, do not evacuate again.
                entry["attempts"] -= 1
                entry["attempt_log"].pop()
                entry["phase"] = VERIFYING
                entry["already"] = True
                return False
            self._finish(entry, "failed", "host_not_fenced")
            return False
        attempt["destination"] = attempt["target"]
        self._after_failed_attempt(entry, f"evacuate_refused: {message}")
        return False

    def _after_failed_attempt(self, entry, reason):
        if entry["attempts"] >= self.options.max_attempts:
            self._finish(entry, "failed", reason)
        else:
            entry["phase"] = PENDING
            LOG.info("%s %s: attempt %d failed (%s), retrying", self.host, entry["name"],
                     entry["attempts"], reason)

    # reading migration records
    def _poll_migrations(self):
        watching = self._in_phase(EVACUATING)
        if not watching:
            return
        # Nova's changes-since filters on updated_at, and an evacuation sits
        # in pre-migrating without an update for the whole spawn: while an
        # evacuation someone else began is adopted, read every record of
        # the host, however old, or it would look absent.
        adopting = any(e["decision"] == "adopt" for e in watching)
        migrations = self.api.evacuations_from(self.host,
                                               since=None if adopting else self._since())
        latest = records.latest_migrations(migrations)
        for entry in watching:
            migration = latest.get(entry["id"])
            if migration is None or migration["id"] in self._finished_ids(entry):
                if (entry["decision"] == "adopt" and migration is None
                        and self.clock() - entry["began"] > ADOPT_GRACE):
                    # a rebuild with no evacuation record from this host at
                    # all (e.g. a plain rebuild the dead host never finished)
                    entry["decision"] = "reset_and_evacuate"
                    entry["phase"] = PENDING
                continue
            self._note_migration(entry, migration)
            phase = records.migration_phase(migration)
            if phase == records.DONE:
                entry["phase"] = VERIFYING
            elif phase == records.FAILED:
                self._adopted_attempt_failed(entry, migration, "evacuate")
                where = f" on {migration['dest_compute']}" if migration.get("dest_compute") else ""
                self._after_failed_attempt(entry, f"migration_{migration.get('status')}{where}")

    def _check_landed(self, entry, server):
        host = server.get("OS-EXT-SRV-ATTR:host")
        if host == self.host or records.task_state(server) is not None:
            return  # Nova has not finished moving it yet
        entry["destination"] = host
        if records.vm_state(server) == "error":
            # It left the failed host but broke on the new one, which is up:
            # Nova cannot evacuate it from there. An operator must look.
            self._finish(entry, "failed", f"error_after_evacuation on {host}")
            return
        expected = entry["expected_power"] or records.power_of(server)
        entry["expected_power"] = expected
        actual = records.power_of(server)
        entry["power_after"] = actual
        if actual == expected:
            self._finish(entry, "already_evacuated" if entry.get("already") else "evacuated")
            return
        if entry.get("power_fixed"):
            return  # asked already; wait for Nova to get there
        entry["power_fixed"] = True
        try:
            if expected == records.RUNNING:
                self.api.start(entry["id"])
                self.changes.append(change(f"server {entry['id']}", "started"))
            else:
                self.api.stop(entry["id"])
                self.changes.append(change(f"server {entry['id']}", "stopped"))
        except nova_exc.ClientException as error:
            self._finish(entry, "failed", f"power_state_not_restored: {error}")
