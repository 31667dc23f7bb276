"""Static cross-checks of workbooks, beyond what Mistral's parser checks.

A sub-workflow or action called with an input it does not declare is a
latent runtime failure that a syntax check never catches. These checks read
the workbook YAML and compare every call against its target:

* each ``action: selfheal.*`` task's inputs against the action's
  ``__init__`` parameters (unknown ones, and required ones missing);
* each static ``workflow:`` call against the target workflow's ``input``;
* each ``$.name`` a workflow reads against what it declares (inputs, vars,
  publishes, ``with-items`` variables).

:func:`check_workbook_text` returns a list of :class:`Problem`; empty means
clean.
"""

import importlib
import importlib.metadata
import inspect
import re

import yaml

#: Mistral's standard actions used by our workbooks, with their parameters.
STANDARD_ACTIONS = {
    "std.noop": {"required": set(), "optional": set()},
    "std.fail": {"required": set(), "optional": {"error_data"}},
    "std.echo": {"required": {"output"}, "optional": {"delay"}},
}

_VAR = re.compile(r"\$\.([A-Za-z_][A-Za-z0-9_]*)")
_EXPRESSION = re.compile(r"<%|{{")


class Problem:
    """One finding: where it is and what to fix."""

    def __init__(self, where, message):
        self.where = where
        self.message = message

    def __str__(self):
        return f"{self.where}: {self.message}"

    def __repr__(self):
        return f"Problem({str(self)!r})"


def selfheal_actions():
    """``{name: {"required": set, "optional": set}}`` from our entry points."""
    found = {}
    for ep in importlib.metadata.entry_points(group="mistral.actions"):
        if not ep.name.startswith("selfheal."):
            continue
        module, _, cls = ep.value.partition(":")
        action_class = getattr(importlib.import_module(module), cls)
        params = list(inspect.signature(action_class.__init__).parameters.values())[1:]
        found[ep.name] = {
            "required": {p.name for p in params if p.default is inspect.Parameter.empty},
            "optional": {p.name for p in params if p.default is not inspect.Parameter.empty},
        }
    return found


def declared_inputs(workflow):
    """``(required, optional)`` input names of a workflow spec dict."""
    required, optional = set(), set()
    for item in workflow.get("input") or []:
        if isinstance(item, dict):
            optional.update(item)
        else:
            required.add(item)
    return required, optional


def _check_call(where, given, required, optional, target):
    problems = []
    unknown = sorted(set(given) - required - optional)
    missing = sorted(required - set(given))
    if unknown:
        problems.append(Problem(where, f"{target} has no input(s) {unknown}; it takes "
                                f"{sorted(required | optional)}"))
    if missing:
        problems.append(Problem(where, f"{target} needs input(s) {missing}"))
    return problems


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _known_variables(workflow):
    required, optional = declared_inputs(workflow)
    known = required | optional | set(workflow.get("vars") or {})
    for task in (workflow.get("tasks") or {}).values():
        for key in ("publish", "publish-on-error"):
            known |= set(task.get(key) or {})
        items = task.get("with-items")
        for spec in [items] if isinstance(items, str) else items or []:
            known.add(spec.split(" in ")[0].strip())
    return known


def check_workbook(spec, name="workbook", actions=None):
    """Cross-check a parsed workbook dict; return a list of Problems."""
    actions = {**STANDARD_ACTIONS, **(actions if actions is not None else selfheal_actions())}
    workflows = spec.get("workflows") or {}
    problems = []
    for wf_name, workflow in workflows.items():
        known_vars = _known_variables(workflow)
        for text in _strings({k: v for k, v in workflow.items() if k != "description"}):
            for var in _VAR.findall(text):
                if var not in known_vars:
                    problems.append(Problem(f"{name}: workflow {wf_name}",
                                            f"reads $.{var}, which is not an input, var, "
                                            "publish or with-items variable"))
        for task_name, task in (workflow.get("tasks") or {}).items():
            where = f"{name}: workflow {wf_name}, task {task_name}"
            given = set(task.get("input") or {})
            if "action" in task:
                action = task["action"].split()[0]
                if _EXPRESSION.search(action):
                    continue
                if action not in actions:
                    problems.append(Problem(where, f"unknown action '{action}'"))
                    continue
                problems += _check_call(where, given, actions[action]["required"],
                                        actions[action]["optional"], f"action {action}")
            elif "workflow" in task:
                target = task["workflow"].split()[0]
                if _EXPRESSION.search(target):
                    continue
                short = target.split(".")[-1]
                if short not in workflows:
                    problems.append(Problem(where, f"unknown workflow '{target}'"))
                    continue
                required, optional = declared_inputs(workflows[short])
                problems += _check_call(where, given, required, optional, f"workflow {short}")
    return problems


def check_workbook_text(text, name="workbook", actions=None):
    """Parse YAML text and cross-check it; a YAML error is one Problem."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [Problem(name, f"not valid YAML: {e}")]
    if not isinstance(spec, dict) or "workflows" not in spec:
        return [Problem(name, "not a Mistral workbook (no 'workflows' section)")]
    return check_workbook(spec, name, actions)
