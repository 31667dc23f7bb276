"""Evacuate a fenced host's instances and prove that each one landed.

:class:`EvacuationRun` carries out a plan from
:mod:`selfheal_actions.evacuation_plan` against a :class:`NovaApi` (or a fake
with the same methods): it keeps at most ``concurrency`` evacuations in
flight, reads their outcome from Nova's migration records (a cheap list per
poll for the whole host, never one call per instance per second), retries a
failed one on another host, and verifies every instance: migration ``done``,
on a different host, in the power state it had before.
"""

import datetime
import logging
import time

from novaclient import exceptions as nova_exc

from selfheal_actions import clients
from selfheal_actions import compute
from selfheal_actions import evacuation_plan as plans
from selfheal_actions import host_lock
from selfheal_actions import inputs
from selfheal_actions import markers
from selfheal_actions import timeutil
from selfheal_actions.results import ActionFailure
from selfheal_actions.results import SelfhealAction
from selfheal_actions.results import change

LOG = logging.getLogger(__name__)

#: how far back "changes-since" looks, against clock skew with Nova
CLOCK_MARGIN = 120
#: an adopted rebuild with no migration record after this long is redone
ADOPT_GRACE = 30
#: seconds between polls while evacuations make progress
FAST_POLL = 0.5

PENDING, EVACUATING, VERIFYING, FINISHED = "pending", "evacuating", "verifying", "finished"


class RunOptions:
    """How a run behaves (validated inputs)."""

    def __init__(self, concurrency=10, max_attempts=3, target_hosts=(), timeout=600,
                 poll_interval=2.0, candidate_hosts=()):
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = list(target_hosts)
        self.timeout = timeout
        self.poll_interval = poll_interval
        #: up and enabled hosts to retry on when the scheduler's pick failed
        self.candidate_hosts = list(candidate_hosts)


