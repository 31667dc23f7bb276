# SPDX-License-Identifier: Apache-2.0
"""Rolling maintenance of a set of hosts: pure decisions.

No client here. :func:`room` says whether the instances a host's drain will
move fit on the other hosts, as Nova reports their resources;
:func:`next_hosts` picks the hosts to start next from the recorded states;
:func:`summary` turns the states into what an operator reads.

The states of the hosts of one rolling maintenance live in a Mistral
environment (:func:`environment_name`), written by each step, so that an
operator reads them while the execution runs
(``mistral environment-get selfheal-rolling-<name>``) and a rerun continues
where the last one stopped. A host goes::

    waiting -> draining -> working -> returning -> done
                    \\___________\\__________\\____> failed

``draining``: checked for room, put in maintenance and emptied
(``start_maintenance``); ``working``: the operator's work (a workflow, or a
pause the operator ends); ``returning``: ``finish_maintenance`` once the host
is healthy. A rerun starts the hosts not ``done`` again, in order: every
step is idempotent (the drain moves nothing twice), and the work of a host
whose work ended (``work_done``) is not done again.
"""

import hashlib

from selfheal_actions.maintenance import drain_plan as plans

WAITING = "waiting"
DRAINING = "draining"
WORKING = "working"
RETURNING = "returning"
DONE = "done"
FAILED = "failed"
STATES = (WAITING, DRAINING, WORKING, RETURNING, DONE, FAILED)
IN_PROGRESS = (DRAINING, WORKING, RETURNING)

#: the environment prefix (Mistral environment names are unique per project)
PREFIX = "selfheal-rolling-"
#: resources compared, as Nova's hypervisor details name them
RESOURCES = (("vcpus", "vcpus", "vcpus_used"), ("memory_mb", "memory_mb", "memory_mb_used"),
             ("disk_gb", "local_gb", "local_gb_used"))
_FLAVOR = {"vcpus": "vcpus", "memory_mb": "ram", "disk_gb": "disk"}


def default_name(hosts, aggregate=None):
    """The name of a rolling maintenance the operator did not name: the
    aggregate's, or one derived from the sorted host names (same hosts,
    same name: a rerun finds its states)."""
    if aggregate:
        return f"aggregate-{aggregate}"
    digest = hashlib.sha1(",".join(sorted(hosts)).encode()).hexdigest()[:10]
    return f"hosts-{digest}"


def environment_name(name):
    return PREFIX + name


def new_states(hosts):
    return {h: {"state": WAITING} for h in hosts}


def next_hosts(hosts, states, k):
    """Up to ``k`` hosts to start now: none while ``k`` are in progress,
    else the first hosts (in the given order) not done and not in progress.

    A host in progress from a run that stopped is started again by a rerun:
    the caller marks the earlier run's hosts ``waiting`` when it takes over
    (:func:`resumed`).
    """
    busy = [h for h in hosts if states.get(h, {}).get("state") in IN_PROGRESS]
    room = max(k - len(busy), 0)
    todo = [h for h in hosts if states.get(h, {}).get("state", WAITING) in (WAITING, FAILED)]
    return todo[:room]


def resumed(states):
    """The states as a rerun takes them over: hosts an earlier run left in
    progress or failed wait again (keeping ``work_done``)."""
    taken = {}
    for host, state in states.items():
        state = dict(state)
        if state.get("state") in IN_PROGRESS + (FAILED,):
            state["resumed_from"] = state["state"]
            state["state"] = WAITING
        taken[host] = state
    return taken


def summary(hosts, states):
    """``{done, in_progress: {host: state}, waiting, failed}`` in host order."""
    def having(*wanted):
        return [h for h in hosts if states.get(h, {}).get("state", WAITING) in wanted]

    return {"done": having(DONE),
            "in_progress": {h: states[h]["state"] for h in having(*IN_PROGRESS)},
            "waiting": having(WAITING),
            "failed": having(FAILED)}


