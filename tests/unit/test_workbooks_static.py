# SPDX-License-Identifier: Apache-2.0
"""Every shipped workbook is cross-checked against its actions and workflows."""

import pytest

from selfheal_tools import data
from selfheal_tools import workbook_checks

WORKBOOKS = data.workbook_paths()


def test_the_package_ships_workbooks():
    assert [p.name for p in WORKBOOKS] == sorted(p.name for p in WORKBOOKS)
    assert "host_failure.yaml" in [p.name for p in WORKBOOKS]


def test_entry_points_resolve_to_our_actions():
    actions = workbook_checks.selfheal_actions()
    assert {"selfheal.fence_host", "selfheal.evacuate_and_verify", "selfheal.enable_host",
            "selfheal.locate_instances"} <= set(actions)
    assert "host" in actions["selfheal.fence_host"]["required"]


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_shipped_workbook_is_clean(path):
    assert workbook_checks.check_workbook_text(path.read_text(), path.name) == []


def _host_failure():
    return (data.workbooks_dir() / "host_failure.yaml").read_text()


@pytest.mark.parametrize("old, new, expected", [
    ("          max_down_ratio: <% $.max_down_ratio %>\n          max_down_hosts",
     "          max_down_ration: <% $.max_down_ratio %>\n          max_down_hosts",
     "action selfheal.evacuate_and_verify has no input(s) ['max_down_ration']"),
    ("action: selfheal.evacuate_and_verify", "action: selfheal.evacuate_and_verfy",
     "unknown action"),
    ("        workflow: evacuate_host", "        workflow: evacuate_hots", "unknown workflow"),
    ("        workflow: evacuate_host\n        input:\n          host: <% $.item.host %>\n",
     "        workflow: evacuate_host\n        input:\n",
     "workflow evacuate_host needs input(s) ['host']"),
    ("reason: <% $.reason %>", "reason: <% $.reasno %>", "reads $.reasno"),
    ("version: '2.0'", "version: '2.0'\n  bad: [", "not valid YAML"),
])
def test_broken_copies_are_caught(old, new, expected):
    text = _host_failure()
    assert old in text
    problems = workbook_checks.check_workbook_text(text.replace(old, new, 1), "copy.yaml")
    assert any(expected in str(p) for p in problems), problems
