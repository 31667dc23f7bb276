# SPDX-License-Identifier: Apache-2.0
"""The host watch: ``selfheal.watch_hosts``, detection without Vitrage.

A Mistral cron trigger starts the watch workflow every minute (see
``selfheal install --with-watch``); each execution observes every
``interval`` seconds for ``period`` seconds, so detection is not bounded by
cron's one-minute grain, and carries its counts of consecutive failed
observations over to the next execution. Each failed host that passes the
gates (:mod:`selfheal_actions.watch.decide`) gets its own host failure
execution, which fences, evacuates and verifies it; the host claim in Nova
keeps a second healer off the same host across cycles and watches.

Every cycle writes one decision line to the executor's log (logger
``selfheal_actions.watch``) and to the output.
"""

import logging
import time

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import host_claim
from selfheal_actions.common import inputs
from selfheal_actions.common import mistral_api
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import shown
from selfheal_actions.watch import decide as deciding
from selfheal_actions.watch import signals

LOG = logging.getLogger("selfheal_actions.watch")

DEFAULT_HEAL_WORKFLOW = "selfheal.host_failure.evacuate_host"
DEFAULT_WATCH_WORKFLOW = "selfheal.host_failure.watch"
#: the Mistral environment that holds the kill switch
DEFAULT_KILL_SWITCH = "selfheal-watch"
FINISHED = ("SUCCESS", "ERROR", "CANCELLED")
#: inputs of a heal the watch sets itself
RESERVED_HEAL_INPUTS = ("host", "concurrency", "host_known_dead")


def _mistral_time(text):
    return timeutil.parse_time((text or "").replace(" ", "T"))


