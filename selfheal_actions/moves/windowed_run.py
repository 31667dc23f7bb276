# SPDX-License-Identifier: Apache-2.0
"""The loop both movers share: at most ``concurrency`` moves in flight,
progress read from Nova once per poll, every instance finished or timed out.

:class:`WindowedRun` owns the cycle (launch, poll the migration records,
verify, pause) and the bookkeeping of the entries' phases;
:class:`selfheal_actions.hosts.evacuation_run.EvacuationRun` and
:class:`selfheal_actions.maintenance.drain_run.DrainRun` say how one move is started,
polled and verified, and how long to pause between polls.
"""

import datetime
import logging
import os
import time

from selfheal_actions.common import compute
from selfheal_actions.common import timeutil

PENDING, VERIFYING, FINISHED = "pending", "verifying", "finished"

#: how far back "changes-since" looks, against clock skew with Nova
#: (``$SELFHEAL_CLOCK_MARGIN`` in the executor's environment overrides it,
#: 0-3600 s: the lab, whose clocks are one, sets a few seconds)
CLOCK_MARGIN = 120
CLOCK_MARGIN_ENV = "SELFHEAL_CLOCK_MARGIN"


def clock_margin():
    """The clock margin in seconds (:data:`CLOCK_MARGIN` unless overridden)."""
    try:
        value = float(os.environ.get(CLOCK_MARGIN_ENV, CLOCK_MARGIN))
    except ValueError:
        return CLOCK_MARGIN
    return value if 0 <= value <= 3600 else CLOCK_MARGIN
#: the shortest pause between two polls of Nova, seconds
FAST_POLL = 0.25

#: Nova spends about as long on one server GET as on this many servers of
#: a list, and the list of servers changed since the run began holds at
#: least every server of the run (and whatever else changed in the cloud):
#: a few instances to verify are read one by one, many with one list
GET_COST = 4


