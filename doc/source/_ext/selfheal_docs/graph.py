# SPDX-License-Identifier: Apache-2.0
"""A Mistral workflow's task graph, laid out and drawn as SVG in pure Python.

:func:`workflow_graph` reads one workflow of a workbook (the parsed YAML)
into nodes and transitions: ``on-success``, ``on-error`` and
``on-complete`` (in every form Mistral accepts: a name, a list of names or
``{name: condition}``, the ``next`` of the advanced publishing syntax, and
the engine commands ``fail``, ``succeed`` and ``pause``), and ``requires``
of reverse workflows. :func:`render_svg` lays it out in layers (a small
Sugiyama: longest-path layers, barycentre ordering) and returns the SVG text.
Nothing here depends on Sphinx, so the tests can call it directly.
"""

import dataclasses
from xml.sax.saxutils import escape

#: Mistral engine commands that can stand in a transition list
ENGINE_COMMANDS = ("fail", "succeed", "pause")
START = "__start__"

KIND_STYLE = {
    # kind: (colour, dash pattern, legend text)
    "on-success": ("#2e7d32", "", "on-success"),
    "on-error": ("#c62828", "6 3", "on-error"),
    "on-complete": ("#1565c0", "2 3", "on-complete"),
    "requires": ("#6d6d6d", "", "requires"),
    "start": ("#333333", "", "start"),
}
TERMINAL_STYLE = {"fail": "#c62828", "succeed": "#2e7d32", "pause": "#ef6c00"}

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
NAME_SIZE, INFO_SIZE, LABEL_SIZE = 13, 11, 10
CHAR = 0.62  # average advance of the monospace font, in ems
PAD_X, LINE, PAD_Y = 12, 16, 8
GAP_X, GAP_Y, MARGIN = 36, 78, 16
LABEL_MAX = 44


@dataclasses.dataclass
class Node:
    name: str
    kind: str                 # task, start, or an engine command
    lines: list               # [(text, size, bold)]
    order: int = 0
    layer: int = 0
    x: float = 0.0            # centre
    y: float = 0.0            # top
    width: float = 0.0
    height: float = 0.0
    tooltip: str = ""


@dataclasses.dataclass
class Transition:
    source: str
    target: str
    kind: str
    condition: str = None


@dataclasses.dataclass
class TaskGraph:
    workflow: str
    nodes: dict
    transitions: list

    @property
    def tasks(self):
        return [n.name for n in self.nodes.values() if n.kind == "task"]


def _targets(value):
    """``[(target, condition)]`` of one ``on-*`` value, in any accepted form."""
    if value is None:
        return []
    if isinstance(value, dict):
        if "next" in value or "publish" in value:
            return _targets(value.get("next"))
        return [(str(k), _condition(v)) for k, v in value.items()]
    if isinstance(value, str):
        return [(value, None)]
    found = []
    for item in value:
        found.extend(_targets(item))
    return found


def _condition(value):
    if value is None or value is True:
        return None
    return str(value).strip()


def _command(target):
    """``fail`` for ``fail msg='...'``; None for a task name."""
    word = target.split()[0] if target.split() else target
    return word if word in ENGINE_COMMANDS else None


def _task_lines(name, task):
    lines = [(name, NAME_SIZE, True)]
    if task.get("action"):
        lines.append((str(task["action"]).split()[0], INFO_SIZE, False))
    elif task.get("workflow"):
        lines.append((_short("workflow " + str(task["workflow"])), INFO_SIZE, False))
    else:
        lines.append(("(no action: std.noop)", INFO_SIZE, False))
    flags = [key for key in ("with-items", "retry", "timeout", "join", "wait-before",
                             "wait-after", "pause-before") if task.get(key) is not None]
    if task.get("concurrency") is not None:
        flags.append(f"concurrency {task['concurrency']}")
    if flags:
        lines.append((" · ".join(flags), INFO_SIZE, False))
    return lines


