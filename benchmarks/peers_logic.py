# SPDX-License-Identifier: Apache-2.0
"""The pure decisions of the host-failure peers benchmark (``peers.py``).

No lab, no clock, no I/O: what "truly recovered" means for one server and
for a whole run (the observer), whether what a contender said was true,
the floor's sliding window and which window is the floor, the statistics
of repetitions, per-contender request attribution from the lab Nova's
per-client counters, the Nova box's CPU seconds from ``/proc``, and the
merge of results written in parts (``--only``).

Every function takes plain values (dicts as Nova's API returns them,
numbers) and returns plain values, so that ``tests/unit/test_bench_peers.py``
checks each decision without a lab.
"""

import statistics

HOST = "OS-EXT-SRV-ATTR:host"
TASK = "OS-EXT-STS:task_state"
#: the states a server is expected back in, from the power state it had
EXPECTED_STATUS = ("ACTIVE", "SHUTOFF")
SETTLED_MIGRATION = ("done", "error", "failed")


# --- the observer ------------------------------------------------------------

def server_verdict(server, dead_host, expected_status):
    """One server as the observer sees it in one ``GET /servers/detail``.

    :param server: Nova's server dict, or None when it is not listed (gone).
    :param dead_host: the failed host.
    :param expected_status: the status it had before the failure
        (``ACTIVE`` or ``SHUTOFF``).
    :returns: ``recovered`` (off the dead host, no task in progress, in its
        previous status), ``gone``, ``error`` (status ERROR), ``on_dead_host``,
        ``busy`` (a task in progress elsewhere) or ``wrong_power`` (settled
        elsewhere in another status).
    """
    if expected_status not in EXPECTED_STATUS:
        raise ValueError(f"expected_status must be one of {EXPECTED_STATUS}, "
                         f"not {expected_status!r}")
    if server is None:
        return "gone"
    if server.get("status") == "ERROR":
        return "error"
    if server.get(HOST) == dead_host:
        return "on_dead_host"
    if server.get(TASK):
        return "busy"
    if server.get("status") != expected_status:
        return "wrong_power"
    return "recovered"


def snapshot(servers, dead_host, expected):
    """``{server id: verdict}`` for every id of ``expected`` (``{id: status}``),
    from the server dicts of one listing (others ignored)."""
    by_id = {s["id"]: s for s in servers if s.get("id") in expected}
    return {sid: server_verdict(by_id.get(sid), dead_host, want)
            for sid, want in expected.items()}


def counts(verdicts):
    """``{verdict: how many}`` of one snapshot."""
    out = {}
    for v in verdicts.values():
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def recovered_at(samples):
    """When the run was truly recovered, from the observer's samples.

    :param samples: ``[(seconds since t0, {id: verdict}), ...]`` in time order.
    :returns: the time of the first sample from which every later sample
        (itself included) has every server ``recovered``, or None. A run
        that looked recovered and then lost a server (a duplicate
        evacuation rebuilding it, an ERROR) is recovered only from the next
        time it is whole again.
    """
    at = None
    for t, verdicts in samples:
        whole = bool(verdicts) and all(v == "recovered" for v in verdicts.values())
        if whole and at is None:
            at = t
        elif not whole:
            at = None
    return at


def truthful(said, final):
    """Was what the contender said when it finished true?

    :param said: ``{"ok": True/False/None, "failures": int or None}``:
        ``ok`` True = "everything recovered", False = "something failed"
        (``failures`` = how many, when it says), None = it says nothing.
    :param final: the observer's verdicts after the contender finished and
        Nova settled (``{id: verdict}``).
    :returns: ``{"truthful": True/False/None, "verdict": text}`` (None when
        the contender says nothing).
    """
    bad = sum(1 for v in final.values() if v != "recovered")
    if said.get("ok") is None:
        return {"truthful": None, "verdict": "silent"}
    if said["ok"]:
        if bad == 0:
            return {"truthful": True, "verdict": "true"}
        return {"truthful": False, "verdict": f"FALSE: said done, {bad} not recovered"}
    if bad == 0:
        return {"truthful": False, "verdict": "FALSE: said failed, all recovered"}
    if said.get("failures") is None or said["failures"] == bad:
        return {"truthful": True, "verdict": f"true ({bad} not recovered)"}
    return {"truthful": False,
            "verdict": f"FALSE: said {said['failures']} failed, {bad} not recovered"}