class EvacuationRun:
    """Carry out the evacuations of one host and verify them.

    :param api: a :class:`selfheal_actions.compute.NovaApi` or a fake.
    :param host: the fenced source host.
    :param entries: plan entries (:func:`evacuation_plan.plan`); updated in
        place with ``outcome``, ``destination``, ``attempts`` and so on.
    :param options: :class:`RunOptions`.
    """

    def __init__(self, api, host, entries, options, clock=time.monotonic, sleep=time.sleep,
                 on_cycle=None):
        self.api = api
        self.on_cycle = on_cycle or (lambda: None)
        self.host = host
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.since = timeutil.utcnow().replace(microsecond=0)
        self.deadline = self.started + options.timeout
        self.changes = []
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

    # the loop
    def run(self):
        """Run until every instance is finished or the time is up; return entries."""
        interval = FAST_POLL
        while not self._all_finished():
            before = self._snapshot()
            self.on_cycle()
            self._launch()
            self._poll_migrations()
            self._verify()
            if self._all_finished():
                break
            if self.clock() >= self.deadline:
                self._time_out()
                break
            self.sleep(min(interval, max(self.deadline - self.clock(), 0)))
            # Poll fast while things move; back off while Nova is busy.
            moved = self._snapshot() != before
            interval = FAST_POLL if moved else min(interval * 1.5, self.options.poll_interval)
        for entry in self.work:
            for internal in ("began", "phase", "already", "power_fixed"):
                entry.pop(internal, None)
        return self.work

    def _snapshot(self):
        return [(e["phase"], e["attempts"], e.get("migration_status")) for e in self.work]

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
        LOG.info("%s %s (%s): %s%s", self.host, entry["name"], entry["id"], outcome,
                 f" ({reason})" if reason else "")

    # launching evacuations
    def _launch(self):
        in_flight = len(self._in_phase(EVACUATING))
        for entry in self._in_phase(PENDING):
            if in_flight >= self.options.concurrency:
                return
            target = self._next_target(entry)
            if target is False:
                self._finish(entry, "failed", "no_target_left")
                continue
            if self._start_evacuation(entry, target):
                in_flight += 1

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

    def _start_evacuation(self, entry, target):
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
        code, message = compute.client_error(error)
        attempt["status"] = f"refused: {message}"
        if code == 404:
            self._finish(entry, "skipped", "server_deleted")
            return False
        if code == 409 and "rebuilding" in message:
            # Someone else's evacuation is in flight: pick it up, do not repeat it.
            entry["attempts"] -= 1
            entry["attempt_log"].pop()
            entry["decision"] = "adopt"
            entry["phase"] = EVACUATING
            return True
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
        migrations = self.api.evacuations_from(self.host, since=self._since())
        latest = plans.latest_migrations(migrations)
        for entry in watching:
            migration = latest.get(entry["id"])
            if migration is None or migration["id"] in self._finished_ids(entry):
                if entry["decision"] == "adopt" and self.clock() - entry["began"] > ADOPT_GRACE:
                    entry["decision"] = "reset_and_evacuate"
                    entry["phase"] = PENDING
                continue
            entry["migration_id"] = migration["id"]
            entry["migration_status"] = migration.get("status")
            if entry["attempt_log"]:
                entry["attempt_log"][-1].update(migration_id=migration["id"],
                                                status=migration.get("status"),
                                                destination=migration.get("dest_compute"))
            phase = plans.migration_phase(migration)
            if phase == plans.DONE:
                entry["phase"] = VERIFYING
            elif phase == plans.FAILED:
                if entry["decision"] == "adopt":
                    entry["attempts"] += 1
                    entry["attempt_log"].append({"target": None, "migration_id": migration["id"],
                                                 "status": migration.get("status"),
                                                 "destination": migration.get("dest_compute")})
                    entry["decision"] = "evacuate"
                where = f" on {migration['dest_compute']}" if migration.get("dest_compute") else ""
                self._after_failed_attempt(entry, f"migration_{migration.get('status')}{where}")

    def _finished_ids(self, entry):
        """Migration ids of earlier, finished attempts (a retry waits for a new one)."""
        return {a["migration_id"] for a in entry["attempt_log"][:-1] if a.get("migration_id")}

    def _since(self):
        return self.since - datetime.timedelta(seconds=CLOCK_MARGIN)

    # verifying where each instance landed
    def _verify(self):
        checking = self._in_phase(VERIFYING)
        if not checking:
            return
        servers = {s["id"]: s for s in self.api.servers_changed_since(self._since())}
        for entry in checking:
            server = servers.get(entry["id"]) or self.api.get_server(entry["id"])
            if server is None:
                self._finish(entry, "failed", "server_disappeared")
                continue
            self._check_landed(entry, server)

    def _check_landed(self, entry, server):
        host = server.get("OS-EXT-SRV-ATTR:host")
        if host == self.host or plans.task_state(server) is not None:
            return  # Nova has not finished moving it yet
        entry["destination"] = host
        if plans.vm_state(server) == "error":
            # It left the failed host but broke on the new one, which is up:
            # Nova cannot evacuate it from there. An operator must look.
            self._finish(entry, "failed", f"error_after_evacuation on {host}")
            return
        expected = entry["expected_power"] or plans.power_of(server)
        entry["expected_power"] = expected
        actual = plans.power_of(server)
        entry["power_after"] = actual
        if actual == expected:
            self._finish(entry, "already_evacuated" if entry.get("already") else "evacuated")
            return
        if entry.get("power_fixed"):
            return  # asked already; wait for Nova to get there
        entry["power_fixed"] = True
        try:
            if expected == plans.RUNNING:
                self.api.start(entry["id"])
                self.changes.append(change(f"server {entry['id']}", "started"))
            else:
                self.api.stop(entry["id"])
                self.changes.append(change(f"server {entry['id']}", "stopped"))
        except nova_exc.ClientException as error:
            self._finish(entry, "failed", f"power_state_not_restored: {error}")

    def _time_out(self):
        for entry in self.work:
            if entry["phase"] != FINISHED:
                self._finish(entry, "timed_out", f"still {entry['phase']} after "
                             f"{self.options.timeout:.0f} s")


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