def workflow_graph(name, workflow):
    """The task graph of one workflow spec (a dict from the workbook YAML)."""
    tasks = workflow.get("tasks") or {}
    nodes = {}
    for order, (task_name, task) in enumerate(tasks.items()):
        task = task or {}
        nodes[task_name] = Node(task_name, "task", _task_lines(task_name, task), order=order,
                                tooltip=str(task.get("description") or ""))
    transitions = []
    defaults = workflow.get("task-defaults") or {}
    for task_name, task in tasks.items():
        task = task or {}
        for kind in ("on-success", "on-error", "on-complete"):
            value = task.get(kind, defaults.get(kind))
            for target, condition in _targets(value):
                command = _command(target)
                if command:
                    # one end marker per task: the graph stays readable
                    target = f"{command}@{task_name}"
                    nodes.setdefault(target, Node(target, command, [(command, INFO_SIZE, True)],
                                                  order=nodes[task_name].order + 0.5,
                                                  tooltip=f"{task_name}: {command}"))
                elif target == "noop":
                    continue
                elif target not in nodes:
                    raise ValueError(f"workflow {name}: task {task_name} {kind} names unknown "
                                     f"task {target!r}")
                transitions.append(Transition(task_name, target, kind, condition))
        requires = task.get("requires")
        for required in [requires] if isinstance(requires, str) else requires or []:
            if required not in nodes:
                raise ValueError(f"workflow {name}: task {task_name} requires unknown task "
                                 f"{required!r}")
            transitions.append(Transition(required, task_name, "requires"))
    if workflow.get("type", "direct") != "reverse" and tasks:
        inbound = {t.target for t in transitions if t.source != t.target}
        starts = [t for t in tasks if t not in inbound]
        nodes[START] = Node(START, "start", [], order=-1)
        transitions[:0] = [Transition(START, t, "start") for t in starts]
    return TaskGraph(name, nodes, transitions)


# --- layout -------------------------------------------------------------------
#
# Ranks alternate: even ranks hold the nodes, odd ranks the edges between two
# node layers. An edge spanning several layers runs through one virtual node
# per rank in between (a proper layered drawing: no edge crosses a node); the
# virtual node just below its source carries its condition label, so labels
# get their own room.

@dataclasses.dataclass
class Virtual:
    name: str
    rank: int
    width: float
    height: float
    label: str = None
    x: float = 0.0
    y: float = 0.0
    order: float = 0.0


def _short(text):
    text = " ".join(str(text).split())
    return text if len(text) <= LABEL_MAX else text[:LABEL_MAX - 1] + "…"


def _size(node):
    if node.kind == "start":
        node.width = node.height = 18
        return
    width = max(len(text) * size * CHAR for text, size, _ in node.lines)
    node.width = round(width + 2 * PAD_X, 1)
    node.height = len(node.lines) * LINE + 2 * PAD_Y - (4 if node.kind != "task" else 0)


def _back_edges(graph):
    """Transitions that close a cycle (found by a DFS in definition order)."""
    out = {}
    for t in graph.transitions:
        out.setdefault(t.source, []).append(t)
    state, back = {}, set()

    def visit(name):
        state[name] = "open"
        for t in out.get(name, []):
            if state.get(t.target) == "open":
                back.add(id(t))
            elif t.target not in state:
                visit(t.target)
        state[name] = "done"

    for node in sorted(graph.nodes.values(), key=lambda n: n.order):
        if node.name not in state:
            visit(node.name)
    return back


