# SPDX-License-Identifier: Apache-2.0
"""The product wheel carries what Mistral and an operator need (actions, entry
points, the operator command, the YAML) and nothing of the lab; the lab builds
as its own distribution."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ("workbooks/host_failure.yaml", "workbooks/autoheal.yaml",
           "workbooks/maintenance.yaml", "vitrage_templates/host_failure.yaml",
           "heat_templates/autohealing_group.yaml", "heat_templates/autohealing_member.yaml")


def build(source, into):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--wheel-dir", str(into), str(source)],
                   check=True)


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory):
    where = tmp_path_factory.mktemp("product")
    build(ROOT, where)
    (wheel,) = where.glob("selfheal-*.whl")
    return zipfile.ZipFile(wheel)


def test_product_wheel_ships_the_actions_the_tools_and_the_yaml(product_wheel):
    names = product_wheel.namelist()
    for shipped in SHIPPED:
        assert any(n.endswith(f"data/share/selfheal/{shipped}") for n in names), shipped
    for module in ("selfheal_actions/hosts/evacuation.py", "selfheal_actions/moves/records.py",
                   "selfheal_actions/heat/yaql_functions.py", "selfheal_tools/cli.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = product_wheel.read(entry_points).decode()
    assert "[mistral.actions]" in text and "[mistral.expression.functions]" in text
    for line in ("selfheal.evacuate_and_verify = "
                 "selfheal_actions.hosts.evacuation:EvacuateAndVerifyAction",
                 "selfheal.mark_unhealthy = "
                 "selfheal_actions.heat.mark_unhealthy:MarkUnhealthyAction",
                 "selfheal_alarm = selfheal_actions.heat.yaql_functions:selfheal_alarm",
                 "selfheal = selfheal_tools.cli:main"):
        assert line in text
    assert any(n.endswith("LICENSE") for n in names)


def test_product_wheel_has_no_lab_and_nothing_that_installs_system_packages(product_wheel):
    names = product_wheel.namelist()
    assert not [n for n in names if n.startswith("selfheal_lab")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "selfheal-lab" not in product_wheel.read(entry_points).decode()
    for name in names:
        if name.endswith((".py", ".txt", ".yaml")):
            text = product_wheel.read(name).decode(errors="replace")
            assert "apt-get" not in text, name


def test_the_lab_builds_as_its_own_distribution(tmp_path):
    build(ROOT / "lab", tmp_path)
    (wheel,) = tmp_path.glob("selfheal_lab-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "selfheal_lab/requirements/nova.txt" in names
    assert "selfheal_lab/services/nova_box.py" in names
    assert not [n for n in names if n.startswith(("selfheal_actions", "selfheal_tools"))]
    metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: selfheal" in metadata
    entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"selfheal-lab = selfheal_lab.cli:main" in entry_points
