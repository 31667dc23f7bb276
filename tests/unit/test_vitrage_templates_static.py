# SPDX-License-Identifier: Apache-2.0
"""Every shipped Vitrage template is cross-checked against the workbooks.

Vitrage's own validator (run in the lab's Vitrage venv, see
tests/functional/test_vitrage.py) lets some mistakes through that crash the
evaluator or send Mistral a wrong call; these checks catch them.
"""

import pytest
import yaml

from selfheal_actions.common import alarm_names
from selfheal_tools import data
from selfheal_tools import workbook_checks

TEMPLATES = data.vitrage_template_paths()
WORKFLOWS = workbook_checks.workbook_workflows(data.workbook_paths())


def test_templates_are_shipped():
    assert {p.name for p in TEMPLATES} >= {"host_failure.yaml", "instance_unreachable.yaml"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_shipped_template_is_clean(path):
    assert workbook_checks.check_vitrage_template_text(path.read_text(), path.name, WORKFLOWS) == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_use_the_one_maintenance_alarm(path):
    entities = yaml.safe_load(path.read_text())["entities"]
    assert entities["maintenance"] == {"type": alarm_names.MAINTENANCE_ALARM_TYPE,
                                       "name": alarm_names.MAINTENANCE_ALARM}


def _host_template():
    return (data.vitrage_templates_dir() / "host_failure.yaml").read_text()


@pytest.mark.parametrize("old, new, expected", [
    ("alarm_name: selfheal.instance.host_down", "alarm_name: host down (deduced)",
     "has parentheses but is not a get_attr"),
    ("reason: get_attr(nic_down, name)", "reason: get_attr(nic_alarm, name)",
     "names no entity of this template"),
    ("reason: get_attr(nic_down, name)", "reason: 5", "'reason' is int"),
    ("workflow: selfheal.host_failure.evacuate_host\n          input:\n            host: "
     "get_attr(host, name)\n            reason: get_attr(nic_down, name)",
     "workflow: selfheal.host_failure.evacuate_hots\n          input:\n            host: "
     "get_attr(host, name)\n            reason: get_attr(nic_down, name)",
     "is not in the workbooks"),
    ("            host: get_attr(host, name)\n            reason: get_attr(nic_down, name)",
     "            hostname: get_attr(host, name)\n            reason: get_attr(nic_down, name)",
     "has no input(s) ['hostname']"),
    ("  - condition: nic_down [on] host AND NOT maintenance [on] host",
     "  - condition: nic_down [on] host AND instance AND NOT maintenance [on] host",
     "condition is disconnected"),
    ("name: get_param(nic_down_alarm)", "name: get_param(nic_alarm)",
     "names no declared parameter"),
    # the next two pass Vitrage's own validator, and never fire
    ("type: nova.host", "type: nova.hots", "type 'nova.hots' is not a Vitrage datasource"),
    ("  - condition: nic_down [on] host AND NOT", "  - condition: nic_down [onn] host AND NOT",
     "relationship [onn] is not one Vitrage creates"),
    ("    default: doctor", "    default: doctr", "type 'doctr' is not a Vitrage datasource"),
])
def test_broken_copies_are_caught(old, new, expected):
    text = _host_template()
    assert old in text
    problems = workbook_checks.check_vitrage_template_text(text.replace(old, new, 1), "copy.yaml",
                                                  WORKFLOWS)
    assert any(expected in str(p) for p in problems), problems
