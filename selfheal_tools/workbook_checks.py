# SPDX-License-Identifier: Apache-2.0
"""Static cross-checks of workbooks, beyond what Mistral's parser checks.

A sub-workflow or action called with an input it does not declare is a
latent runtime failure that a syntax check never catches. These checks read
the workbook YAML and compare every call against its target:

* each ``action: selfheal.*`` task: the action exists, and its inputs
  against the action's ``__init__`` parameters (unknown ones, and required
  ones missing); the standard actions listed below are checked the same way;
  any other action (``std.http``, mistral-extra's, an operator's own) cannot
  be judged offline and passes here (``selfheal validate --mistral-url``
  checks every action name against a running Mistral);
* each static ``workflow:`` call: to a workflow of the same workbook, of
  another workbook given or shipped (inputs checked), or to a ``selfheal.*``
  workflow that must exist; a call to another pack's workflow passes;
* each ``$.name`` a workflow reads against what it declares (inputs, vars,
  publishes, ``with-items`` variables).

:func:`check_workbook_text` returns a list of :class:`Problem`; empty means
clean.
"""

import difflib
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
#: YAQL collection methods whose argument is a lambda: there ``$`` is the item
_LAMBDA_CALL = re.compile(r"\.(where|select|selectMany|any|all|orderBy|groupBy|sum|"
                          r"takeWhile|skipWhile|first|last|single|distinct)\(")


def _outside_lambdas(text):
    """``text`` without the arguments of YAQL lambda calls (``.where($.x)``)."""
    out, pos = [], 0
    for match in _LAMBDA_CALL.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos:match.end()])
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        pos = i - 1 if depth == 0 else len(text)
    out.append(text[pos:])
    return "".join(out)
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


