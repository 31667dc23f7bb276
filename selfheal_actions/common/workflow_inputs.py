# SPDX-License-Identifier: Apache-2.0
"""One rule set for the inputs of every shipped workflow: ``selfheal.check_inputs``.

A workflow uses some of its inputs itself, in YAQL, before or beside the
actions that validate them (a task timeout ``$.timeout + 120``, a branch
``not $.dry_run``, the name of a sub-workflow). There a wrong type does harm:
``"false"`` is a true string, ``"abc" + 120`` is a raw YAQL error, a timeout
of 10^12 seconds leaves the execution RUNNING. So each workflow's first task
checks every input against the rules below (the same checks the actions use,
:mod:`selfheal_actions.common.inputs`) and publishes the normalised values
under the same names: the rest of the workflow sees ``false``, not
``"false"``, and bad input ends the execution before anything is read or
changed, with ``invalid_input`` naming the input.
"""

from selfheal_actions.common import inputs
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import shown


def _boolean(name, value):
    return inputs.boolean(name, value)


def _text(name, value):
    return inputs.text(name, value)


def _optional_text(name, value):
    return inputs.text(name, value, required=False)


def _text_list(name, value):
    return inputs.text_list(name, value)


def _integer(minimum, maximum):
    return lambda name, value: inputs.number(name, value, minimum, maximum, integer=True)


def _number(minimum, maximum):
    return lambda name, value: inputs.number(name, value, minimum, maximum)


def _optional_integer(minimum, maximum):
    def check(name, value):
        if value is None or value == "":
            return None
        return inputs.number(name, value, minimum, maximum, integer=True)
    return check


def _one_of(*choices):
    def check(name, value):
        if value not in choices:
            raise InvalidInput(f"input '{name}' must be one of {list(choices)}, got "
                               f"{shown(value)}")
        return value
    return check


def _fencing(name, value):
    """How the host failure flow fences: null (auto, or workflow when a
    fencing_workflow is named), auto, power, nova_only or workflow."""
    if value is None:
        return None
    return _one_of("auto", "power", "nova_only", "workflow")(name, value)


def _workflow_name(name, value):
    """A workflow name (``book.workflow`` or a standalone name), or null."""
    text = inputs.text(name, value, required=False)
    if text is not None and (any(c.isspace() for c in text) or "<%" in text or "{{" in text):
        raise InvalidInput(f"input '{name}' must name a workflow (no spaces or expressions), "
                           f"got {shown(value)}")
    return text


def _mapping(name, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"input '{name}' must be a mapping, got {shown(value)}")
    return value


def _long_text(name, value):
    return inputs.text(name, value, required=False, max_length=2000)


def _moment(name, value):
    from selfheal_actions.common import timeutil

    text = inputs.text(name, value, required=False)
    if text is None:
        return None
    if timeutil.parse_time(text) is None:
        raise InvalidInput(f"input '{name}' must be a UTC time like 2026-11-22T10:00:00Z, "
                           f"got {shown(value)}")
    return text


