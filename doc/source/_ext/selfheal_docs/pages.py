# SPDX-License-Identifier: Apache-2.0
"""The generated pages: one per workbook, the Vitrage and Heat templates, the
failure reasons, the benchmark results. Each function returns reST text (and
the flow pages their SVG diagrams); :func:`generate` returns every file.

Warnings (a workbook that does not parse, a docstring naming a reason that
nothing raises, advice for a reason that does not exist) go to ``warn``; the
Sphinx build turns them into errors with ``-W``.
"""

import json
import os
import pathlib
import re

import yaml

from selfheal_docs import actions as action_ref
from selfheal_docs import graph as task_graph
from selfheal_docs import rst

DIAGRAM_CAPTION = (
    "drawn from {file} when these docs were built. Green: on-success; red, "
    "dashed: on-error; blue, dotted: on-complete; a label is the transition's "
    "condition; a red end marker is ``fail``.")
_SECTION = re.compile(r"(?:^|(?<=\.\s))(Inputs?|Outputs?):", re.MULTILINE)
_ENTRY = re.compile(r"^\s{0,4}([a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*):\s+(.*)$")
_EXPRESSION_INPUT = re.compile(r"^<%\s*\$\.([A-Za-z_][A-Za-z0-9_]*)\s*%>$")


def humanise(stem):
    return stem.replace("_", " ").replace("-", " ").capitalize()


def _default(value):
    if isinstance(value, str):
        return rst.literal(value) if value else '``""``'
    return rst.literal(json.dumps(value))


def split_description(description):
    """``(intro, {input: text}, inputs prose, output prose)`` of a workflow text."""
    description = str(description or "")
    parts = _SECTION.split(description)
    intro, inputs, inputs_prose, output = parts[0], {}, "", ""
    for kind, body in zip(parts[1::2], parts[2::2], strict=True):
        if kind.startswith("Input"):
            entries = _input_entries(body)
            if entries:
                inputs.update(entries)
            else:
                inputs_prose = body.strip()
        else:
            output = (output + " " + body).strip()
    return intro.strip(), inputs, inputs_prose, output


def _input_entries(body):
    entries, current = {}, None
    lines = body.splitlines()
    for line in lines:
        match = _ENTRY.match(line)
        if match and (line.startswith(" ") or not entries):
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                entries[name] = match.group(2).strip()
        elif current and line.strip():
            for name in current:
                entries[name] += " " + line.strip()
    first = next((line for line in lines if line.strip()), "")
    if not _ENTRY.match(first):
        return {}
    return entries


def _targets_text(value, workbook_name):
    cells = []
    for target, condition in task_graph._targets(value):
        word = target.split()[0] if target.split() else target
        shown = rst.literal(target if word in task_graph.ENGINE_COMMANDS else word)
        cells.append(shown + (f" when {rst.literal(condition)}" if condition else ""))
    return "\n".join(f"| {c}" for c in cells)


def _runs(task, workbook_name, action_labels):
    if task.get("action"):
        name = str(task["action"]).split()[0]
        if name in action_labels:
            return f":ref:`{name} <{action_labels[name]}>`"
        return rst.literal(name)
    if task.get("workflow"):
        return "workflow " + rst.literal(task["workflow"])
    return "(no action)"


def _called_workflow(task, spec):
    """The workbook's workflow a task calls, or None."""
    target = str(task.get("workflow") or "")
    if not target or "<%" in target:
        return None
    short = target.split(".")[-1] if target.startswith(spec["name"] + ".") else target
    return short if short in (spec.get("workflows") or {}) else None


def workflow_reasons(spec, wf_name, docs, seen=None):
    """``{reason: [(task, action)]}`` a workflow can fail with, sub-workflows too."""
    seen = set(seen or ()) | {wf_name}
    found = {}
    for task_name, task in ((spec["workflows"][wf_name].get("tasks") or {}).items()):
        task = task or {}
        action = _action_of(task)
        if action in docs:
            for reason in docs[action].all_reasons:
                found.setdefault(reason, []).append((task_name, action))
        sub = _called_workflow(task, spec)
        if sub and sub not in seen:
            for reason, where in workflow_reasons(spec, sub, docs, seen).items():
                found.setdefault(reason, []).extend(
                    (f"{task_name} → {sub}.{t}", a) for t, a in where)
    return found


