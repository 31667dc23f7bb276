# SPDX-License-Identifier: Apache-2.0
"""One cycle of the host watch, as a pure function: what the signals say,
which gates hold, which hosts to heal now.

No I/O here: :mod:`selfheal_actions.watch.watch` observes, calls
:func:`decide` once per cycle and acts on what it returns. Every verdict
carries a stable reason, and :func:`decision_line` turns a cycle into the
one line an operator reads in the executor's log and in the watch's output.

A host is **failed** when every configured signal says so for ``samples``
consecutive cycles: Nova (its nova-compute service is down, forced down, or
has not reported for longer than ``stale_after``) and, when Prometheus is
configured, the host's exporter (``up`` is 0). Nova down with the exporter
up means only nova-compute (or its message bus) died while the guests may
run: reported, never healed. The gates are checked in this order, and each
holds every candidate of the cycle:

``paused``
    the kill switch is on.
``control_plane``
    every enabled compute host looks failed to Nova at once: the control
    plane, its database or its message bus failed, not the hosts.
``prometheus_unavailable``
    Prometheus is configured but did not answer: one signal is missing.
``no_scheduler``
    no nova-scheduler is up: evacuations could not be placed.
``global_limit``
    the hosts failing now plus those selfheal fenced earlier reach
    ``max_failed_ratio`` of the compute hosts: a partition or a power
    event, for a person to look at.
``settling``
    the global limit held less than ``settle_after`` seconds ago: as the
    hosts of a switch blip come back one by one, the share of failing hosts
    falls under the limit while the last ones are still silent; they are
    not fenced for being late (the watch keeps the time, ``world["settling"]``).

then, per host: ``recent_failure`` (its last heal failed lately: it is
not started again every cycle; see the watch's ``retry_after``),
``aggregate_limit`` (more failed hosts in one of its host
aggregates than that aggregate's ``selfheal:max_failures`` metadata allows),
``max_starts`` (no more hosts started this cycle) and ``budget`` (the
cloud-wide evacuation budget is held by heals in flight).
"""

import collections

#: the aggregate metadata key holding its failure limit
AGGREGATE_LIMIT_KEY = "selfheal:max_failures"

Settings = collections.namedtuple("Settings", [
    "samples",             # consecutive failed cycles before a host is failed
    "max_failed_ratio",    # global gate, 0-1
    "max_starts",          # hosts started per cycle
    "budget",              # evacuations in flight across the cloud
    "per_host_concurrency",  # evacuations in flight for one host
    "use_exporter",        # Prometheus configured
])


def nova_failing(observation):
    """True when Nova's signal says the host failed."""
    return observation["nova"] in ("down", "stale", "forced_down")


def _signals(observation, use_exporter):
    text = observation["nova"]
    if observation["nova"] == "stale":
        text = f"nova stale {observation.get('age', 0):.0f}s"
    else:
        text = f"nova {text}"
    if use_exporter:
        exporter = observation.get("exporter")
        text += {True: ", exporter up", False: ", exporter down",
                 None: ", no exporter"}[exporter]
    return text


def _host_verdict(observation, streak, settings):
    """``(verdict, reason, new streak)`` for one host from its signals alone."""
    if observation["status"] != "enabled":
        kind = observation.get("marker")
        reason = {"maintenance": "planned maintenance", "fenced": "fenced by selfheal"}.get(
            kind, "disabled by an operator")
        return "skipped", reason, 0
    by_nova = nova_failing(observation)
    if settings.use_exporter:
        disagreement = _disagreement(by_nova, observation.get("exporter"))
        if disagreement:
            return "disagree", disagreement, 0
    if not by_nova:
        return "healthy", None, 0
    streak += 1
    return ("failed" if streak >= settings.samples else "suspect"), None, streak


def _disagreement(by_nova, exporter):
    """Why Nova and the exporter (True up, False down, None no sample) do
    not agree, or None when they do."""
    if by_nova and exporter is True:
        return ("nova-compute is down but the host's exporter answers: only "
                "nova-compute or its message bus failed, the guests may run; "
                "not fenced (restart nova-compute)")
    if by_nova and exporter is None:
        return ("Nova sees the host down but Prometheus has no exporter for it: "
                "cannot confirm; not fenced")
    if not by_nova and exporter is False:
        return ("the exporter is down but nova-compute reports: a monitoring or "
                "network problem, not a dead host")
    return None