def evacuated_twice(migrations):
    """Was an evacuation asked while an earlier one of the same server had
    not failed? ``migrations``: one server's evacuation records (dicts with
    ``status``, ``created_at``, ``updated_at``; ISO strings compare in order).

    A retry after a failure that had already ended is not a double
    evacuation; a second request while the first was still running (or
    after it succeeded) is, even when Nova then fails the first one.
    """
    ordered = sorted(migrations, key=lambda m: (m["created_at"], m.get("id", 0)))
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        if (earlier["status"] not in ("error", "failed")
                or earlier["updated_at"] > later["created_at"]):
            return True
    return False


def outcome(final, migrations_by_server):
    """The fault rows' counts: ``recovered``, ``wrong_power``, ``error``,
    ``on_dead_host``, ``gone``, ``busy``, ``evacuated_twice`` and
    ``failed_attempts`` (evacuation records in error)."""
    out = {k: 0 for k in ("recovered", "wrong_power", "error", "on_dead_host", "gone", "busy")}
    out.update(counts(final))
    out["evacuated_twice"] = sum(1 for ms in migrations_by_server.values()
                                 if evacuated_twice(ms))
    out["failed_attempts"] = sum(1 for ms in migrations_by_server.values() for m in ms
                                 if m["status"] in ("error", "failed"))
    return out


# --- the floor -----------------------------------------------------------------