def _action_of(task):
    """The action name a task runs (without inline parameters), or None."""
    words = str((task or {}).get("action") or "").split()
    return words[0] if words else None


def _actions_used(spec, docs):
    used = []
    for workflow in (spec.get("workflows") or {}).values():
        for task in (workflow.get("tasks") or {}).values():
            action = _action_of(task)
            if action in docs and action not in used:
                used.append(action)
    return used


def _example_input(workflow):
    required = [i for i in workflow.get("input") or [] if isinstance(i, str)]
    return json.dumps({name: f"<{name}>" for name in required})


def flow_page(path, spec, docs, root, page_dir):
    """``(rst text, {svg file name: svg text})`` for one workbook."""
    stem = path.stem
    name = spec["name"]
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    used = _actions_used(spec, docs)
    action_labels = {a: f"flow-{rst.label(stem)}-action-{rst.label(a)}" for a in used}
    workflows = spec.get("workflows") or {}
    out = [f".. _flow-{rst.label(stem)}:", ""]
    out += rst.title(f"{humanise(stem)}: {name}", "=")
    out += rst.paragraphs(spec.get("description"))
    out += [f":Workbook: {rst.literal(rel)} (``name: {name}``)",
            ":Workflows: " + ", ".join(
                f":ref:`{w} <flow-{rst.label(stem)}-{rst.label(w)}>`" for w in workflows)]
    if used:
        out.append(":Actions: " + ", ".join(f":ref:`{a} <{action_labels[a]}>`" for a in used))
    out += ["", ".. contents:: On this page", "   :local:", "   :depth: 1", ""]
    svgs = {}
    for wf_name, workflow in workflows.items():
        workflow = workflow or {}
        full = f"{name}.{wf_name}"
        intro, input_text, inputs_prose, output_text = split_description(
            workflow.get("description"))
        out += [f".. _flow-{rst.label(stem)}-{rst.label(wf_name)}:", ""]
        out += rst.title(f"Workflow {full}", "-")
        out += rst.paragraphs(intro)
        out += [".. code-block:: console", "",
                f"   $ mistral execution-create {full} '{_example_input(workflow)}'", ""]
        svg_name = f"{stem}-{wf_name}.svg"
        graph = task_graph.workflow_graph(wf_name, workflow)
        svgs[svg_name] = task_graph.render_svg(graph, title=f"{full}: task graph")
        out += [f".. figure:: {svg_name}", f"   :alt: task graph of {full}",
                "   :class: selfheal-diagram", "   :figclass: selfheal-diagram", "",
                f"   Task graph of ``{wf_name}``, "
                + DIAGRAM_CAPTION.format(file=rst.literal(rel)), ""]
        out += _inputs_section(workflow, input_text, inputs_prose, docs)
        out += _outputs_section(workflow, output_text)
        out += _tasks_section(workflow, name, action_labels)
        out += _reasons_section(spec, wf_name, docs, action_labels)
    if used:
        out += rst.title("Actions", "-")
        out += rst.paragraphs("The actions this workbook runs, from their docstrings; the "
                              "failure reasons from their source.")
        for action in used:
            out += action_section(docs[action], action_labels[action])
    return "\n".join(out) + "\n", svgs


def _inputs_section(workflow, described, prose, docs):
    passed = {}
    for task in (workflow.get("tasks") or {}).values():
        action = _action_of(task)
        for param, value in ((task or {}).get("input") or {}).items():
            match = _EXPRESSION_INPUT.match(str(value).strip())
            if match and action in docs:
                for p in docs[action].params:
                    if p.name == param and p.description:
                        passed.setdefault(match.group(1), p.description)
    rows = []
    for item in workflow.get("input") or []:
        if isinstance(item, dict):
            (input_name, default), = item.items()
            shown = _default(default)
        else:
            input_name, shown = item, "*required*"
        meaning = rst.text(described[input_name]) if input_name in described \
            else passed.get(input_name, "")
        rows.append([rst.literal(input_name), shown, meaning])
    out = rst.title("Inputs", "~")
    if prose:
        out += rst.paragraphs(prose)
    if rows:
        out += rst.list_table(["Input", "Default", "Meaning"], rows, [20, 18, 62])
    elif not prose:
        out += ["None.", ""]
    return out