class WatchHostsAction(SelfhealAction):
    """Watch the compute hosts and start the host failure flow for each failed one.

    Observes every ``interval`` seconds for ``period`` seconds. A host is
    failed after ``samples`` consecutive observations in which every
    configured signal says so: Nova (nova-compute down, forced down, or
    silent for more than ``stale_after`` seconds by Nova's clock) and, when
    Prometheus is configured, its exporter's ``up`` (0). Gates, logged once
    per cycle: the kill switch, the control plane, Prometheus answering, a
    nova-scheduler up, the global share of failed hosts, per-aggregate
    limits (metadata ``selfheal:max_failures``), hosts started per cycle and
    the cloud-wide evacuation budget. Disabled hosts (planned maintenance,
    fenced, or disabled by an operator) are never healed.

    :param interval: seconds between two observations (1-300, default 5).
    :param period: seconds this execution observes (0-3600, default 55; 0
        observes once). With a cron trigger every minute, a little less than 60.
    :param samples: consecutive failed observations before a host is
        failed (1-20, default 2).
    :param stale_after: seconds without a report from nova-compute after
        which it counts as failed while Nova still says up (1-3600, default
        25; keep it below Nova's service_down_time and above twice its
        report_interval).
    :param prometheus_url: Prometheus' base URL; empty takes ``prometheus.url``
        of the cloud config, and none there watches Nova alone.
    :param prometheus_query: the query whose samples say each host's
        exporter is up (1) or down (0); empty takes the cloud config's or
        ``up{job="node"}``.
    :param host_label: the label naming the host in those samples (port
        stripped); empty takes the cloud config's or ``instance``.
    :param max_failed_ratio: hold every heal when this share of the compute
        hosts is failing or fenced (0.01-1, default 0.5).
    :param max_starts: hosts started per cycle (1-100, default 2).
    :param budget: evacuations in flight across the cloud, shared by every
        running heal (1-1000, default 20).
    :param per_host_concurrency: evacuations in flight for one host (1-200,
        default 10).
    :param heal_workflow: the workflow started per failed host (default
        ``selfheal.host_failure.evacuate_host``).
    :param heal_input: more inputs for it (mapping; e.g. fencing, target_hosts).
    :param retry_after: seconds after a heal of a host ended in error before
        the watch starts another for it (0-86400, default 600): a BMC that
        refuses is not asked again every cycle.
    :param settle_after: seconds after the global limit last held before
        any host is healed again (0-3600, default 120): the hosts of a switch
        blip come back one by one, and the last ones are not fenced for it.
    :param kill_switch: the Mistral environment whose variable ``paused``
        (true) stops all healing (default ``selfheal-watch``).
    :param keep_executions: finished executions of the watch kept; older
        ones are deleted (1-1000, default 20).
    :param dry_run: observe and decide, start and delete nothing.
    :returns: ``cycles`` (the decision lines), ``started`` (per host: host,
        execution_id, concurrency, signals, at), ``streaks``,
        ``last_cycle_at``, ``deleted_executions``, ``changes``. Error reasons:
        ``invalid_input``, ``watch_blind`` (no cycle could read Nova),
        ``configuration_error``.
    """

    action_name = "selfheal.watch_hosts"

    def __init__(self, interval=5, period=55, samples=2, stale_after=25, prometheus_url=None,
                 prometheus_query=None, host_label=None, max_failed_ratio=0.5, max_starts=2,
                 budget=20, per_host_concurrency=10, heal_workflow=DEFAULT_HEAL_WORKFLOW,
                 heal_input=None, retry_after=600, settle_after=120,
                 kill_switch=DEFAULT_KILL_SWITCH,
                 keep_executions=20, dry_run=False):
        self.interval = interval
        self.period = period
        self.samples = samples
        self.stale_after = stale_after
        self.prometheus_url = prometheus_url
        self.prometheus_query = prometheus_query
        self.host_label = host_label
        self.max_failed_ratio = max_failed_ratio
        self.max_starts = max_starts
        self.budget = budget
        self.per_host_concurrency = per_host_concurrency
        self.heal_workflow = heal_workflow
        self.heal_input = heal_input
        self.retry_after = retry_after
        self.settle_after = settle_after
        self.kill_switch = kill_switch
        self.keep_executions = keep_executions
        self.dry_run = dry_run

    # -- inputs -----------------------------------------------------------
    def _checked(self):
        heal_input = self.heal_input or {}
        if not isinstance(heal_input, dict):
            raise InvalidInput(f"input 'heal_input' must be a mapping, got {shown(heal_input)}")
        reserved = sorted(set(heal_input) & set(RESERVED_HEAL_INPUTS))
        if reserved:
            raise InvalidInput(f"input 'heal_input' may not set {reserved}: the watch sets "
                               "them per host")
        config = clients.explicit_config().get("prometheus") or {}
        url = inputs.text("prometheus_url", self.prometheus_url, required=False,
                          max_length=2000) or config.get("url")
        if url and not str(url).startswith(("http://", "https://")):
            raise InvalidInput(f"input 'prometheus_url' must be an http(s) URL, got {shown(url)}")
        return {
            "interval": inputs.number("interval", self.interval, 1, 300),
            "period": inputs.number("period", self.period, 0, 3600),
            "stale_after": inputs.number("stale_after", self.stale_after, 1, 3600),
            "prometheus_url": url,
            "prometheus_query": inputs.text("prometheus_query", self.prometheus_query,
                                            required=False, max_length=2000)
            or config.get("query") or signals.DEFAULT_QUERY,
            "host_label": inputs.text("host_label", self.host_label, required=False)
            or config.get("host_label") or signals.DEFAULT_HOST_LABEL,
            "prometheus_verify": config.get("verify", True),
            "settings": deciding.Settings(
                samples=inputs.number("samples", self.samples, 1, 20, integer=True),
                max_failed_ratio=inputs.number("max_failed_ratio", self.max_failed_ratio,
                                               0.01, 1),
                max_starts=inputs.number("max_starts", self.max_starts, 1, 100, integer=True),
                budget=inputs.number("budget", self.budget, 1, 1000, integer=True),
                per_host_concurrency=inputs.number(
                    "per_host_concurrency", self.per_host_concurrency, 1, 200, integer=True),
                use_exporter=bool(url)),
            "heal_workflow": inputs.text("heal_workflow", self.heal_workflow),
            "heal_input": heal_input,
            "retry_after": inputs.number("retry_after", self.retry_after, 0, 86400),
            "settle_after": inputs.number("settle_after", self.settle_after, 0, 3600),
            "kill_switch": inputs.text("kill_switch", self.kill_switch),
            "keep_executions": inputs.number("keep_executions", self.keep_executions, 1, 1000,
                                             integer=True),
            "dry_run": inputs.boolean("dry_run", self.dry_run),
        }

    # -- the run ----------------------------------------------------------
    def execute(self, context):
        checked = self._checked()
        nova = compute.NovaApi(clients.nova(context))
        mistral = mistral_api.mistral(context)
        me = clients.execution_id(context)
        own_workflow = getattr(getattr(context, "execution", None), "workflow_name",
                               None) or DEFAULT_WATCH_WORKFLOW
        changes, cycles, started = [], [], []
        self.changes_so_far = changes

        other = self._other_watch(mistral, own_workflow, me, checked["period"])
        if other:
            line = (f"another watch execution ({other}) is running: this one stops "
                    "(a cron period shorter than the watch's period?)")
            LOG.info(line)
            return {"cycles": [line], "started": [], "streaks": {}, "last_cycle_at": None,
                    "deleted_executions": [], "changes": []}
        deleted = [] if checked["dry_run"] else self._clean_up(
            mistral, own_workflow, me, checked["keep_executions"])
        streaks, self.limit_held_at = self._carried(mistral, own_workflow, checked["interval"])

        start = time.monotonic()
        cycle, seen, last_at = 0, 0, None
        while True:
            cycle += 1
            try:
                decision = self._cycle(nova, mistral, checked, streaks)
            except ActionFailure:
                raise
            except Exception as error:  # one blind cycle is reported, not fatal
                line = (f"cycle {cycle}: cannot observe: {type(error).__name__}: "
                        f"{str(error)[:200]}; counts kept")
                LOG.warning(line)
                cycles.append(line)
            else:
                seen += 1
                streaks = decision["streaks"]
                last_at = timeutil.iso(timeutil.utcnow())
                if decision["gate"] == "global_limit":
                    self.limit_held_at = timeutil.utcnow()
                for entry in decision["start"]:
                    started.append(self._start(mistral, checked, entry, me, changes))
                line = deciding.decision_line(cycle, decision)
                LOG.info(line)
                cycles.append(line)
            elapsed = time.monotonic() - start
            if elapsed + checked["interval"] > checked["period"]:
                break
            time.sleep(max(0.0, cycle * checked["interval"] - elapsed))
        if not seen:
            raise ActionFailure(
                "watch_blind", f"none of {cycle} cycle(s) could read Nova's services: "
                + cycles[-1] + ". Check the compute API and the executor's credentials.",
                cycles=cycles)
        return {"cycles": cycles, "started": started, "streaks": streaks,
                "last_cycle_at": last_at, "deleted_executions": deleted,
                "global_limit_held_at": self.limit_held_at and timeutil.iso(
                    self.limit_held_at),
                "changes": changes}

    def _cycle(self, nova, mistral, checked, streaks):
        observations, scheduler_up = signals.nova_observations(
            nova.all_services(), checked["stale_after"])
        world = {"scheduler_up": scheduler_up, "paused": self._paused(mistral, checked),
                 "prometheus_error": None, "settling": None}
        if self.limit_held_at is not None:
            ago = (timeutil.utcnow() - self.limit_held_at).total_seconds()
            if ago < checked["settle_after"]:
                world["settling"] = (f"{ago:.0f} s ago (settle_after "
                                     f"{checked['settle_after']:.0f} s)")
        if checked["prometheus_url"]:
            try:
                signals.add_exporters(observations, signals.exporter_states(
                    checked["prometheus_url"], checked["prometheus_query"],
                    checked["host_label"], verify=checked["prometheus_verify"]))
            except signals.PrometheusError as error:
                world["prometheus_error"] = str(error)
        aggregates = nova.aggregates()
        world["aggregates"] = _limited_aggregates(aggregates)
        world["healing"] = self._healing(mistral, checked, aggregates)
        world["failed_recently"] = self._failed_recently(mistral, checked)
        return deciding.decide(observations, streaks, checked["settings"], world)

    def _paused(self, mistral, checked):
        """The kill switch's reason when it is on, else None.

        Off only when the environment does not exist or says ``paused:
        false``: a switch that cannot be read, lacks ``paused`` (``pause:
        true`` is a typo, not a wish to heal) or holds anything but true or
        false counts as on, and the decision line says why.
        """
        name = checked["kill_switch"]
        try:
            variables = mistral.environment(name)
        except Exception as error:
            return (f"the kill switch (Mistral environment '{name}') cannot be read: "
                    f"{type(error).__name__}: {str(error)[:100]}")
        if variables is None:
            return None
        if "paused" not in variables:
            return (f"the kill switch (Mistral environment '{name}') has no 'paused' "
                    f"variable (it has {sorted(variables)[:5]}): set paused: false to heal")
        paused = variables["paused"]
        text = str(paused).strip().lower()
        if paused is False or text == "false":
            return None
        if paused is True or text == "true":
            return str(variables.get("reason") or "paused by an operator")[:200]
        return (f"the kill switch (Mistral environment '{name}') says paused: "
                f"{shown(paused, 40)}, which is neither true nor false")

    def _healing(self, mistral, checked, aggregates):
        """``{host: evacuations in flight it may hold}`` for every running
        heal (a running heal execution, or a host claim in Nova)."""
        healing = {}
        for execution in mistral.executions(checked["heal_workflow"], state="RUNNING"):
            given = execution.get("input") or {}
            host = given.get("host")
            if not isinstance(host, str):
                continue
            try:
                concurrency = int(given.get("concurrency"))
            except (TypeError, ValueError):
                concurrency = checked["settings"].per_host_concurrency
            healing[host] = healing.get(host, 0) + concurrency
        for aggregate in aggregates:
            name = aggregate.get("name") or ""
            if name.startswith(host_claim.PREFIX):
                healing.setdefault(name[len(host_claim.PREFIX):], 0)
        return healing

    @staticmethod
    def _failed_recently(mistral, checked):
        """``{host: what failed}`` for heals that ended in error less than
        ``retry_after`` seconds ago (the newest per host)."""
        failed = {}
        if not checked["retry_after"]:
            return failed
        now = timeutil.utcnow()
        for execution in mistral.executions(checked["heal_workflow"], state="ERROR", limit=50,
                                            newest_first=True, include_output=True):
            host = (execution.get("input") or {}).get("host")
            ended = _mistral_time(execution.get("updated_at") or execution.get("created_at"))
            if not isinstance(host, str) or host in failed or ended is None:
                continue
            age = (now - ended).total_seconds()
            if age > checked["retry_after"]:
                continue
            error = (execution.get("output") or {}).get("error") or {}
            reason = error.get("reason") if isinstance(error, dict) else None
            failed[host] = (f"heal {execution.get('id')} ended in error "
                            f"({reason or 'see its output'}) {age:.0f} s ago; the watch "
                            f"retries after {checked['retry_after']:.0f} s, or fix it and run "
                            "the heal by hand")
        return failed

    def _start(self, mistral, checked, entry, me, changes):
        host = entry["host"]
        heal_input = dict(checked["heal_input"])
        heal_input.update({
            "host": host, "concurrency": entry["concurrency"],
            # both signals agree the host is dead: power it off even while
            # Nova has not yet marked it down (a confirmed fence is the proof)
            "host_known_dead": checked["settings"].use_exporter})
        heal_input.setdefault("reason", f"selfheal watch: {entry['signals']}"[:200])
        at = timeutil.iso(timeutil.utcnow())
        if checked["dry_run"]:
            changes.append(change(f"host {host}", "would_start_heal",
                                  workflow=checked["heal_workflow"]))
            return {"host": host, "execution_id": None, "concurrency": entry["concurrency"],
                    "signals": entry["signals"], "at": at}
        execution = mistral.start(checked["heal_workflow"], heal_input,
                                  description=f"started by the selfheal watch {me}")
        changes.append(change(f"host {host}", "heal_started", execution=execution["id"],
                              workflow=checked["heal_workflow"]))
        return {"host": host, "execution_id": execution["id"],
                "concurrency": entry["concurrency"], "signals": entry["signals"], "at": at}

    # -- housekeeping -----------------------------------------------------
    @staticmethod
    def _other_watch(mistral, workflow, me, period):
        """Another running watch execution started recently, or None."""
        now = timeutil.utcnow()
        for execution in mistral.executions(workflow, state="RUNNING"):
            if execution.get("id") == me:
                continue
            created = _mistral_time(execution.get("created_at"))
            if created and (now - created).total_seconds() < 2 * period + 120:
                return execution.get("id")
        return None

    @staticmethod
    def _clean_up(mistral, workflow, me, keep):
        """Delete the oldest finished watch executions beyond ``keep``."""
        finished = [e for e in mistral.executions(workflow, limit=1000)
                    if e.get("state") in FINISHED and e.get("id") != me]
        deleted = []
        for execution in finished[:max(0, len(finished) - keep)]:
            try:
                mistral.delete_execution(execution["id"])
                deleted.append(execution["id"])
            except Exception as error:
                LOG.warning("cannot delete the old watch execution %s: %s",
                            execution["id"], error)
        return deleted

    @staticmethod
    def _carried(mistral, workflow, interval):
        """``(streaks, global limit held at)`` of the previous watch: its
        counts when it observed recently enough, and when its global limit
        last held (whatever its age: ``settle_after`` judges it)."""
        try:
            previous = mistral.executions(workflow, state="SUCCESS", limit=1,
                                          newest_first=True, include_output=True)
        except Exception as error:
            LOG.warning("cannot read the previous watch execution: %s", error)
            return {}, None
        if not previous:
            return {}, None
        output = previous[0].get("output") or {}
        held_at = timeutil.parse_time(output.get("global_limit_held_at"))
        last = timeutil.parse_time(output.get("last_cycle_at"))
        streaks = output.get("streaks")
        if not last or not isinstance(streaks, dict):
            return {}, held_at
        if (timeutil.utcnow() - last).total_seconds() > 3 * interval + 5:
            return {}, held_at
        return {h: int(n) for h, n in streaks.items() if isinstance(n, int)}, held_at


def _limited_aggregates(aggregates):
    limited = []
    for aggregate in aggregates:
        raw = (aggregate.get("metadata") or {}).get(deciding.AGGREGATE_LIMIT_KEY)
        if raw is None:
            continue
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            LOG.warning("aggregate %s: %s=%r is not a whole number; ignored",
                        aggregate.get("name"), deciding.AGGREGATE_LIMIT_KEY, raw)
            continue
        limited.append({"name": aggregate.get("name"), "hosts": aggregate.get("hosts") or [],
                        "limit": limit})
    return limited