def window_step(pending, in_flight, settled, window):
    """The floor's sliding window: which servers to evacuate now.

    :param pending: server ids not asked yet, in order.
    :param in_flight: ids asked whose evacuation has not settled.
    :param settled: ids whose evacuation settled (done or error) since the
        last step.
    :param window: at most this many in flight (>= 1).
    :returns: ``(to_fire, pending, in_flight)`` after the step.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, not {window}")
    in_flight = [s for s in in_flight if s not in settled]
    room = max(0, window - len(in_flight))
    to_fire, pending = list(pending[:room]), list(pending[room:])
    return to_fire, pending, in_flight + to_fire


def floor_windows(n, windows=(5, 10, 25, 50)):
    """The windows the floor tries at N: those below N, and N (all at once)."""
    return sorted({w for w in windows if w < n} | {n})


def best(medians):
    """``(key, median)`` of the smallest median among ``{key: median}``
    (None values ignored), or ``(None, None)``."""
    known = {k: v for k, v in medians.items() if v is not None}
    if not known:
        return None, None
    key = min(known, key=lambda k: (known[k], str(k)))
    return key, known[key]


# --- statistics ----------------------------------------------------------------

def spread(values):
    """``{"n", "median", "min", "max"}`` of the numbers (None ignored), or
    None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"n": len(values), "median": round(statistics.median(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}


def overhead(seconds, floor_seconds):
    """A contender's repetitions against the floor's (same N).

    :param seconds: the contender's times to truly recovered (None: not
        recovered; ignored here, counted by the caller).
    :param floor_seconds: the floor's times at its best window.
    :returns: ``{"seconds": spread of T - median(floor), "ratio": median of
        T over median(floor), with min and max from the contender's
        extremes over the floor's opposite extremes}``, or None.
    """
    t, f = spread(seconds), spread(floor_seconds)
    if not t or not f or f["median"] <= 0 or f["min"] <= 0:
        return None
    return {"seconds": spread(s - f["median"] for s in seconds if s is not None),
            "ratio": {"median": round(t["median"] / f["median"], 3),
                      "min": round(t["min"] / f["max"], 3),
                      "max": round(t["max"] / f["min"], 3)}}


def cell_summary(runs):
    """The summary of one cell (one contender configuration at one N).

    :param runs: that cell's run records (``seconds`` to truly recovered or
        None, ``recovered`` count, ``instances``, ``requests``,
        ``nova_cpu_seconds``, ``keystone_cpu_seconds``, ``truthful``).
    """
    n = runs[0]["instances"]
    whole = [r for r in runs if r["recovered"] == n]
    return {
        "repetitions": len(runs),
        "all_recovered": len(whole) == len(runs),
        "recovered_fraction": round(sum(r["recovered"] for r in runs) / (n * len(runs)), 3),
        "seconds": spread(r["seconds"] for r in whole),
        "said_seconds": spread(r.get("said_seconds") for r in runs),
        "requests_per_instance": spread(r["requests"] / n for r in runs
                                        if r.get("requests") is not None),
        "nova_cpu_seconds": spread(r.get("nova_cpu_seconds") for r in runs),
        "keystone_cpu_seconds": spread(r.get("keystone_cpu_seconds") for r in runs),
        "truthful": sorted({str(r.get("truthful")) for r in runs}),
    }


# --- requests and CPU ----------------------------------------------------------

def attributed(before, after, exclude=("harness",)):
    """A contender's Nova requests between two snapshots of the lab Nova's
    per-client counters, the harness's own (observer, set-up) left out.

    :param before, after: ``{client: {route: n}}`` (``by_client`` of
        ``GET /requests`` on the Nova box's control endpoint).
    :returns: ``{"total": n, "by_route": {route: n}, "by_client": {...}}``.
    """
    by_route, by_client = {}, {}
    for client, routes in after.items():
        if client in exclude:
            continue
        earlier = before.get(client, {})
        for route, n in routes.items():
            d = n - earlier.get(route, 0)
            if d > 0:
                by_route[route] = by_route.get(route, 0) + d
                by_client[client] = by_client.get(client, 0) + d
    return {"total": sum(by_route.values()), "by_route": dict(sorted(by_route.items())),
            "by_client": dict(sorted(by_client.items()))}


def cpu_seconds(stat_text, ticks_per_second):
    """User + system CPU seconds of a process (and its waited-for children)
    from the text of ``/proc/<pid>/stat``."""
    # the command name (field 2) may hold spaces: split after its ')'
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / ticks_per_second


# --- results in parts ------------------------------------------------------------

def merge(parts):
    """One result from several (``--only`` runs): their runs, each kept
    once (by ``run_id``), and every part's command and configuration.

    :param parts: result dicts ``{"runs": [...], "meta": {...}}``.
    """
    runs, seen, metas = [], set(), []
    for part in parts:
        metas.append(part.get("meta", {}))
        for run in part.get("runs", []):
            if run["run_id"] not in seen:
                seen.add(run["run_id"])
                runs.append(dict(run, part=part.get("meta", {}).get("part")))
    return {"runs": runs, "parts": metas}


def main_table_runs(runs):
    """The runs the main table summarises: the sweep's are left out when
    other parts are present (the sweep picks the settings, at other hours),
    else they are all there is."""
    others = [r for r in runs if r.get("part") != "sweep"]
    return others or runs


def cells(runs):
    """Runs grouped by ``(scenario, instances, contender)``, sorted."""
    out = {}
    for r in runs:
        out.setdefault((r["scenario"], r["instances"], r["contender"]), []).append(r)
    return dict(sorted(out.items()))


def floor_of(runs, n):
    """``(contender name, its times, median)`` of the floor at N: the floor
    window with the best median among the clean runs that recovered
    everything (see :func:`best`), or ``(None, [], None)``."""
    medians, times = {}, {}
    for (scenario, count, name), rs in cells(runs).items():
        if scenario == "clean" and count == n and name.startswith("floor-"):
            whole = [r["seconds"] for r in rs if r["recovered"] == n and r["seconds"] is not None]
            times[name] = whole
            medians[name] = statistics.median(whole) if whole else None
    name, median = best(medians)
    return name, times.get(name, []), median