def _action_problems(where, action, given, actions):
    if action in actions:
        return _check_call(where, given, actions[action]["required"],
                           actions[action]["optional"], f"action {action}")
    if action.startswith("selfheal."):
        close = difflib.get_close_matches(action, sorted(actions), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return [Problem(where, f"unknown action '{action}'{hint}: selfheal has no such action")]
    return []  # std.*, mistral-extra, an operator's own: not ours to judge offline


def _workflow_problems(where, target, given, book, workflows, known):
    """Check a ``workflow:`` call. ``workflows``: this workbook's; ``known``:
    ``{"<workbook>.<workflow>": (required, optional)}`` of the others."""
    prefix = f"{book}." if book else ""
    if target in workflows or (prefix and target.startswith(prefix)
                               and target[len(prefix):] in workflows):
        short = target[len(prefix):] if target not in workflows else target
        required, optional = declared_inputs(workflows[short])
        return _check_call(where, given, required, optional, f"workflow {short}")
    if target in known:
        required, optional = known[target]
        return _check_call(where, given, required, optional, f"workflow {target}")
    if "." not in target or target.startswith("selfheal."):
        return [Problem(where, f"unknown workflow '{target}'")]
    return []  # another pack's workflow: it lives in that Mistral, not in these files


def check_workbook(spec, name="workbook", actions=None, workflows=None):
    """Cross-check a parsed workbook dict; return a list of Problems.

    :param actions: ``{name: {"required", "optional"}}`` of the selfheal
        actions (default: read from the installed entry points).
    :param workflows: ``{"<workbook>.<workflow>": (required, optional)}`` of
        other workbooks a call may name (default: none but this one's).
    """
    actions = {**STANDARD_ACTIONS, **(actions if actions is not None else selfheal_actions())}
    own = spec.get("workflows") or {}
    book = spec.get("name") or ""
    problems = []
    for wf_name, workflow in own.items():
        known_vars = _known_variables(workflow)
        for text in _strings({k: v for k, v in workflow.items() if k != "description"}):
            for var in _VAR.findall(_outside_lambdas(text)):
                if var not in known_vars:
                    problems.append(Problem(f"{name}: workflow {wf_name}",
                                            f"reads $.{var}, which is not an input, var, "
                                            "publish or with-items variable"))
        for task_name, task in (workflow.get("tasks") or {}).items():
            where = f"{name}: workflow {wf_name}, task {task_name}"
            given = set(task.get("input") or {})
            key = "action" if "action" in task else "workflow" if "workflow" in task else None
            if key is None or not isinstance(task[key], str) or _EXPRESSION.search(task[key]):
                continue
            target = task[key].split()[0]
            if key == "action":
                problems += _action_problems(where, target, given, actions)
            else:
                problems += _workflow_problems(where, target, given, book, own, workflows or {})
    return problems


def actions_named(spec):
    """Every static action name the tasks of a parsed workbook call."""
    names = set()
    for workflow in (spec.get("workflows") or {}).values():
        for task in (workflow.get("tasks") or {}).values():
            action = task.get("action")
            if isinstance(action, str) and not _EXPRESSION.search(action):
                names.add(action.split()[0])
    return names


def _load(text, name, section, kind):
    """``(spec, problems)``: the parsed YAML, or why it is not a ``kind``."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return None, [Problem(name, f"not valid YAML: {e}")]
    if not isinstance(spec, dict) or section not in spec:
        return None, [Problem(name, f"not a {kind} (no '{section}' section)")]
    return spec, []


def check_workbook_text(text, name="workbook", actions=None, workflows=None):
    """Parse YAML text and cross-check it; a YAML error is one Problem."""
    spec, problems = _load(text, name, "workflows", "Mistral workbook")
    return problems or check_workbook(spec, name, actions, workflows)


# Vitrage templates ---------------------------------------------------------

_FUNCTION = re.compile(r"^(get_attr|get_param)\(([^()]*)\)$")
_RELATION = re.compile(r"\[\s*([^\]]*?)\s*\]")

# Read from Vitrage 15 (EdgeLabel and the datasources' *_DATASOURCE names).
# Its validator accepts any string in these places, so a typo there gives a
# template that loads and never fires.
VITRAGE_RELATIONSHIPS = {"attached", "attached_private", "attached_public", "causes",
                         "comprised", "connect", "contains", "managed_by", "on"}
VITRAGE_ENTITY_TYPES = {"aodh", "cetus.cluster", "cetus.pod", "cinder.volume", "collectd",
                        "doctor", "heat.stack", "kapacitor", "kubernetes", "monasca", "nagios",
                        "neutron.network", "neutron.port", "nova.host", "nova.instance",
                        "nova.zone", "openstack.cluster", "prometheus", "static",
                        "tmfapi639", "trove.cluster", "trove.instance", "vitrage", "zabbix"}
_TERM = re.compile(r"([A-Za-z_][\w.-]*)\s*\[\s*\w+\s*\]\s*([A-Za-z_][\w.-]*)|([A-Za-z_][\w.-]*)")
_KEYWORDS = {"AND", "OR", "NOT"}


def workbook_workflows(paths):
    """``{"<workbook>.<workflow>": (required inputs, optional inputs)}``."""
    found = {}
    for path in paths:
        spec = yaml.safe_load(path.read_text())
        if not isinstance(spec, dict) or not spec.get("name"):
            continue  # reported by check_workbook_text
        for wf_name, workflow in (spec.get("workflows") or {}).items():
            found[f"{spec['name']}.{wf_name}"] = declared_inputs(workflow)
    return found


def _condition_groups(condition):
    """Entity names of a condition, and groups of names linked by relationships."""
    names, links = set(), []
    for left, right, single in _TERM.findall(condition.replace("(", " ").replace(")", " ")):
        if single in _KEYWORDS:
            continue
        if left:
            names |= {left, right}
            links.append((left, right))
        else:
            names.add(single)
    return names, links


def _connected(names, links):
    component = {n: n for n in names}

    def root(n):
        while component[n] != n:
            n = component[n]
        return n

    for a, b in links:
        component[root(a)] = root(b)
    return len({root(n) for n in names}) <= 1


def _check_value(where, key, value, entities, parameters):
    problems = []
    if not isinstance(value, str):
        return [Problem(where, f"'{key}' is {type(value).__name__} {value!r}: Vitrage's "
                        "evaluator needs strings here (quote it)")]
    if "(" not in value and ")" not in value:
        return problems
    match = _FUNCTION.match(value.strip())
    if not match:
        return [Problem(where, f"'{key}': {value!r} has parentheses but is not a get_attr(...) "
                        "or get_param(...) call; the validator accepts it but the evaluator "
                        "crashes on it. Remove the parentheses.")]
    function, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
    if function == "get_attr" and (len(args) != 2 or args[0] not in entities):
        problems.append(Problem(where, f"'{key}': {value} names no entity of this template "
                                f"(entities: {sorted(entities)})"))
    if function == "get_param" and (len(args) != 1 or args[0] not in parameters):
        problems.append(Problem(where, f"'{key}': {value} names no declared parameter"))
    return problems


def check_vitrage_template(spec, name, workflows):
    """Cross-check a parsed v3 template dict; return a list of Problems.

    :param workflows: from :func:`workbook_workflows`.
    """
    problems = []
    if str((spec.get("metadata") or {}).get("version")) != "3":
        problems.append(Problem(name, "metadata.version must be 3"))
    entities = spec.get("entities") or {}
    parameters = spec.get("parameters") or {}
    for entity, props in entities.items():
        for key, value in (props or {}).items():
            problems += _check_value(f"{name}: entity {entity}", key, value, entities,
                                     parameters)
        problems += _check_entity_type(f"{name}: entity {entity}", (props or {}).get("type"),
                                       parameters)
    for number, scenario in enumerate(spec.get("scenarios") or [], 1):
        where = f"{name}: scenario {number}"
        condition = scenario.get("condition") or ""
        for label in _RELATION.findall(condition):
            if label not in VITRAGE_RELATIONSHIPS:
                problems.append(Problem(where, f"relationship [{label}] is not one Vitrage "
                                        f"creates ({sorted(VITRAGE_RELATIONSHIPS)}): the "
                                        "condition would never match"))
        names, links = _condition_groups(condition)
        unknown = sorted(names - set(entities))
        if unknown:
            problems.append(Problem(where, f"condition names unknown entities {unknown}"))
        elif not _connected(names, links):
            problems.append(Problem(where, "condition is disconnected: every entity must be "
                                    "linked to the others by a relationship"))
        for action in scenario.get("actions") or []:
            for kind, props in action.items():
                props = props or {}
                for key, value in props.items():
                    values = value.items() if isinstance(value, dict) else [(key, value)]
                    for sub_key, sub_value in values:
                        problems += _check_value(f"{where}, {kind}", sub_key, sub_value,
                                                 entities, parameters)
                if kind == "execute_mistral":
                    problems += _check_mistral_call(f"{where}, execute_mistral", props,
                                                    workflows)
    return problems


def _check_entity_type(where, entity_type, parameters):
    """A type (or a parameter's default type) must be one Vitrage knows."""
    if not isinstance(entity_type, str):
        return []
    match = _FUNCTION.match(entity_type.strip())
    if match and match.group(1) == "get_param":
        entity_type = str((parameters.get(match.group(2).strip()) or {}).get("default", ""))
        if not entity_type:
            return []
    if entity_type in VITRAGE_ENTITY_TYPES:
        return []
    return [Problem(where, f"type '{entity_type}' is not a Vitrage datasource type: the entity "
                    "would never match (known: nova.host, nova.instance, heat.stack, doctor, "
                    "aodh, zabbix, ...)")]


def _check_mistral_call(where, props, workflows):
    workflow = props.get("workflow")
    if workflow not in workflows:
        return [Problem(where, f"workflow '{workflow}' is not in the workbooks "
                        f"(known: {sorted(workflows)})")]
    required, optional = workflows[workflow]
    return _check_call(where, set(props.get("input") or {}), required, optional,
                       f"workflow {workflow}")


def check_vitrage_template_text(text, name, workflows):
    """Parse a template's YAML text and cross-check it against ``workflows``."""
    spec, problems = _load(text, name, "scenarios", "Vitrage template")
    return problems or check_vitrage_template(spec, name, workflows)
