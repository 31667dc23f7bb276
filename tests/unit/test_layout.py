# SPDX-License-Identifier: Apache-2.0
"""The shape of the code: what Mistral loads stays apart from the operator
tools and the lab, and no flow reaches into another flow's internals."""

import ast
import importlib
import pathlib

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

import pytest
from mistral_lib import actions

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACTIONS = ROOT / "selfheal_actions"
FLOWS = ("hosts", "maintenance", "heat", "watch")
SHARED = ("common", "moves")
#: what each part of selfheal_actions may import of selfheal_actions
ALLOWED = {"common": {"common"}, "moves": {"common", "moves"},
           **{flow: {"common", "moves", flow} for flow in FLOWS}}


def imported_modules(source):
    """Every module an ``import`` or ``from ... import`` in ``source`` names
    (also inside functions); ``from pkg import mod`` counts as ``pkg.mod``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def boundary_violations(part, source):
    """What a module of ``selfheal_actions.<part>`` (``""`` for the package
    itself) must not import, found in ``source``."""
    bad = []
    for name in sorted(imported_modules(source)):
        top = name.split(".")[0]
        if top in ("selfheal_lab", "selfheal_tools"):
            bad.append(name)
        elif top == "selfheal_actions" and name.count(".") >= 1:
            target = name.split(".")[1]
            if part in ALLOWED and target in ALLOWED and target not in ALLOWED[part]:
                bad.append(name)
    return bad


def action_modules():
    for path in sorted(ACTIONS.rglob("*.py")):
        rel = path.relative_to(ACTIONS)
        yield (rel.parts[0] if len(rel.parts) > 1 else ""), path


def test_every_module_lives_in_a_flow_or_a_shared_package():
    loose = [p.name for p in ACTIONS.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "put each module in common/, moves/ or a flow package"
    assert sorted(p.name for p in ACTIONS.iterdir()
                  if p.is_dir() and p.name != "__pycache__") == sorted(FLOWS + SHARED)


def test_actions_import_neither_the_lab_nor_the_tools_nor_another_flow():
    problems = {}
    for part, path in action_modules():
        bad = boundary_violations(part, path.read_text())
        if bad:
            problems[str(path.relative_to(ROOT))] = bad
    assert problems == {}


def test_the_operator_tools_do_not_import_the_lab():
    for path in sorted((ROOT / "selfheal_tools").rglob("*.py")):
        assert not [m for m in imported_modules(path.read_text())
                    if m.startswith("selfheal_lab")], path


@pytest.mark.parametrize("part,source,expected", [
    ("hosts", "from selfheal_actions.maintenance import drain_plan", True),
    ("maintenance", "from selfheal_actions.hosts.evacuation_run import totals", True),
    ("common", "from selfheal_actions.moves import records", True),
    ("moves", "def f():\n    from selfheal_lab import lab\n", True),
    ("heat", "import selfheal_tools.data", True),
    ("maintenance", "from selfheal_actions.moves import records", False),
    ("hosts", "from selfheal_actions.common import clients", False),
])
def test_the_boundary_check_catches_what_it_must(part, source, expected):
    assert bool(boundary_violations(part, source)) is expected


def _entry_points():
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11 (tomllib)")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]


def _load(target):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def test_entry_points_name_only_actions_and_expression_functions():
    groups = _entry_points()
    assert set(groups) == {"mistral.actions", "mistral.expression.functions"}
    for name, target in groups["mistral.actions"].items():
        cls = _load(target)
        assert name.startswith("selfheal.") and issubclass(cls, actions.Action), name
        assert (cls.__doc__ or "").strip(), f"{name}: the docstring is the description"
    for name, target in groups["mistral.expression.functions"].items():
        assert name.startswith("selfheal_") and callable(_load(target)), name
        assert target.startswith("selfheal_actions.heat.yaql_functions:")