def _needs(server):
    flavor = server.get("flavor") or {}
    return {r: int(flavor.get(_FLAVOR[r]) or 0) for r, _, _ in RESOURCES}


def _free(hypervisor):
    return {r: int(hypervisor.get(total) or 0) - int(hypervisor.get(used) or 0)
            for r, total, used in RESOURCES}


def to_place(servers, owner_instances=()):
    """The servers of a host that need room elsewhere: all but those its
    policy keeps on the host (``stop_start``) and those being deleted."""
    found = []
    for server in servers:
        policy, _ = plans.policy_of(server, owner_instances)
        decision, _, _ = plans.decide(server, None, policy=policy or plans.DEFAULT_POLICY)
        if decision in ("move", "owner", "leave"):
            found.append(server)
    return found


def room(host, servers, hypervisors, services, exclude=(), target_hosts=()):
    """Whether the instances a drain of ``host`` moves fit elsewhere.

    Each instance (largest memory first) is placed on the target with the
    most free memory that has enough vCPUs, memory and disk, as Nova's
    hypervisor details report them (used against total, no overcommit: an
    answer that errs on the safe side), among the up and enabled compute
    hosts other than ``host`` and ``exclude``.

    :param servers: the servers to place (:func:`to_place`), with their
        flavor (``vcpus``, ``ram``, ``disk``; microversion 2.47+).
    :param hypervisors: hypervisor dicts (``service.host`` and the usage).
    :param services: nova-compute service dicts.
    :param exclude: other hosts not to count on (in maintenance with it).
    :param target_hosts: when given, the only hosts to count on (the
        drain's ``target_hosts``).
    :returns: ``{host, fits, needed, targets: {host: free}, unplaced:
        [{id, name, needs}], short: {resource: amount missing in total}}``.
    """
    usable = {s["host"] for s in services if s["host"] != host and s["host"] not in exclude
              and s["state"] == "up" and s["status"] == "enabled" and not s.get("forced_down")
              and (not target_hosts or s["host"] in target_hosts)}
    targets = {}
    for hypervisor in hypervisors:
        name = (hypervisor.get("service") or {}).get("host") or \
            hypervisor.get("hypervisor_hostname")
        if name in usable:
            targets[name] = _free(hypervisor)
    free = {t: dict(f) for t, f in targets.items()}
    needed = {r: 0 for r, _, _ in RESOURCES}
    unplaced = []
    for server in sorted(servers, key=lambda s: -_needs(s)["memory_mb"]):
        needs = _needs(server)
        for r in needed:
            needed[r] += needs[r]
        fitting = [t for t in free if all(free[t][r] >= needs[r] for r in needs)]
        if not fitting:
            unplaced.append({"id": server["id"], "name": server.get("name"), "needs": needs})
            continue
        best = max(fitting, key=lambda t: (free[t]["memory_mb"], t))
        for r in needs:
            free[best][r] -= needs[r]
    # in total (an instance may also not fit because the free room is split)
    short = {r: max(needed[r] - sum(max(f[r], 0) for f in targets.values()), 0)
             for r in needed}
    return {"host": host, "fits": not unplaced, "needed": needed, "targets": targets,
            "unplaced": unplaced, "short": short}


def room_message(report):
    """One line saying what is missing for ``report`` (:func:`room`)."""
    names = ", ".join(f"{u['name']} ({u['id']}: {u['needs']['vcpus']} vCPU, "
                      f"{u['needs']['memory_mb']} MB RAM, {u['needs']['disk_gb']} GB disk)"
                      for u in report["unplaced"])
    targets = "; ".join(f"{t}: {f['vcpus']} vCPU, {f['memory_mb']} MB RAM, {f['disk_gb']} GB "
                        "disk free" for t, f in sorted(report["targets"].items())) or "none"
    return (f"not enough room to empty '{report['host']}': no other host fits {names}. "
            f"Free on the targets: {targets}")