def layout(graph):
    """Place every node; return ``(back edge ids, {edge id: [virtual nodes]})``."""
    for node in graph.nodes.values():
        _size(node)
    back = _back_edges(graph)
    forward = [t for t in graph.transitions if id(t) not in back and t.source != t.target]
    preds = {name: [] for name in graph.nodes}
    for t in forward:
        preds[t.target].append(t.source)
    layer = {}

    def depth(name):
        if name not in layer:
            layer[name] = 1 + max((depth(p) for p in preds[name]), default=-1)
        return layer[name]

    for name in graph.nodes:
        depth(name)
    items = {}                      # name -> Node or Virtual
    ranks = {}
    for node in sorted(graph.nodes.values(), key=lambda n: n.order):
        node.layer = 2 * layer[node.name]
        items[node.name] = node
        ranks.setdefault(node.layer, []).append(node.name)
    chains = {}
    links = []                      # (upper item name, lower item name)
    beside = {}                     # edges to end markers: right of their task
    for t in forward:
        low, high = graph.nodes[t.source].layer, graph.nodes[t.target].layer
        chain, previous = [], t.source
        for rank in range(low + 1, high):
            label = _short(t.condition) if t.condition and rank == low + 1 else None
            width = len(label) * LABEL_SIZE * CHAR + 8 if label else 8
            virtual = Virtual(f"{t.source}>{t.target}#{id(t)}@{rank}", rank, width,
                              16 if label else 0, label, order=graph.nodes[t.source].order)
            items[virtual.name] = virtual
            if graph.nodes[t.target].kind in ENGINE_COMMANDS:
                beside[virtual.name] = t.source
            ranks.setdefault(rank, []).append(virtual.name)
            links.append((previous, virtual.name))
            chain.append(virtual)
            previous = virtual.name
        links.append((previous, t.target))
        chains[id(t)] = chain
    up = {name: [] for name in items}
    down = {name: [] for name in items}
    for a, b in links:
        up[b].append(a)
        down[a].append(b)

    # barycentre ordering: sweeps down and up
    position = {}

    def renumber():
        for names in ranks.values():
            for i, name in enumerate(names):
                position[name] = i

    renumber()
    for _ in range(6):
        for neighbours, keys in ((up, sorted(ranks)), (down, sorted(ranks, reverse=True))):
            for key in keys:
                def bary(name, neighbours=neighbours):
                    linked = neighbours[name]
                    if not linked:
                        return position[name]
                    return sum(position[n] for n in linked) / len(linked)
                ranks[key].sort(key=lambda n: (bary(n), position[n]))
                renumber()

    # y: node ranks as tall as their tallest node, edge ranks as their labels
    y = MARGIN + 26                 # room for the legend
    for key in range(0, max(ranks) + 1):
        names = ranks.get(key, [])
        height = max((items[n].height for n in names), default=0)
        for name in names:
            item = items[name]
            if isinstance(item, Virtual) and not item.label:
                item.height = height    # runs straight through its rank
            item.y = y + (height - item.height) / 2
        y += height + (GAP_Y / 3 if key % 2 == 0 else GAP_Y / 3)
    # x: packed in order, pulled under their upper neighbours, then smoothed
    def wanted(name, neighbours):
        if name in beside:
            task = items[beside[name]]
            return task.x + task.width / 2 + 24
        return _mean([items[n].x for n in neighbours])

    for key in sorted(ranks):
        _place([items[n] for n in ranks[key]], [wanted(n, up[n]) for n in ranks[key]])
    for key in sorted(ranks, reverse=True):
        _place([items[n] for n in ranks[key]],
               [wanted(n, up[n] + [d for d in down[n] if d not in beside])
                for n in ranks[key]])
    left = min(i.x - i.width / 2 for i in items.values())
    for item in items.values():
        item.x += MARGIN - left
    return back, chains


def _mean(values):
    return sum(values) / len(values) if values else None


def _place(nodes, wanted):
    """Centres as near the wanted ones as the order and the gaps allow."""
    packed, cursor = [], 0.0
    for node in nodes:
        packed.append(cursor + node.width / 2)
        cursor += node.width + _gap(node)
    known = [(w, p) for w, p in zip(wanted, packed, strict=True) if w is not None]
    shift = _mean([w - p for w, p in known]) if known else 0.0
    targets = [w if w is not None else p + shift for w, p in zip(wanted, packed, strict=True)]
    right = _sweep(nodes, targets, 1)
    left = _sweep(nodes, targets, -1)
    final = _sweep(nodes, [(a + b) / 2 for a, b in zip(right, left, strict=True)], 1)
    for node, x in zip(nodes, final, strict=True):
        node.x = x