def _outputs_section(workflow, text):
    out = rst.title("Output", "~")
    out += rst.paragraphs(text)
    rows = [[rst.literal(k), rst.literal(v), "success"]
            for k, v in (workflow.get("output") or {}).items()]
    rows += [[rst.literal(k), rst.literal(v), "error"]
             for k, v in (workflow.get("output-on-error") or {}).items()]
    out += rst.list_table(["Key", "Value", "When the execution ends in"], rows, [20, 55, 25])
    if not rows and not text:
        out += ["Nothing declared.", ""]
    return out


def _tasks_section(workflow, workbook_name, action_labels):
    defaults = workflow.get("task-defaults") or {}
    rows = []
    for task_name, task in (workflow.get("tasks") or {}).items():
        task = task or {}
        cells = [_targets_text(task.get(kind, defaults.get(kind)), workbook_name)
                 for kind in ("on-success", "on-error", "on-complete")]
        rows.append([rst.literal(task_name), _runs(task, workbook_name, action_labels)]
                    + cells)
    out = rst.title("Tasks", "~")
    out += rst.list_table(["Task", "Runs", "on-success", "on-error", "on-complete"], rows,
                          [16, 28, 24, 16, 16])
    return out


def _reasons_section(spec, wf_name, docs, action_labels):
    found = workflow_reasons(spec, wf_name, docs)
    out = rst.title("Failure reasons", "~")
    if not found:
        return out + ["No selfheal action runs here.", ""]
    out += rst.paragraphs(
        "When a task fails, the execution ends in ERROR; its output has "
        "failed_step and error, whose reason is one of these (see "
        "Troubleshooting for what to do):")
    rows = []
    for reason in sorted(found):
        where = sorted({f"{rst.literal(t)} ({a})" for t, a in found[reason]})
        rows.append([f":ref:`{reason} <reason-{rst.label(reason)}>`", ", ".join(where)])
    return out + rst.list_table(["Reason", "Can come from task (action)"], rows, [30, 70])


def action_section(doc, label):
    out = [f".. _{label}:", ""]
    out += rst.title(doc.name, "~")
    out += [doc.summary, ""]
    if doc.body:
        out += doc.body.splitlines() + [""]
    out += [f":Class: {rst.literal(doc.target)}", ""]
    rows = [[rst.literal(p.name), "*required*" if p.required else _default(p.default),
             p.description] for p in doc.params]
    out += [".. rubric:: Parameters", ""]
    out += rst.list_table(["Parameter", "Default", "Meaning"], rows, [20, 18, 62])
    if doc.returns:
        out += [".. rubric:: Returns", "", doc.returns, ""]
    out += [".. rubric:: Failure reasons", ""]
    rows = []
    for reason in doc.all_reasons:
        sites = doc.reasons.get(reason, [])
        messages = _distinct_messages(sites)
        note = "" if reason in doc.documented_reasons else \
            " (found in the source; not listed in the docstring)"
        rows.append([f":ref:`{reason} <reason-{rst.label(reason)}>`{note}",
                     "\n".join(f"| {rst.text(m)}" for m in messages) or
                     "(listed in the docstring)"])
    out += rst.list_table(["Reason", "Message (``<...>`` varies)"], rows, [30, 70])
    return out


def _distinct_messages(sites):
    seen = []
    for site in sites:
        if site.message and site.message not in seen:
            seen.append(site.message)
    return seen


# --- troubleshooting ----------------------------------------------------------