def decide(observations, streaks, settings, world):
    """Decide one cycle.

    :param observations: one dict per nova-compute host: ``host``, ``status``
        (enabled/disabled), ``marker`` (selfheal marker kind or None),
        ``nova`` (up / down / stale / forced_down), ``age`` (seconds since
        its last report, by Nova's clock), ``exporter`` (True up, False
        down, None no target or not configured).
    :param streaks: ``{host: consecutive failed cycles}`` before this cycle.
    :param settings: a :class:`Settings`.
    :param world: ``paused`` (the kill switch's reason, or None),
        ``scheduler_up`` (bool), ``prometheus_error`` (text or None),
        ``healing`` (``{host: evacuations it may have in flight}`` for heals
        running now), ``failed_recently`` (``{host: what failed}`` for heals
        that ended in error lately: not restarted until later),
        ``aggregates`` (``[{"name", "hosts", "limit"}]`` of the aggregates
        that set a limit).
    :returns: ``{"streaks", "hosts": [{host, signals, streak, verdict,
        reason}], "start": [{host, concurrency, signals}], "gate": reason or
        None, "gate_message", "failing", "fenced", "compute_hosts"}``.
    """
    hosts, new_streaks = [], {}
    prometheus_error = world.get("prometheus_error")
    for observation in sorted(observations, key=lambda o: o["host"]):
        host = observation["host"]
        if prometheus_error and settings.use_exporter:
            verdict, reason, streak = "unknown", "Prometheus did not answer", streaks.get(host, 0)
        else:
            verdict, reason, streak = _host_verdict(observation, streaks.get(host, 0), settings)
        if streak:
            new_streaks[host] = streak
        if verdict in ("failed", "suspect") and host in world.get("healing", {}):
            verdict, reason = "healing", "a heal of this host is running"
        elif verdict == "failed" and host in world.get("failed_recently", {}):
            verdict, reason = "held", f"recent_failure: {world['failed_recently'][host]}"
        hosts.append({"host": host, "signals": _signals(observation, settings.use_exporter),
                      "streak": streak, "verdict": verdict, "reason": reason})

    enabled = [o for o in observations if o["status"] == "enabled"]
    fenced = [o["host"] for o in observations
              if o["status"] != "enabled" and o.get("marker") == "fenced"]
    failing = [h["host"] for h in hosts if h["streak"] or h["verdict"] == "healing"]
    compute_hosts = len(enabled) + len(fenced)
    result = {"streaks": new_streaks, "hosts": hosts, "start": [], "gate": None,
              "gate_message": None, "failing": failing, "fenced": fenced,
              "compute_hosts": compute_hosts}
    candidates = [h for h in hosts if h["verdict"] == "failed"]

    gate = _global_gate(enabled, failing, fenced, compute_hosts, settings, world)
    if gate:
        result["gate"], result["gate_message"] = gate
        for entry in candidates:
            entry.update(verdict="held", reason=gate[0])
        return result

    members = {}
    for aggregate in world.get("aggregates", []):
        for host in aggregate["hosts"]:
            members.setdefault(host, []).append(aggregate)
    down_now = set(failing) | set(fenced)
    in_flight = sum(world.get("healing", {}).values())
    for entry in sorted(candidates, key=lambda h: (-h["streak"], h["host"])):
        over = [a for a in members.get(entry["host"], [])
                if len(down_now & set(a["hosts"])) > a["limit"]]
        available = settings.budget - in_flight
        if over:
            a = over[0]
            entry.update(verdict="held", reason=(
                f"aggregate_limit: {len(down_now & set(a['hosts']))} hosts of aggregate "
                f"'{a['name']}' failed, its {AGGREGATE_LIMIT_KEY} is {a['limit']}"))
        elif len(result["start"]) >= settings.max_starts:
            entry.update(verdict="held", reason=f"max_starts: {settings.max_starts} host(s) "
                         "started this cycle; the next cycle starts more")
        elif available < 1:
            entry.update(verdict="held", reason=f"budget: {in_flight} of {settings.budget} "
                         "evacuations in flight are held by running heals")
        else:
            concurrency = min(settings.per_host_concurrency, available)
            in_flight += concurrency
            entry.update(verdict="start", reason=None)
            result["start"].append({"host": entry["host"], "concurrency": concurrency,
                                    "signals": entry["signals"]})
    return result


def _global_gate(enabled, failing, fenced, compute_hosts, settings, world):
    """``(reason, message)`` of the first cloud-wide gate that holds, or None."""
    if world.get("paused"):
        return "paused", f"the kill switch is on: {world['paused']}"
    if len(enabled) >= 2 and all(nova_failing(o) for o in enabled):
        return "control_plane", (
            f"all {len(enabled)} enabled compute hosts look failed to Nova at once: the "
            "control plane, its database or its message bus failed, not the hosts")
    if settings.use_exporter and world.get("prometheus_error"):
        return "prometheus_unavailable", f"Prometheus did not answer: {world['prometheus_error']}"
    if not world.get("scheduler_up", True):
        return "no_scheduler", "no nova-scheduler is up: evacuations could not be placed"
    down = len(set(failing) | set(fenced))
    if compute_hosts and down and down / compute_hosts >= settings.max_failed_ratio:
        return "global_limit", (
            f"{down} of {compute_hosts} compute hosts are failing or fenced "
            f"(>= {settings.max_failed_ratio:.0%}): a partition or a power event; a person "
            "must look")
    if world.get("settling"):
        return "settling", (f"the global limit held {world['settling']}: hosts still "
                            "coming back are not fenced for being late")
    return None


def decision_line(cycle, decision):
    """The one line that says what a cycle saw and did."""
    parts = [f"cycle {cycle}: {decision['compute_hosts']} compute hosts, "
             f"{len(decision['failing'])} failing, {len(decision['fenced'])} fenced"]
    for entry in decision["hosts"]:
        if entry["verdict"] in ("healthy", "skipped"):
            continue
        text = f"{entry['host']} [{entry['signals']}; {entry['streak']}] {entry['verdict']}"
        if entry["reason"]:
            text += f" ({entry['reason']})"
        parts.append(text)
    if decision["gate"]:
        parts.append(f"held: {decision['gate']}: {decision['gate_message']}")
    elif decision["start"]:
        parts.append("start " + ", ".join(
            f"{s['host']} (concurrency {s['concurrency']})" for s in decision["start"]))
    else:
        parts.append("nothing to do")
    return "; ".join(parts)