class EvacuateAndVerifyAction(SelfhealAction):
    """Evacuate every instance of a fenced host and prove where each one landed.

    The host must be fenced first (its nova-compute service forced down, see
    ``selfheal.fence_host``): otherwise nothing is done. Each instance is
    verified: its evacuation migration reached ``done``, it is on another
    host, and it is in the power state it had before (started again when
    Nova >= 2.95 left it stopped). A failed evacuation is retried on another
    host up to ``max_attempts``. Rerunning it (or running two at once) never
    evacuates an instance twice: migrations already in flight are picked up.

    :param host: the failed host (string, required).
    :param instance_ids: only these instances of the host (list; empty: all).
    :param concurrency: evacuations in flight at once (1-200, default 10).
    :param max_attempts: attempts per instance (1-10, default 3).
    :param target_hosts: ordered reserved hosts to evacuate to; empty lets
        the scheduler choose.
    :param include_error_instances: also evacuate instances that were in
        ERROR before the failure (default false).
    :param exclude_metadata_key: instances whose metadata has this key set
        to a true value stay where they are (default ``selfheal_exclude``).
    :param exclude_flavors: flavor names or ids to leave alone.
    :param exclude_images: image ids to leave alone.
    :param force: evacuate even a host under planned maintenance.
    :param timeout: seconds the action may run (10-3600, default 600); it
        returns by then whatever the state.
    :param poll_interval: longest pause between two polls, seconds (default 2).
    :param dry_run: return the plan, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``microversion``, ``instances`` (per instance: id,
        name, source, destination, migration_id, migration_status, attempts,
        seconds, outcome: evacuated / already_evacuated / skipped / failed /
        timed_out / planned, reason), ``totals``, ``seconds``, ``changes``.
        Error reasons: ``invalid_input``, ``host_not_found``,
        ``host_not_fenced``, ``host_in_maintenance``, ``host_busy`` (another
        execution still heals the host after ``timeout``),
        ``evacuation_incomplete`` (some instances failed or timed out; the
        details list them), and the client errors of fence_host.
    """

    action_name = "selfheal.evacuate_and_verify"

    def __init__(self, host, instance_ids=None, concurrency=10, max_attempts=3,
                 target_hosts=None, include_error_instances=False,
                 exclude_metadata_key="selfheal_exclude", exclude_flavors=None,
                 exclude_images=None, force=False, timeout=600, poll_interval=2,
                 dry_run=False, microversion=None):
        self.host = host
        self.instance_ids = instance_ids
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.target_hosts = target_hosts
        self.include_error_instances = include_error_instances
        self.exclude_metadata_key = exclude_metadata_key
        self.exclude_flavors = exclude_flavors
        self.exclude_images = exclude_images
        self.force = force
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        self.microversion = microversion

    def _validated(self):
        return {
            "host": inputs.text("host", self.host),
            "instance_ids": inputs.text_list("instance_ids", self.instance_ids),
            "concurrency": inputs.number("concurrency", self.concurrency, 1, 200, integer=True),
            "max_attempts": inputs.number("max_attempts", self.max_attempts, 1, 10, integer=True),
            "target_hosts": inputs.text_list("target_hosts", self.target_hosts),
            "include_error": inputs.boolean("include_error_instances",
                                            self.include_error_instances),
            "exclude_key": inputs.text("exclude_metadata_key", self.exclude_metadata_key,
                                       required=False),
            "exclude_flavors": inputs.text_list("exclude_flavors", self.exclude_flavors),
            "exclude_images": inputs.text_list("exclude_images", self.exclude_images),
            "force": inputs.boolean("force", self.force),
            "timeout": inputs.number("timeout", self.timeout, 10, 3600),
            "poll_interval": inputs.number("poll_interval", self.poll_interval, 0.1, 60),
            "dry_run": inputs.boolean("dry_run", self.dry_run),
            "microversion": inputs.microversion("microversion", self.microversion),
        }

    def execute(self, context):
        args = self._validated()
        host = args["host"]
        if host in args["target_hosts"]:
            raise ActionFailure("invalid_input", f"target_hosts names the failed host '{host}'")
        started = time.monotonic()
        api = compute.NovaApi(clients.nova(context, args["microversion"]))
        services = api.compute_services()
        service = compute.find_service(services, host)
        known = {s["host"] for s in services}
        unknown = [h for h in args["target_hosts"] if h not in known]
        if unknown:
            raise ActionFailure("invalid_input", f"target_hosts has unknown hosts {unknown}; "
                                f"known compute hosts: {sorted(known)}")
        marker = markers.parse(service.get("disabled_reason"))
        if marker and marker["kind"] == markers.MAINTENANCE and not args["force"]:
            raise ActionFailure(
                "host_in_maintenance",
                f"host '{host}' is under planned maintenance; the maintenance flow moves its "
                "instances. Pass force=true only if it really failed.", host=host)
        fenced = bool(service.get("forced_down"))
        if not fenced and not args["dry_run"]:
            raise ActionFailure(
                "host_not_fenced",
                f"host '{host}' is not fenced (its nova-compute service is not forced down), "
                "so its instances may still run there. Run selfheal.fence_host first (the "
                "selfheal.host_failure.evacuate_host workflow does).", host=host)
        fenced_at = marker["at"] if marker and marker["kind"] == markers.FENCED else None
        result = {"host": host, "microversion": api.microversion, "fenced": fenced}
        if args["dry_run"]:
            return self._plan_only(api, host, args, fenced_at, result, started)

        # One healer per host: Nova would accept a second, concurrent evacuation.
        lock = host_lock.HostLock(api, host, owner=clients.execution_id(context))
        lock.acquire(timeout=args["timeout"])
        try:
            entries, earlier = self._plan(api, host, args, fenced_at)
            candidates = [s["host"] for s in services if s["host"] != host
                          and s["state"] == "up" and s["status"] == "enabled"]
            remaining = args["timeout"] - (time.monotonic() - started)
            run = EvacuationRun(api, host, entries, RunOptions(
                args["concurrency"], args["max_attempts"], args["target_hosts"],
                max(remaining, 1), args["poll_interval"], candidates), on_cycle=lock.refresh)
            run.run()
        finally:
            lock.release()
        instances = earlier + entries
        result.update(instances=instances, totals=totals(instances),
                      seconds=round(time.monotonic() - started, 2), changes=run.changes)
        if lock.waited_for:
            result["waited_for"] = lock.waited_for
        unrecovered = [e for e in instances if e["outcome"] in ("failed", "timed_out")]
        if unrecovered:
            details = {k: v for k, v in result.items() if k != "changes"}
            raise ActionFailure(
                "evacuation_incomplete",
                f"{len(unrecovered)} of {len(instances)} instances on '{host}' were not "
                "recovered: " + "; ".join(summary_line(e) for e in unrecovered) +
                ". The others are verified. Fix the cause (capacity, target hosts) and run "
                "the workflow again: it resumes without evacuating anything twice.",
                changes=run.changes, **details)
        return result

    def _plan(self, api, host, args, fenced_at):
        """Plan entries for the host's servers, and the ones moved earlier."""
        servers = api.servers_on_host(host)
        migrations = api.evacuations_from(host)
        options = plans.PlanOptions(args["exclude_key"], args["exclude_flavors"],
                                    args["exclude_images"], args["include_error"],
                                    args["instance_ids"])
        entries = plans.plan(host, servers, migrations, options, fenced_at)
        earlier = [self._earlier_entry(m, host) for m in plans.already_evacuated(
            migrations, servers, fenced_at, options.instance_ids)]
        missing = sorted(set(args["instance_ids"]) - {e["id"] for e in entries}
                         - {e["id"] for e in earlier})
        if missing:
            raise ActionFailure("invalid_input", f"instance_ids not on host '{host}': {missing}",
                                host=host)
        return entries, earlier

    def _plan_only(self, api, host, args, fenced_at, result, started):
        entries, earlier = self._plan(api, host, args, fenced_at)
        for entry in entries:
            entry["outcome"] = "skipped" if entry["decision"] == "skip" else "planned"
        instances = earlier + entries
        result.update(instances=instances, totals=totals(instances),
                      seconds=round(time.monotonic() - started, 2),
                      changes=[change(f"server {e['id']}", "would_evacuate")
                               for e in entries if e["outcome"] == "planned"])
        if not result["fenced"]:
            result["note"] = (f"host '{host}' is not fenced yet: a real run refuses until "
                              "selfheal.fence_host has run")
        return result

    @staticmethod
    def _earlier_entry(migration, host):
        return {"id": migration["instance_uuid"], "name": None, "source": host,
                "destination": migration.get("dest_compute"), "decision": "none",
                "reason": "evacuated by an earlier run", "migration_id": migration["id"],
                "migration_status": migration.get("status"), "attempts": 0, "seconds": None,
                "outcome": "already_evacuated"}