def reasons_page(index, docs, flows, advice):
    """The failure reasons, what the operator sees and what to do."""
    every = index.every_reason()
    returned_by, in_flows = {}, {}
    for name, doc in docs.items():
        for reason in doc.all_reasons:
            returned_by.setdefault(reason, []).append(name)
    for stem, spec in flows.items():
        for wf_name in spec.get("workflows") or {}:
            for reason in workflow_reasons(spec, wf_name, docs):
                in_flows.setdefault(reason, []).append(
                    f":ref:`{spec['name']}.{wf_name} <flow-{rst.label(stem)}-"
                    f"{rst.label(wf_name)}>`")
    out = []
    for reason in sorted(set(every) | set(returned_by)):
        out += [f".. _reason-{rst.label(reason)}:", ""]
        out += rst.title(reason, "-")
        if reason in advice:
            out += [str(advice[reason]).strip(), ""]
        actions_text = ", ".join(rst.literal(a) for a in returned_by.get(reason, [])) or \
            "no action reaches it (by static analysis of the source)"
        out += [f":Returned by: {actions_text}"]
        if reason in in_flows:
            out += [f":In workflows: {', '.join(in_flows[reason])}"]
        out += [""]
        messages = {}
        for site in every.get(reason, []):
            if site.message:
                messages.setdefault(site.message, []).append(site.where)
        if messages:
            out += ["The message says:", ""]
            for message, where in messages.items():
                out += [f"* {rst.text(message)} (:file:`selfheal_actions/{where[0]}`)"]
            out += [""]
    return "\n".join(out) + "\n"


# --- Vitrage and Heat templates --------------------------------------------------

def _load_base(path):
    return yaml.load(path.read_text(), Loader=yaml.BaseLoader)


def vitrage_page(paths, root, page_dir, flows):
    out = [".. _vitrage-templates:", ""]
    out += rst.title("Vitrage templates", "=")
    out += rst.paragraphs(
        "The Vitrage v3 templates that ship in vitrage_templates/ (installed under "
        "<prefix>/share/selfheal/vitrage_templates). Each one turns a monitor's alarm into "
        "a selfheal workflow through Vitrage's execute_mistral action. Load them with "
        "selfheal install --vitrage-url URL (see Installation); change a template "
        "parameter to match your monitor, and check your copy with selfheal validate.")
    workflows = {f"{spec['name']}.{wf}": (stem, wf) for stem, spec in flows.items()
                 for wf in spec.get("workflows") or {}}
    if not paths:
        return "\n".join(out + ["No Vitrage templates ship in this version.", ""]) + "\n"
    out += ["", ".. contents:: Templates", "   :local:", "   :depth: 1", ""]
    for path in paths:
        template = _load_base(path)
        meta = template.get("metadata") or {}
        out += rst.title(str(meta.get("name") or path.stem), "-")
        out += rst.paragraphs(meta.get("description"))
        out += [f":File: {rst.literal(path.relative_to(root))}",
                f":Version: {rst.literal(meta.get('version', ''))}", ""]
        params = template.get("parameters") or {}
        if params:
            out += [".. rubric:: Parameters", ""]
            out += rst.list_table(["Parameter", "Default", "Meaning"], [
                [rst.literal(k), rst.literal((v or {}).get("default", "")),
                 rst.text((v or {}).get("description", ""))] for k, v in params.items()],
                [22, 22, 56])
        entities = template.get("entities") or {}
        if entities:
            out += [".. rubric:: Entities", ""]
            out += rst.list_table(["Entity", "Matches"], [
                [rst.literal(k), ", ".join(f"{a} {rst.literal(b)}" for a, b in (v or {}).items())]
                for k, v in entities.items()], [25, 75])
        rows = []
        for scenario in template.get("scenarios") or []:
            for action in scenario.get("actions") or []:
                for kind, props in action.items():
                    props = props or {}
                    if kind == "execute_mistral":
                        wf = props.get("workflow", "")
                        target = workflows.get(wf)
                        shown = (f":ref:`{wf} <flow-{rst.label(target[0])}-"
                                 f"{rst.label(target[1])}>`" if target else rst.literal(wf))
                        inputs = ", ".join(f"{k}={rst.literal(v)}"
                                           for k, v in (props.get("input") or {}).items())
                        what = f"run {shown}" + (f" with {inputs}" if inputs else "")
                    else:
                        what = f"{kind}: " + ", ".join(
                            f"{k}={rst.literal(v)}" for k, v in props.items())
                    rows.append([rst.literal(scenario.get("condition", "")), what])
        if rows:
            out += [".. rubric:: Scenarios", ""]
            out += rst.list_table(["When", "Vitrage does"], rows, [45, 55])
        rel = os.path.relpath(path, page_dir)
        out += [".. rubric:: Source", "", f".. literalinclude:: {rel}", "   :language: yaml",
                ""]
    return "\n".join(out) + "\n"