def _gap(item):
    return GAP_X if isinstance(item, Node) else 14


def _sweep(nodes, targets, direction):
    xs = list(targets)
    indices = range(len(nodes)) if direction > 0 else range(len(nodes) - 1, -1, -1)
    previous = None
    for i in indices:
        if previous is not None:
            gap = (nodes[i].width + nodes[previous].width) / 2 + max(
                _gap(nodes[i]), _gap(nodes[previous]))
            xs[i] = max(xs[i], xs[previous] + gap) if direction > 0 else min(
                xs[i], xs[previous] - gap)
        previous = i
    return xs


# --- drawing ------------------------------------------------------------------

def _ports(graph, back, chains):
    """x offsets where each forward edge leaves its source and enters its target."""
    outgoing, incoming = {}, {}
    for t in graph.transitions:
        if id(t) in back or t.source == t.target:
            continue
        chain = chains[id(t)]
        first = chain[0].x if chain else graph.nodes[t.target].x
        last = chain[-1].x if chain else graph.nodes[t.source].x
        outgoing.setdefault(t.source, []).append((first, t))
        incoming.setdefault(t.target, []).append((last, t))
    offsets = {}
    for group, end in ((outgoing, "out"), (incoming, "in")):
        for name, edges in group.items():
            node = graph.nodes[name]
            edges.sort(key=lambda pair: pair[0])
            usable = min(node.width * 0.6, 24.0 * (len(edges) - 1))
            for i, (_, t) in enumerate(edges):
                offset = 0 if len(edges) == 1 else -usable / 2 + usable * i / (len(edges) - 1)
                offsets[(id(t), end)] = offset
    return offsets