class LocateInstancesAction(SelfhealAction):
    """Group instances by the compute host they are on.

    For per-instance triggers: the workflow then fences and evacuates each
    host with only those instances.

    :param instance_ids: server UUIDs (list of strings, required).
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``hosts`` ({host: [ids]}), ``missing`` (ids Nova does not
        know), ``host_list`` ([{host, instance_ids}] for with-items). Error
        reasons: ``invalid_input``, ``instances_not_found`` (none exist).
    """

    action_name = "selfheal.locate_instances"

    def __init__(self, instance_ids, microversion=None):
        self.instance_ids = instance_ids
        self.microversion = microversion

    def execute(self, context):
        ids = inputs.text_list("instance_ids", self.instance_ids)
        if not ids:
            raise ActionFailure("invalid_input", "input 'instance_ids' must list at least one "
                                "server UUID")
        version = inputs.microversion("microversion", self.microversion)
        api = compute.NovaApi(clients.nova(context, version))
        hosts, missing = {}, []
        for server_id in dict.fromkeys(ids):
            server = api.get_server(server_id)
            if server is None:
                missing.append(server_id)
            else:
                hosts.setdefault(server.get("OS-EXT-SRV-ATTR:host"), []).append(server_id)
        if not hosts:
            raise ActionFailure("instances_not_found", f"none of {ids} exists in Nova",
                                missing=missing)
        return {"hosts": hosts, "missing": missing, "changes": [],
                "host_list": [{"host": h, "instance_ids": v} for h, v in sorted(hosts.items())]}