def heat_page(paths, root, page_dir):
    out = [".. _heat-templates:", ""]
    out += rst.title("Heat example templates", "=")
    out += rst.paragraphs(
        "Examples for users: Heat templates (in heat_templates/) that set up an "
        "application for selfheal to heal.")
    if not paths:
        out += rst.paragraphs("This version ships no Heat example templates.")
        return "\n".join(out) + "\n"
    out += ["", ".. contents:: Templates", "   :local:", "   :depth: 1", ""]
    for path in paths:
        rel_file = path.relative_to(root)
        out += rst.title(str(rel_file.relative_to("heat_templates")), "-")
        try:
            template = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{rel_file}: not valid YAML: {error}") from None
        if not isinstance(template, dict):
            template = {}
        out += rst.paragraphs(template.get("description"))
        out += [f":File: {rst.literal(rel_file)}"]
        if template.get("heat_template_version"):
            out += [f":Version: {rst.literal(template['heat_template_version'])}"]
        out += [""]
        params = template.get("parameters") or {}
        if params:
            out += [".. rubric:: Parameters", ""]
            out += rst.list_table(["Parameter", "Type", "Default", "Meaning"], [
                [rst.literal(k), rst.literal((v or {}).get("type", "")),
                 _default((v or {}).get("default")) if "default" in (v or {}) else "*required*",
                 rst.text((v or {}).get("description", ""))] for k, v in params.items()],
                [22, 12, 20, 46])
        resources = template.get("resources") or {}
        if resources:
            out += [".. rubric:: Resources", ""]
            out += rst.list_table(["Resource", "Type"], [
                [rst.literal(k), rst.literal((v or {}).get("type", ""))]
                for k, v in resources.items()], [40, 60])
        outputs = template.get("outputs") or {}
        if outputs:
            out += [".. rubric:: Outputs", ""]
            out += rst.list_table(["Output", "Meaning"], [
                [rst.literal(k), rst.text((v or {}).get("description", ""))]
                for k, v in outputs.items()], [30, 70])
        out += [".. rubric:: Source", "",
                f".. literalinclude:: {os.path.relpath(path, page_dir)}",
                "   :language: yaml", ""]
    return "\n".join(out) + "\n"


# --- benchmark results (a small Markdown subset) -----------------------------------

_MD_INLINE = re.compile(r"(`[^`]+`|\*\*[^*]+\*\*)")


def _md_inline(line):
    parts = []
    for piece in _MD_INLINE.split(line):
        if not piece:
            continue
        if piece.startswith("`"):
            parts.append(rst.literal(piece[1:-1]))
        elif piece.startswith("**"):
            parts.append(f"**{rst.text(piece[2:-2]).lstrip(chr(92))}**")
        else:
            parts.append(rst.text(piece) if piece.strip() else "")
    joined = ""
    for part in parts:
        if joined and part and not joined.endswith(" "):
            joined += "\\ " if not part.startswith(("``", "**")) else " "
        joined += part
    return joined


