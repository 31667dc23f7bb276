# SPDX-License-Identifier: Apache-2.0
"""The Sphinx docs build with warnings as errors and say what the YAML says.

The docs are built once, from a copy of ``doc/source`` in a temporary folder
(the pages are generated from this checkout), with ``-W``. Then each
workbook's diagrams are read back: every workflow has one, it names every
task, and it draws every transition of the YAML; the troubleshooting page has
every failure reason the source raises. A workbook changed without the
docs following fails here.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "doc" / "source" / "_ext"))

try:
    import sphinx  # noqa: F401
except ImportError:
    pytest.skip("sphinx is not installed here: pip install -e '.[test]' (or doc/requirements.txt)",
                allow_module_level=True)

from selfheal_docs import graph as task_graph  # noqa: E402
from selfheal_docs import pages  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
WORKBOOKS = sorted((ROOT / "workbooks").glob("*.yaml"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    source = tmp / "source"
    shutil.copytree(ROOT / "doc" / "source", source,
                    ignore=shutil.ignore_patterns("generated", "__pycache__"))
    env = dict(os.environ, SELFHEAL_DOCS_ROOT=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp / "doctrees"), str(source), str(tmp / "html")],
        env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return tmp / "html"


def _transitions(workflow):
    """``{(source, kind, target)}`` straight from the YAML, engine commands as ``fail``."""
    found = set()
    for name, task in (workflow.get("tasks") or {}).items():
        for kind in ("on-success", "on-error", "on-complete"):
            value = (task or {}).get(kind)
            if isinstance(value, dict) and ("next" in value or "publish" in value):
                value = value.get("next")
            items = value if isinstance(value, list) else [value] if value else []
            for item in items:
                for target in (item if isinstance(item, dict) else {item: None}):
                    word = target.split()[0]
                    if word != "noop":
                        found.add((name, kind, word))
    return found


def _diagram(html, stem, workflow):
    path = html / "_images" / f"{stem}-{workflow}.svg"
    assert path.is_file(), f"no diagram for {stem}.{workflow}"
    return ET.parse(path).getroot()


def test_the_docs_build_without_warnings(built):
    for page in ("index", "install", "troubleshooting", "lab", "benchmarks",
                 "generated/vitrage_templates", "generated/heat_templates"):
        assert (built / f"{page}.html").is_file(), page


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_every_workflow_has_a_diagram_naming_every_task_and_transition(built, path):
    spec = yaml.safe_load(path.read_text())
    page = (built / "generated" / "flows" / f"{path.stem}.html").read_text()
    for name, workflow in spec["workflows"].items():
        svg = _diagram(built, path.stem, name)
        assert f"_images/{path.stem}-{name}.svg" in page
        tasks = {g.get("id")[len("task-"):]: "".join(t.text or "" for t in g.iter(f"{SVG}text"))
                 for g in svg.iter(f"{SVG}g") if g.get("class") == "task"}
        assert set(tasks) == set(workflow["tasks"]), name
        for task, text in tasks.items():
            assert text.startswith(task), (task, text)
        drawn = set()
        for edge in svg.iter(f"{SVG}path"):
            if "edge" in (edge.get("class") or "").split():
                source, kind, target = edge.find(f"{SVG}title").text.split(" when ")[0].split()
                if kind != "start":
                    drawn.add((source, kind, target.split("@")[0]))
        assert drawn == _transitions(workflow), name


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_flow_pages_list_inputs_with_defaults_and_outputs(built, path):
    spec = yaml.safe_load(path.read_text())
    page = (built / "generated" / "flows" / f"{path.stem}.html").read_text()
    for workflow in spec["workflows"].values():
        for item in workflow.get("input") or []:
            name, default = next(iter(item.items())) if isinstance(item, dict) else (item, None)
            assert f'<span class="pre">{name}</span>' in page, name
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert f'<span class="pre">{default}</span>' in page, (name, default)
        for key in (workflow.get("output") or {}):
            assert f'<span class="pre">{key}</span>' in page, key


def test_troubleshooting_lists_every_reason_the_source_raises(built):
    raised = set()
    for source in (ROOT / "selfheal_actions").rglob("*.py"):
        text = source.read_text()
        raised |= set(re.findall(r"ActionFailure\(\s*\"([a-z_]+)\"", text))
        if "InvalidInput(" in text:
            raised.add("invalid_input")
    assert {"host_still_up", "evacuation_incomplete", "invalid_input"} <= raised
    page = (built / "troubleshooting.html").read_text()
    missing = [r for r in sorted(raised) if f'id="reason-{r.replace("_", "-")}"' not in page]
    assert not missing, missing


def test_benchmark_results_are_included(built):
    page = (built / "benchmarks.html").read_text()
    for path in (ROOT / "benchmarks" / "results").glob("*.md"):
        heading = path.read_text().splitlines()[0].lstrip("# ").strip()
        assert heading.split(":")[0] in page, path.name


def test_vitrage_page_shows_every_template(built):
    page = (built / "generated" / "vitrage_templates.html").read_text()
    for path in (ROOT / "vitrage_templates").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["metadata"]["name"] in page


def test_heat_page_without_and_with_templates(tmp_path):
    empty = pages.heat_page([], tmp_path, tmp_path)
    assert "ships no Heat example templates" in empty
    template = tmp_path / "heat_templates" / "group.yaml"
    template.parent.mkdir()
    template.write_text(yaml.safe_dump({
        "heat_template_version": "2018-08-31", "description": "A group of servers.",
        "parameters": {"size": {"type": "number", "default": 2, "description": "members"}},
        "resources": {"group": {"type": "OS::Heat::ResourceGroup"}}}))
    text = pages.heat_page([template], tmp_path, tmp_path / "generated")
    assert "A group of servers." in text and "``OS::Heat::ResourceGroup``" in text
    assert ".. literalinclude:: ../heat_templates/group.yaml" in text


def test_the_graph_reads_every_transition_form():
    workflow = yaml.safe_load("""
    tasks:
      a:
        action: std.noop
        on-success:
          - b: <% $.x %>
          - c
        on-error: fail msg="boom"
        on-complete:
          next: [d]
      b:
        action: std.noop
        on-success: c
      c:
        workflow: sub
        on-success: [b]
        on-error: [succeed]
      d:
        action: std.noop
        on-complete: d
    """)
    graph = task_graph.workflow_graph("wf", workflow)
    edges = {(t.source, t.kind, t.target, t.condition) for t in graph.transitions}
    assert edges == {
        ("__start__", "start", "a", None), ("a", "on-success", "b", "<% $.x %>"),
        ("a", "on-success", "c", None), ("a", "on-error", "fail@a", None),
        ("a", "on-complete", "d", None), ("b", "on-success", "c", None),
        ("c", "on-success", "b", None), ("c", "on-error", "succeed@c", None),
        ("d", "on-complete", "d", None)}
    svg = ET.fromstring(task_graph.render_svg(graph))
    assert len([p for p in svg.iter(f"{SVG}path") if "edge" in (p.get("class") or "")]) == 9
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        task_graph.workflow_graph("wf", {"tasks": {"a": {"on-success": ["nope"]}}})


def test_reverse_workflows_draw_requires():
    graph = task_graph.workflow_graph("wf", {"type": "reverse", "tasks": {
        "a": {"action": "std.noop"}, "b": {"action": "std.noop", "requires": ["a"]}}})
    assert [(t.source, t.kind, t.target) for t in graph.transitions] == [("a", "requires", "b")]
    assert "requires" in task_graph.render_svg(graph)


def test_a_workbook_that_cannot_be_documented_is_a_warning(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "workbooks").mkdir()
    (tmp_path / "workbooks" / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "workbooks" / "dangling.yaml").write_text(yaml.safe_dump({
        "version": "2.0", "name": "x.dangling",
        "workflows": {"wf": {"tasks": {"a": {"action": "std.noop", "on-success": ["b"]}}}}}))
    warnings = []
    files = pages.generate(tmp_path, tmp_path / "out", warn=warnings.append)
    assert any("workbooks/broken.yaml: cannot document it" in w for w in warnings), warnings
    assert any("dangling.yaml" in w and "unknown task 'b'" in w for w in warnings), warnings
    assert not any(name.startswith("flows/") for name in files)
    assert "ships no Heat example templates" in files["heat_templates.rst"]
