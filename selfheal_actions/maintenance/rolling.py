# SPDX-License-Identifier: Apache-2.0
"""The actions of the rolling maintenance (``selfheal.maintenance.rolling_maintenance``).

The decisions are in :mod:`selfheal_actions.maintenance.rolling_plan`. The
states of the hosts are kept in Mistral environments (the service that runs
the workflow; names unique per project):

* ``selfheal-rolling-<name>``: the plan (hosts in order, ``k``, the
  execution that runs it), written by :class:`PlanRollingAction` only;
* ``selfheal-rolling-<name>--<host>``: one host's state (``state``,
  ``since``, ``work_done``, ``resume`` (how to end a pause), ``execution``),
  written only by that host's steps, so that hosts maintained at the same
  time never overwrite each other. Its description is the state in words.

While the execution runs, an operator reads them with
``mistral environment-list`` (one line per host, the state in the
description) or ``mistral environment-get selfheal-rolling-<name>--<host>``;
the last step's published ``status`` and the execution's output at the end
say the same.
"""

import re

from mistral_lib import actions

from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common import mistral_api
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import shown
from selfheal_actions.maintenance import rolling_plan as rolling

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
#: execution states in which an earlier run still owns the plan
_ALIVE = ("IDLE", "WAITING", "RUNNING", "RUNNING_DELAYED", "PAUSED")


def _name(value):
    text = inputs.text("name", value, required=False)
    if text is not None and not _NAME.match(text):
        raise InvalidInput(f"input 'name' must be letters, digits, '.', '_' or '-' (at most "
                           f"151, starting with a letter or digit), got {shown(value)}")
    return text


def host_environment(name, host):
    return f"{rolling.environment_name(name)}--{host}"


def read_states(api, name, hosts):
    """``{host: state dict}`` from the hosts' environments (absent: waiting)."""
    states = {}
    for host in hosts:
        found = api.environment(host_environment(name, host))
        states[host] = found if found else {"state": rolling.WAITING}
    return states


