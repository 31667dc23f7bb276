# SPDX-License-Identifier: Apache-2.0
"""Every input of every shipped workflow is checked first, by one rule set.

The bad values are generated from each input's default (its type): for a
number NaN, infinities, a huge and a negative value and a word; for a
boolean words that are not true/false and numbers; for a list a number;
for text a number and 10 kB. Each must end with ``invalid_input`` naming the
input, before anything is read or changed.
"""

import math

import pytest
import yaml

from selfheal_actions.common import workflow_inputs
from selfheal_tools import data


def workflows():
    for path in data.workbook_paths():
        spec = yaml.safe_load(path.read_text())
        for name, workflow in spec["workflows"].items():
            yield f"{spec['name']}.{name}", workflow


def declared(workflow):
    for item in workflow.get("input") or []:
        yield (next(iter(item.items())) if isinstance(item, dict) else (item, None))


ALL = [(wf, name, default) for wf, workflow in workflows() for name, default in
       declared(workflow)]


#: inputs whose default (null, or none: required) does not show their type
TYPED = {"max_down_hosts": [0, -1, "NaN", float("inf"), 1.5, "abc", True],
         "instance_ids": [5, [""], [1, 2], {"a": 1}]}


def bad_values(name, default):
    if name in TYPED:
        return TYPED[name]
    if isinstance(default, bool):
        return ["nope", "yes", 1, 0, None, [True]]
    if isinstance(default, (int, float)):
        return [float("nan"), "NaN", float("inf"), "-inf", 1e12, -5, "abc", [1], True]
    if isinstance(default, list):
        return [5, [""], [1, 2], {"a": 1}]
    if name == "microversion":
        return ["latest", "3.1", "2.x", [2]]
    return [5, ["a"], "x" * 10000]


def run(workflow, inputs):
    return workflow_inputs.CheckInputsAction(workflow=workflow, inputs=inputs).run(None)


def test_every_workflow_checks_its_inputs_first_with_every_input():
    for name, workflow in workflows():
        tasks = workflow["tasks"]
        first = tasks["check_inputs"]
        assert first["action"] == "selfheal.check_inputs", name
        assert first["input"]["workflow"] == name
        assert set(first["input"]["inputs"]) == {n for n, _ in declared(workflow)}, name
        assert set(first["publish"]) == {n for n, _ in declared(workflow)}, name
        targets = {t for task in tasks.values() for key in ("on-success", "on-error",
                   "on-complete") for t in [next(iter(i)) if isinstance(i, dict) else i
                                            for i in task.get(key) or []]}
        assert [t for t in tasks if t not in targets] == ["check_inputs"], name


@pytest.mark.parametrize("workflow,name,default", ALL,
                         ids=[f"{w.split('.', 1)[1]}:{n}" for w, n, _ in ALL])
def test_every_input_has_a_rule_and_its_default_passes(workflow, name, default):
    assert workflow_inputs.rule(workflow, name), f"{workflow}: no rule for '{name}'"
    if default is not None:
        result = run(workflow, {name: default})
        assert result.error is None, result.error


@pytest.mark.parametrize("workflow,name,default", ALL,
                         ids=[f"{w.split('.', 1)[1]}:{n}" for w, n, _ in ALL])
def test_bad_values_are_refused_naming_the_input(workflow, name, default):
    if name not in TYPED and name in ("reason", "root_stack_id", "exclude_metadata_key",
                                      "since", "until", "fencing_workflow") and (
            default in (None, "")):
        values = [5, ["a"], "x" * 10000]
    else:
        values = bad_values(name, default)
    for value in values:
        result = run(workflow, {name: value})
        assert result.error is not None, (name, value, result.data)
        assert result.error["reason"] == "invalid_input"
        assert f"'{name}'" in result.error["message"] and len(result.error["message"]) < 300
        assert result.error["changes"] == []


def test_strings_a_person_means_are_normalised():
    result = run("selfheal.maintenance.start_maintenance",
                 {"dry_run": "false", "force": "TRUE", "timeout": "600", "concurrency": "4",
                  "target_hosts": "", "cold_migration": "never"})
    assert result.data["inputs"] == {"dry_run": False, "force": True, "timeout": 600.0,
                                     "concurrency": 4, "target_hosts": [],
                                     "cold_migration": "never"}
    assert not math.isnan(result.data["inputs"]["timeout"])


def test_a_fencing_workflow_name_with_an_expression_is_refused():
    result = run("selfheal.host_failure.evacuate_host",
                 {"fencing_workflow": "<% $.x %>"})
    assert result.error["reason"] == "invalid_input" and "fencing_workflow" in (
        result.error["message"])


def test_fencing_and_fencing_workflow_must_agree():
    wf = "selfheal.host_failure.evacuate_host"
    bad = run(wf, {"fencing": "workflow", "fencing_workflow": None})
    assert bad.error["reason"] == "invalid_input" and "'fencing'" in bad.error["message"]
    bad = run(wf, {"fencing": "power", "fencing_workflow": "ops.ipmi_off"})
    assert bad.error["reason"] == "invalid_input"
    assert run(wf, {"fencing": None, "fencing_workflow": "ops.ipmi_off"}).error is None
    assert run(wf, {"fencing": "nova_only", "fencing_workflow": None}).error is None