#: input name -> check(name, value) returning the normalised value; the
#: bounds are those of the actions the inputs go to
RULES = {
    "host": _text,
    "stack": _text,
    "stack_id": _text,
    "member": _text,
    "root_stack_id": _optional_text,
    "reason": _optional_text,
    "exclude_metadata_key": _optional_text,
    "microversion": inputs.microversion,
    "instance_ids": _text_list,
    "target_hosts": _text_list,
    "exclude_flavors": _text_list,
    "exclude_images": _text_list,
    "dry_run": _boolean,
    "force": _boolean,
    "host_powered_off": _boolean,
    "include_error_instances": _boolean,
    "require_monitoring": _boolean,
    "concurrency": _integer(1, 200),
    "max_attempts": _integer(1, 10),
    "max_down_ratio": _number(0, 1),
    "max_down_hosts": _optional_integer(1, 10000),
    "wait_for_down": _number(0, 600),
    "settle_seconds": _number(0, 60),
    "timeout": _number(10, 3600),
    "wait_seconds": _number(1, 600),
    "fencing_workflow": _workflow_name,
    "fencing": _fencing,
    "host_known_dead": _boolean,
    "power_on": _boolean,
    "power_attempts": _integer(1, 10),
    "power_timeout": _number(1, 600),
    "cold_migration": _one_of("stopped", "fallback", "never"),
    "until": _moment,
    "since": lambda name, value: _moment(name, value) or "",
    # the host watch (selfheal.host_failure.watch)
    "interval": _number(1, 300),
    "period": _number(0, 3600),
    "samples": _integer(1, 20),
    "stale_after": _number(1, 3600),
    "prometheus_url": _long_text,
    "prometheus_query": _long_text,
    "host_label": _optional_text,
    "max_failed_ratio": _number(0.01, 1),
    "max_starts": _integer(1, 100),
    "budget": _integer(1, 1000),
    "per_host_concurrency": _integer(1, 200),
    "heal_workflow": lambda name, value: _workflow_name(name, inputs.text(name, value)),
    "heal_input": _mapping,
    "retry_after": _number(0, 86400),
    "settle_after": _number(0, 3600),
    "kill_switch": _text,
    "keep_executions": _integer(1, 1000),
    # project notifications of planned maintenance (selfheal.maintenance.notify_projects)
    "state": _one_of("MAINTENANCE", "IN_MAINTENANCE", "MAINTENANCE_COMPLETE"),
    "lead_time": _integer(0, 604800),
    "projects": _mapping,
    "session_id": _optional_text,
    "queue": _text,
    "notify_projects": _boolean,
    "notifications": _mapping,
    # maintenance: owners, server groups, rolling
    "owner_instances": _text_list,
    "owner_window": _number(0, 7200),
    "max_impacted_members": _integer(1, 1000),
    "hosts": _text_list,
    "aggregate": _optional_text,
    "name": _optional_text,
    "k": _integer(1, 100),
    "work_workflow": _workflow_name,
    "return_timeout": _number(10, 7200),
}

#: where a workflow's action takes other bounds than the shared rule
OVERRIDES = {
    "selfheal.maintenance.start_maintenance": {"concurrency": _integer(1, 100),
                                               "timeout": _number(10, 7200)},
    "selfheal.maintenance.rolling_maintenance": {"concurrency": _integer(1, 100),
                                                 "timeout": _number(10, 7200)},
    "selfheal.maintenance._maintain_host": {"concurrency": _integer(1, 100),
                                            "timeout": _number(10, 7200),
                                            "name": _text},
    # whole seconds: the workflow's task timeout is computed from it
    "selfheal.autoheal.heal_from_alarm": {"timeout": _integer(1, 7200)},
    "selfheal.autoheal.mark_unhealthy": {"timeout": _integer(1, 7200)},
}


def rule(workflow, name):
    """The check of input ``name`` of ``workflow``, or None when there is none."""
    return OVERRIDES.get(workflow, {}).get(name) or RULES.get(name)


def _check_fencing(checked):
    """``fencing`` and ``fencing_workflow`` must agree."""
    if "fencing" not in checked or "fencing_workflow" not in checked:
        return
    mode, workflow = checked["fencing"], checked["fencing_workflow"]
    if mode == "workflow" and not workflow:
        raise InvalidInput("input 'fencing' is workflow but no 'fencing_workflow' is named")
    if workflow and mode not in (None, "workflow"):
        raise InvalidInput(f"input 'fencing' is {mode} but a 'fencing_workflow' is named: "
                           "leave 'fencing' empty or set it to workflow")


class CheckInputsAction(SelfhealAction):
    """Check a workflow's inputs against the shared rules; return them normalised.

    The first task of every shipped workflow: bad input ends the execution
    before anything is read or changed. Changes nothing.

    :param workflow: the workflow's full name (``selfheal.<area>.<name>``).
    :param inputs: the workflow's inputs (name -> value).
    :returns: ``workflow`` and ``inputs`` (the same names, normalised:
        booleans as booleans, numbers as numbers, lists as lists). Error
        reasons: ``invalid_input`` (the message names the input and what it
        must be).
    """

    action_name = "selfheal.check_inputs"

    def __init__(self, workflow, inputs):
        self.workflow = workflow
        self.inputs = inputs

    def execute(self, context):
        workflow = inputs.text("workflow", self.workflow)
        if not isinstance(self.inputs, dict):
            raise InvalidInput(f"input 'inputs' must be a mapping, got {shown(self.inputs)}")
        checked = {}
        for name, value in self.inputs.items():
            check = rule(workflow, name)
            if check is None:
                raise InvalidInput(f"workflow {workflow} has an input '{name}' that no rule "
                                   "checks: add it to selfheal_actions/common/workflow_inputs.py")
            checked[name] = check(name, value)
        _check_fencing(checked)
        return {"workflow": workflow, "inputs": checked, "changes": []}