def _smooth(points):
    """A path through ``points`` with vertical tangents at each of them."""
    (x, y), parts = points[0], [f"M {points[0][0]:.1f} {points[0][1]:.1f}"]
    for nx, ny in points[1:]:
        d = (ny - y) / 2
        parts.append(f"C {x:.1f} {y + d:.1f} {nx:.1f} {ny - d:.1f} {nx:.1f} {ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def render_svg(graph, title=None):
    """The SVG text of ``graph`` (laid out here)."""
    back, chains = layout(graph)
    offsets = _ports(graph, back, chains)
    everything = list(graph.nodes.values()) + [v for c in chains.values() for v in c]
    right_edge = max(i.x + i.width / 2 for i in everything)
    bottom = max(i.y + i.height for i in everything)
    loops = [t for t in graph.transitions if id(t) in back or t.source == t.target]
    width = max(right_edge + MARGIN + (24 + 14 * len(loops) if loops else 0), 3 * 110 + MARGIN)
    height = bottom + MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'font-family="{FONT}">',
           f"<title>{escape(title or graph.workflow)}</title>", "<defs>"]
    for kind, (colour, _, _) in KIND_STYLE.items():
        out.append(f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
                   f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                   f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>')
    out += ["</defs>", '<rect x="0" y="0" width="100%" height="100%" fill="white"/>']
    x = MARGIN
    for kind in ("on-success", "on-error", "on-complete"):
        colour, dash, text = KIND_STYLE[kind]
        out.append(f'<line x1="{x}" y1="{MARGIN + 4}" x2="{x + 26}" y2="{MARGIN + 4}" '
                   f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" '
                   f'marker-end="url(#arrow-{kind})"/>')
        out.append(f'<text x="{x + 32}" y="{MARGIN + 8}" font-size="{LABEL_SIZE}" '
                   f'fill="{colour}">{text}</text>')
        x += 110
    labels = []
    for t in graph.transitions:
        source, target = graph.nodes[t.source], graph.nodes[t.target]
        colour, dash, _ = KIND_STYLE[t.kind]
        tip = f"{t.source} {t.kind} {t.target}" + (f" when {t.condition}" if t.condition else "")
        if t.source == t.target:
            x0, y0 = source.x + source.width / 2, source.y + source.height / 2
            path = (f"M {x0:.1f} {y0 + 5:.1f} C {x0 + 26:.1f} {y0 + 12:.1f} {x0 + 26:.1f} "
                    f"{y0 - 12:.1f} {x0:.1f} {y0 - 5:.1f}")
            if t.condition:
                labels.append((x0 + 26, y0, _short(t.condition), colour, tip))
        elif id(t) in back:
            # back edges go round the right of the drawing, through the gaps
            reach = right_edge + 18 + 14 * loops.index(t)
            sx, sy = source.x + source.width / 4, source.y + source.height
            tx, ty = target.x + target.width / 4, target.y
            path = (f"M {sx:.1f} {sy:.1f} L {sx:.1f} {sy + 10:.1f} L {reach:.1f} {sy + 10:.1f} "
                    f"L {reach:.1f} {ty - 10:.1f} L {tx:.1f} {ty - 10:.1f} L {tx:.1f} {ty:.1f}")
            if t.condition:
                labels.append((reach, (sy + ty) / 2, _short(t.condition), colour, tip))
        else:
            points = [(source.x + offsets[(id(t), "out")], source.y + source.height)]
            for virtual in chains[id(t)]:
                points.append((virtual.x, virtual.y))
                if virtual.height:
                    points.append((virtual.x, virtual.y + virtual.height))
                if virtual.label:
                    labels.append((virtual.x, virtual.y + virtual.height / 2, virtual.label,
                                   colour, tip))
            points.append((target.x + offsets[(id(t), "in")], target.y))
            path = _smooth(points)
        out.append(f'<path class="edge {t.kind}" d="{path}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.6" stroke-dasharray="{dash}" '
                   f'marker-end="url(#arrow-{t.kind})"><title>{escape(tip)}</title></path>')
    for node in sorted(graph.nodes.values(), key=lambda n: n.order):
        out.extend(_node_svg(node))
    for mx, my, text, colour, tip in labels:
        w = len(text) * LABEL_SIZE * CHAR + 6
        out.append(f'<g class="condition"><title>{escape(tip)}</title>'
                   f'<rect x="{mx - w / 2:.1f}" y="{my - 8:.1f}" width="{w:.1f}" height="16" '
                   f'rx="3" fill="white" stroke="{colour}" stroke-width="0.6"/>'
                   f'<text x="{mx:.1f}" y="{my + 4:.1f}" font-size="{LABEL_SIZE}" '
                   f'text-anchor="middle" fill="{colour}">{escape(text)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _node_svg(node):
    left = node.x - node.width / 2
    if node.kind == "start":
        return [f'<g class="start"><title>start</title><circle cx="{node.x:.1f}" '
                f'cy="{node.y + 9:.1f}" r="8" fill="#333333"/></g>']
    if node.kind in ENGINE_COMMANDS:
        colour = TERMINAL_STYLE[node.kind]
        fill, stroke, rx, text_fill = colour, colour, node.height / 2, "white"
    else:
        fill, stroke, rx, text_fill = "#f5f7fa", "#37474f", 6, "#1a1a1a"
    group = "task" if node.kind == "task" else "command"
    parts = [f'<g class="{group}" id="{group}-{escape(node.name)}">']
    if node.tooltip:
        parts.append(f"<title>{escape(node.tooltip)}</title>")
    parts.append(f'<rect x="{left:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" '
                 f'height="{node.height:.1f}" rx="{rx:.1f}" fill="{fill}" stroke="{stroke}" '
                 f'stroke-width="1.2"/>')
    y = node.y + PAD_Y + LINE - 4 - (2 if node.kind != "task" else 0)
    for text, size, bold in node.lines:
        weight = ' font-weight="bold"' if bold else ""
        parts.append(f'<text x="{node.x:.1f}" y="{y:.1f}" font-size="{size}"{weight} '
                     f'text-anchor="middle" fill="{text_fill}">{escape(text)}</text>')
        y += LINE
    parts.append("</g>")
    return parts