def write_state(api, name, host, state):
    """Write one host's state (create or replace its environment)."""
    env = host_environment(name, host)
    state = dict(state, since=timeutil.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    described = f"{state['state']}" + (f": {state['note']}" if state.get("note") else "")
    if not api.create_environment(env, state, description=described):
        try:
            api.update_environment(env, state, description=described)
        except mistral_api.EnvironmentGone:
            api.create_environment(env, state, description=described)
    return state


class PlanRollingAction(SelfhealAction):
    """Plan a rolling maintenance of a set of hosts, or take over one that stopped.

    Checks, before anything changes: the hosts (a list, or an aggregate's
    members) are nova-compute hosts; ``work_workflow``, when named, exists
    and takes a ``host`` input; no other execution runs this plan; the
    instances of every host not yet done fit on the other hosts
    (``rolling_plan.room``); a server's ``selfheal:maintenance`` value
    is a policy. Then records the plan in the environment
    ``selfheal-rolling-<name>``. A rerun with the same hosts (same name)
    continues: done hosts stay done, the others are started again.

    :param hosts: host names, in the order to maintain them.
    :param aggregate: or the name of a host aggregate (its hosts, in its order).
    :param name: the plan's name (letters, digits, ``._-``); default from
        the aggregate or the hosts, so the same hosts find their states.
    :param k: hosts maintained at once (1-100, default 1).
    :param work_workflow: the workflow run per host between drain and return
        (input ``host``); empty: a pause the operator ends.
    :param owner_instances: instance ids whose owner moves them itself.
    :param target_hosts: the only hosts to move instances to (empty: any
        up and enabled host).
    :param dry_run: check and return the plan; record nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``name``, ``environment``, ``hosts``, ``status`` (done,
        in_progress, waiting, failed), ``rooms`` (per host not done: needed,
        free per target), ``resumed`` (a rerun took over), ``read_status``
        (the command that shows the states while it runs), ``changes``.
        Error reasons: ``invalid_input``, ``host_not_found``,
        ``aggregate_not_found``, ``workflow_not_found``, ``rolling_busy``
        (another execution runs this plan), ``rolling_mismatch`` (this name
        was planned for other hosts), ``not_enough_room`` (the details list,
        per host, the instances that fit nowhere and what each target has
        free), ``invalid_instance_policy``.
    """

    action_name = "selfheal.plan_rolling_maintenance"

    def __init__(self, hosts=None, aggregate=None, name=None, k=1, work_workflow=None,
                 owner_instances=None, target_hosts=None, dry_run=False, microversion=None):
        self.hosts = hosts
        self.aggregate = aggregate
        self.name = name
        self.k = k
        self.work_workflow = work_workflow
        self.owner_instances = owner_instances
        self.target_hosts = target_hosts
        self.dry_run = dry_run
        self.microversion = microversion

    def _validated(self):
        args = {"hosts": inputs.text_list("hosts", self.hosts),
                "aggregate": inputs.text("aggregate", self.aggregate, required=False),
                "name": _name(self.name),
                "k": inputs.number("k", self.k, 1, 100, integer=True),
                "work_workflow": inputs.text("work_workflow", self.work_workflow,
                                             required=False),
                "owner_instances": inputs.text_list("owner_instances", self.owner_instances),
                "target_hosts": inputs.text_list("target_hosts", self.target_hosts),
                "dry_run": inputs.boolean("dry_run", self.dry_run),
                "microversion": inputs.microversion("microversion", self.microversion)}
        if bool(args["hosts"]) == bool(args["aggregate"]):
            raise InvalidInput("give either 'hosts' (a list) or 'aggregate' (a name), "
                               "not both and not neither")
        if len(set(args["hosts"])) != len(args["hosts"]):
            raise InvalidInput(f"input 'hosts' names a host twice: {args['hosts']}")
        return args

    def execute(self, context):
        from selfheal_actions.maintenance import drain

        args = self._validated()
        api = compute.NovaApi(clients.nova(context, args["microversion"]))
        services = api.compute_services()
        hosts = args["hosts"] or self._aggregate_hosts(api, args["aggregate"])
        for host in hosts:
            compute.find_service(services, host)
        name = args["name"] or rolling.default_name(hosts, args["aggregate"])
        mistral = mistral_api.mistral(context)
        if args["work_workflow"]:
            _check_work_workflow(mistral, args["work_workflow"])
        env = rolling.environment_name(name)
        planned = mistral.environment(env)
        execution = clients.execution_id(context)
        resumed = False
        if planned is not None:
            _check_same_plan(mistral, planned, hosts, name, execution)
            resumed = True
        states = read_states(mistral, name, hosts)
        rooms = []
        hypervisors = api.hypervisors()
        for host in hosts:
            if states[host].get("state") == rolling.DONE:
                continue
            servers = api.servers_on_host(host)
            drain._refuse_bad_policies(servers, args["owner_instances"], host)
            rooms.append(rolling.room(host, rolling.to_place(servers, args["owner_instances"]),
                                      hypervisors, services, target_hosts=args["target_hosts"]))
        lacking = [r for r in rooms if not r["fits"]]
        if lacking:
            raise ActionFailure(
                "not_enough_room", "; ".join(rolling.room_message(r) for r in lacking)
                + ". Nothing was changed: free capacity or add hosts, then run again.",
                name=name, rooms=rooms)
        changes = []
        if not args["dry_run"]:
            plan = {"name": name, "hosts": hosts, "k": args["k"], "execution": execution,
                    "aggregate": args["aggregate"], "work_workflow": args["work_workflow"]}
            if not mistral.create_environment(env, plan, f"rolling maintenance of "
                                              f"{len(hosts)} hosts"):
                mistral.update_environment(env, plan)
            changes.append(change(f"environment {env}", "resumed" if resumed else "planned",
                                  execution=execution))
            for host in hosts:
                if states[host].get("state") in rolling.IN_PROGRESS + (rolling.FAILED,):
                    states[host] = write_state(mistral, name, host,
                                               rolling.resumed({host: states[host]})[host])
        return {"name": name, "environment": env, "hosts": hosts,
                "status": rolling.summary(hosts, states), "rooms": rooms, "resumed": resumed,
                "read_status": f"mistral environment-list | grep {env}",
                "changes": changes}

    @staticmethod
    def _aggregate_hosts(api, aggregate):
        for found in api.aggregates():
            if found.get("name") == aggregate:
                if not found.get("hosts"):
                    raise ActionFailure("aggregate_not_found",
                                        f"aggregate '{aggregate}' has no hosts")
                return list(found["hosts"])
        raise ActionFailure("aggregate_not_found", f"no host aggregate named '{aggregate}'",
                            aggregate=aggregate)


def _check_work_workflow(mistral, name):
    found = mistral.workflow(name)
    if found is None:
        raise ActionFailure("workflow_not_found",
                            f"work_workflow '{name}' does not exist in Mistral: create it "
                            "(it is run once per host with input host) or fix the name",
                            workflow=name)
    declared = [p.split("=")[0].strip() for p in (found.get("input") or "").split(",")]
    if "host" not in declared:
        raise ActionFailure("workflow_not_found",
                            f"work_workflow '{name}' has no input 'host' (it declares "
                            f"{found.get('input') or 'none'}): it is run with the host's name",
                            workflow=name)


def _check_same_plan(mistral, planned, hosts, name, execution):
    if list(planned.get("hosts") or []) != list(hosts):
        raise ActionFailure(
            "rolling_mismatch",
            f"the rolling maintenance '{name}' was planned for hosts {planned.get('hosts')}, "
            f"not {hosts}. Run it with those hosts to continue it, or give another name.",
            name=name)
    owner = planned.get("execution")
    if owner and owner != execution:
        earlier = mistral.execution(owner)
        if earlier is not None and earlier.get("state") in _ALIVE:
            raise ActionFailure(
                "rolling_busy",
                f"execution {owner} still runs the rolling maintenance '{name}' (state "
                f"{earlier['state']}). Let it end, or stop it first "
                f"(mistral execution-update {owner} -s ERROR), then run again.",
                name=name, execution=owner)


class RollingProgressAction(SelfhealAction):
    """Record a host's step of a rolling maintenance, or read what to do next.

    :param name: the plan's name (from ``selfheal.plan_rolling_maintenance``).
    :param host: the host whose state to record; empty only reads.
    :param state: ``waiting``, ``draining``, ``working``, ``returning``,
        ``done`` or ``failed``.
    :param note: a few words kept with the state (e.g. the error).
    :param work_done: record that the host's work has ended (a rerun does
        not repeat it).
    :returns: ``name``, ``host``, ``state`` (the host's, as recorded),
        ``next`` (without a host: up to ``k`` hosts to start now),
        ``in_progress`` (hosts in progress other than ``host``), ``status``
        (done, in_progress, waiting, failed). Error reasons:
        ``invalid_input``, ``rolling_not_found``.
    """

    action_name = "selfheal.rolling_progress"

    def __init__(self, name, host=None, state=None, note=None, work_done=None):
        self.name = name
        self.host = host
        self.state = state
        self.note = note
        self.work_done = work_done

    def execute(self, context):
        name = _name(self.name)
        if name is None:
            raise InvalidInput("input 'name' is required")
        host = inputs.text("host", self.host, required=False)
        state = inputs.text("state", self.state, required=False)
        if host and state not in rolling.STATES:
            raise InvalidInput(f"input 'state' must be one of {list(rolling.STATES)}, got "
                               f"{shown(self.state)}")
        mistral = mistral_api.mistral(context)
        plan = mistral.environment(rolling.environment_name(name))
        if plan is None:
            raise ActionFailure("rolling_not_found",
                                f"no rolling maintenance named '{name}' (environment "
                                f"{rolling.environment_name(name)})", name=name)
        hosts = list(plan.get("hosts") or [])
        if host and host not in hosts:
            raise InvalidInput(f"host '{host}' is not one of the hosts of '{name}': {hosts}")
        states = read_states(mistral, name, hosts)
        changes = []
        if host:
            recorded = dict(states[host])
            recorded.update(state=state, execution=clients.execution_id(context))
            recorded["note"] = inputs.text("note", self.note, required=False, max_length=500)
            if self.work_done is not None:
                recorded["work_done"] = inputs.boolean("work_done", self.work_done)
            if state != rolling.WORKING:
                recorded.pop("resume", None)
            states[host] = write_state(mistral, name, host, recorded)
            changes.append(change(f"host {host}", state))
        result = {"name": name, "host": host, "status": rolling.summary(hosts, states),
                  "changes": changes}
        if host:
            result["state"] = states[host]
            result["in_progress"] = [h for h in hosts if h != host and states[h].get(
                "state") in rolling.IN_PROGRESS]
        else:
            result["next"] = rolling.next_hosts(hosts, states, int(plan.get("k") or 1))
        return result


class CheckHostRoomAction(SelfhealAction):
    """Check that the instances a drain of ``host`` moves fit on other hosts.

    Run just before a host's maintenance starts (the others' maintenance
    moved instances since the plan was made). Changes nothing.

    :param host: the host about to be drained.
    :param exclude_hosts: other hosts not to count on (in maintenance too).
    :param owner_instances: instance ids whose owner moves them itself
        (counted: they get the default if the owner does not).
    :param target_hosts: the only hosts to count on (empty: any).
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``fits``, ``needed``, ``targets`` (free vCPUs, MB of
        RAM, GB of disk per target, as Nova reports), ``unplaced``,
        ``short``. Error reasons: ``invalid_input``, ``host_not_found``,
        ``not_enough_room`` (the details are the same keys).
    """

    action_name = "selfheal.check_host_room"

    def __init__(self, host, exclude_hosts=None, owner_instances=None, target_hosts=None,
                 microversion=None):
        self.host = host
        self.exclude_hosts = exclude_hosts
        self.owner_instances = owner_instances
        self.target_hosts = target_hosts
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        exclude = inputs.text_list("exclude_hosts", self.exclude_hosts)
        owners = inputs.text_list("owner_instances", self.owner_instances)
        api = compute.NovaApi(clients.nova(context, inputs.microversion(
            "microversion", self.microversion)))
        services = api.compute_services()
        compute.find_service(services, host)
        report = rolling.room(host, rolling.to_place(api.servers_on_host(host), owners),
                              api.hypervisors(), services, exclude,
                              inputs.text_list("target_hosts", self.target_hosts))
        if not report["fits"]:
            raise ActionFailure("not_enough_room", rolling.room_message(report)
                                + ". Nothing was changed on this host.", **report)
        return dict(report, changes=[])


class WaitForOperatorAction(actions.Action):
    """Wait, without a time limit, until the operator says a host's work is done.

    An asynchronous action: it records in the host's state (environment
    ``selfheal-rolling-<name>--<host>``, key ``resume``) the command that
    ends the wait, ``mistral action-execution-update <id> --state SUCCESS``,
    and stays RUNNING until then (across restarts of Mistral: the wait is in
    its database). ``--state ERROR`` stops the host's maintenance instead.

    :param name: the rolling maintenance's name.
    :param host: the host whose work the operator does.
    :returns: nothing until the operator ends it; then what was sent.
    """

    def __init__(self, name, host):
        self.name = name
        self.host = host

    def is_sync(self):
        return False

    def run(self, context):
        action_id = getattr(getattr(context, "execution", None), "action_execution_id", None)
        command = f"mistral action-execution-update {action_id} --state SUCCESS"
        try:
            mistral = mistral_api.mistral(context)
            states = read_states(mistral, self.name, [self.host])
            state = dict(states[self.host], state=rolling.WORKING, resume=command,
                         note=f"waiting for the operator: {command}")
            write_state(mistral, self.name, self.host, state)
        except Exception as error:  # never leave an unreadable wait behind
            return actions.Result(error={
                "action": "selfheal.wait_for_operator", "reason": "api_error",
                "message": f"could not record how to end the wait: {error}",
                "changed": False, "changes": [], "details": {}})
        return None