class WindowedRun:
    """One host's moves, carried out and verified.

    :param api: a :class:`selfheal_actions.common.compute.NovaApi` or a fake.
    :param host: the source host.
    :param options: the run's options (``concurrency``, ``timeout``,
        ``poll_interval``, ...).
    :param on_cycle: called once per cycle (e.g. to refresh a host claim).
    """

    #: the phase of an entry whose move Nova is carrying out
    IN_FLIGHT = None
    #: keys only the loop uses, removed from the entries at the end
    INTERNAL = ("began", "phase")
    #: what the log lines start with
    LOG_PREFIX = ""
    log = logging.getLogger(__name__)

    def __init__(self, api, host, options, clock=time.monotonic, sleep=time.sleep,
                 on_cycle=None):
        self.api = api
        self.host = host
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.on_cycle = on_cycle or (lambda: None)
        self.started = clock()
        self.since = timeutil.utcnow().replace(microsecond=0)
        self.deadline = self.started + options.timeout
        self.changes = []
        self.work = []
        #: cycles whose Nova reads failed, and the last such error
        self.read_errors = 0
        self.last_error = None

    def run(self):
        """Run until every instance is finished or the time is up; return entries.

        A cycle whose reads fail with a transient error (5xx, timeout, reset:
        :func:`compute.is_transient`, after the client's own retries) is
        skipped and the next one reads again; past the deadline the
        unfinished instances time out with the last error in their reason.
        Any other error propagates, with :attr:`changes` intact.
        """
        started = self.clock()
        while not self._all_finished():
            self.on_cycle()
            try:
                self._launch()
                self._poll_migrations()
                self._verify()
            except Exception as error:
                if not compute.is_transient(error):
                    raise
                self.read_errors += 1
                self.last_error = f"{type(error).__name__}: {error}"
                self.log.warning("%s%s: Nova read failed (%s); reading again next cycle",
                                 self.LOG_PREFIX, self.host, self.last_error)
            if self._all_finished():
                break
            if self.clock() >= self.deadline:
                self._time_out()
                break
            pause = self._pause(self.clock() - started)
            self.sleep(min(pause, max(self.deadline - self.clock(), 0)))
        for entry in self.work:
            for internal in self.INTERNAL:
                entry.pop(internal, None)
        return self.work

    # what a mover says
    def _pause(self, elapsed):
        """Seconds to wait before the next poll, ``elapsed`` into the run."""
        raise NotImplementedError

    def _start_move(self, entry, target):
        """Ask Nova to move ``entry``; True when it is now in flight."""
        raise NotImplementedError

    def _no_target_reason(self, entry):
        return "no_target_left"

    def _may_start(self, entry):
        """False to keep ``entry`` pending this cycle (a mover's own limits)."""
        return True

    def _next_target(self, entry):
        raise NotImplementedError

    def _poll_migrations(self):
        raise NotImplementedError

    def _check_landed(self, entry, server):
        """Finish ``entry`` if ``server`` (Nova's record) shows it landed."""
        raise NotImplementedError

    # reading Nova's records
    def _since(self):
        """The run's start, less the margin for Nova's clock."""
        return self.since - datetime.timedelta(seconds=clock_margin())

    def _finished_ids(self, entry):
        """Migration ids of earlier, finished attempts (a retry waits for a new one)."""
        return {a["migration_id"] for a in entry["attempt_log"][:-1] if a.get("migration_id")}

    def _note_migration(self, entry, migration):
        """Record ``migration`` (the entry's newest) on the entry and its attempt."""
        entry["migration_id"] = migration["id"]
        entry["migration_status"] = migration.get("status")
        if entry["attempt_log"]:
            entry["attempt_log"][-1].update(migration_id=migration["id"],
                                            status=migration.get("status"),
                                            destination=migration.get("dest_compute"))

    def _adopted_attempt_failed(self, entry, migration, decision, **attempt):
        """An adopted move (someone else's) failed: count it as an attempt of
        ours, and carry on deciding like for our own (``decision``)."""
        if entry["decision"] != "adopt":
            return
        entry["attempts"] += 1
        entry["attempt_log"].append(dict(attempt, target=None, migration_id=migration["id"],
                                         status=migration.get("status"),
                                         destination=migration.get("dest_compute")))
        entry["decision"] = decision

    # verifying where each instance landed
    def _verify(self):
        checking = self._in_phase(VERIFYING)
        if not checking:
            return
        servers = {}
        if len(checking) * GET_COST >= len(self.work):
            servers = {s["id"]: s for s in self.api.servers_changed_since(self._since())}
        for entry in checking:
            server = servers.get(entry["id"]) or self.api.get_server(entry["id"])
            if server is None:
                self._finish(entry, "failed", "server_disappeared")
                continue
            self._check_landed(entry, server)

    # bookkeeping
    def _all_finished(self):
        return all(e["phase"] == FINISHED for e in self.work)

    def _in_phase(self, phase):
        return [e for e in self.work if e["phase"] == phase]

    def _finish(self, entry, outcome, reason=None):
        entry["phase"] = FINISHED
        entry["outcome"] = outcome
        if reason:
            entry["reason"] = reason
        if entry.get("began") is not None:
            entry["seconds"] = round(self.clock() - entry["began"], 2)
        self.log.info("%s%s %s (%s): %s%s", self.LOG_PREFIX, self.host, entry["name"],
                      entry["id"], outcome, f" ({reason})" if reason else "")

    def _launch(self):
        """Start pending moves while the window has room."""
        in_flight = len(self._in_phase(self.IN_FLIGHT))
        for entry in self._in_phase(PENDING):
            if in_flight >= self.options.concurrency:
                return
            if not self._may_start(entry):
                continue
            target = self._next_target(entry)
            if target is False:
                self._finish(entry, "failed", self._no_target_reason(entry))
                continue
            if self._start_move(entry, target):
                in_flight += 1

    def _time_out(self):
        why = f"; Nova's last error: {self.last_error}" if self.last_error else ""
        for entry in self.work:
            if entry["phase"] != FINISHED:
                held = entry.get("reason") or ""
                held = f" ({held})" if held.startswith("waiting: ") else ""
                self._finish(entry, "timed_out", f"still {entry['phase']}{held} after "
                             f"{self.options.timeout:.0f} s{why}")


def totals(entries):
    """Count of instances per outcome."""
    counts = {}
    for entry in entries:
        counts[entry.get("outcome", "planned")] = counts.get(entry.get("outcome", "planned"), 0) + 1
    return counts


def summary_line(entry):
    return (f"{entry['name']} ({entry['id']}): {entry['outcome']}"
            f"{' - ' + entry['reason'] if entry.get('reason') else ''}"
            f", {entry['attempts']} attempt(s)")