def markdown_to_rst(text, level_chars, image_dir, page_dir):
    """Headings, paragraphs, quotes, pipe tables and images of the results files."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#+)\s+(.*)$", line)
        image = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$", line)
        if heading:
            depth = min(len(heading.group(1)), len(level_chars)) - 1
            out += rst.title(heading.group(2).strip(), level_chars[depth])
            i += 1
        elif image:
            target = (image_dir / image.group(2)).resolve()
            out += [f".. image:: {os.path.relpath(target, page_dir)}",
                    f"   :alt: {rst.text(image.group(1))}", ""]
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append([_md_inline(c) for c in cells])
                i += 1
            out += rst.list_table(rows[0], rows[1:])
        elif line.startswith(">"):
            block = []
            while i < len(lines) and lines[i].startswith(">"):
                block.append(lines[i][1:].strip())
                i += 1
            out += ["   " + _md_inline(" ".join(block)), ""]
        else:
            block = []
            while i < len(lines) and lines[i].strip() and not re.match(
                    r"^(#|\||>|!\[)", lines[i]):
                block.append(lines[i].strip())
                i += 1
            out += [_md_inline(" ".join(block)), ""]
    return out


def benchmarks_page(paths, root, page_dir):
    out = []
    for path in paths:
        out += [f".. _benchmark-{rst.label(path.stem)}:", ""]
        converted = markdown_to_rst(path.read_text(), "-~^", path.parent, page_dir)
        if not converted or not converted[1].startswith("-"):
            converted = rst.title(path.stem, "-") + converted
        out += converted
        out += [f"*From* :file:`{path.relative_to(root)}`.", ""]
    if not paths:
        out += ["No results yet.", ""]
    return "\n".join(out) + "\n"


# --- everything ---------------------------------------------------------------

def load_flows(root, warn):
    flows, paths = {}, {}
    for path in sorted((root / "workbooks").glob("*.yaml")):
        try:
            spec = yaml.safe_load(path.read_text())
            if not isinstance(spec, dict) or "name" not in spec:
                raise ValueError("no workbook 'name'")
        except (yaml.YAMLError, ValueError) as error:
            warn(f"workbooks/{path.name}: cannot document it: {error}")
            continue
        flows[path.stem] = spec
        paths[path.stem] = path
    return flows, paths


def generate(root, out_dir, advice=None, warn=print):
    """``{path relative to out_dir: text}`` of every generated file."""
    root, out_dir = pathlib.Path(root), pathlib.Path(out_dir)
    advice = advice or {}
    index = action_ref.SourceIndex(root)
    docs = action_ref.action_docs(root, index)
    for doc in docs.values():
        for code in doc.unknown_codes:
            warn(f"the docstring of {doc.name} ({doc.target}) lists reason '{code}', which "
                 "nothing in selfheal_actions raises: fix the docstring")
    known = set(index.every_reason())
    for reason in advice:
        if reason not in known:
            warn(f"troubleshooting advice for reason '{reason}', which nothing raises")
    files = {}
    flows, flow_paths = load_flows(root, warn)
    flow_dir = out_dir / "flows"
    for stem, spec in flows.items():
        try:
            text, svgs = flow_page(flow_paths[stem], spec, docs, root, flow_dir)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            warn(f"workbooks/{stem}.yaml: cannot document it: {type(error).__name__}: {error}")
            continue
        files[f"flows/{stem}.rst"] = text
        for name, svg in svgs.items():
            files[f"flows/{name}"] = svg
    files["reasons.rst.inc"] = reasons_page(index, docs, flows, advice)
    vitrage_paths = sorted((root / "vitrage_templates").glob("*.yaml"))
    files["vitrage_templates.rst"] = vitrage_page(vitrage_paths, root, out_dir, flows)
    heat_dir = root / "heat_templates"
    heat_paths = sorted(p for p in heat_dir.rglob("*") if p.suffix in (".yaml", ".yml")) \
        if heat_dir.is_dir() else []
    try:
        files["heat_templates.rst"] = heat_page(heat_paths, root, out_dir)
    except ValueError as error:
        warn(str(error))
        files["heat_templates.rst"] = heat_page([], root, out_dir)
    results = sorted((root / "benchmarks" / "results").glob("*.md"))
    # an include: paths are relative to the including page, in the source folder
    files["benchmark_results.rst.inc"] = benchmarks_page(results, root, out_dir.parent)
    return files
