# SPDX-License-Identifier: Apache-2.0
"""What the docs say about each action: read from its docstring and its source.

* The actions and their classes come from the ``mistral.actions`` entry points
  of ``pyproject.toml`` (the source of truth in a checkout; the installed
  metadata of an editable install can be older).
* Parameters: names and defaults from ``__init__``'s signature, the sentence
  of each from the docstring's ``:param name:`` field.
* Failure reasons, two ways, compared: the codes the docstring lists
  (``Error reasons: ...`` or ``:raises ActionFailure: ...``), and the codes
  the source can actually return, found with :mod:`ast`: every
  ``ActionFailure("<reason>", "<message>")`` (and subclass, such as
  ``InvalidInput``) in every function reachable from the action's
  ``execute``, following calls to module functions, to methods of ``self``,
  and to methods of objects made from a project class in the same function.
  Each site gives the message an operator sees, with placeholders.

Nothing here imports Sphinx.
"""

import ast
import dataclasses
import importlib
import inspect
import pathlib
import re

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

PACKAGE = "selfheal_actions"
FAILURE = "ActionFailure"
_CODE = re.compile(r"``([a-z][a-z0-9_]*)``")
_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]+))?:\s*(.*)$")


@dataclasses.dataclass
class RaiseSite:
    reason: str
    message: str
    module: str
    function: str
    line: int

    @property
    def where(self):
        return f"{self.module.replace('.', '/')}.py:{self.line} ({self.function})"


@dataclasses.dataclass
class Param:
    name: str
    default: object
    required: bool
    description: str


@dataclasses.dataclass
class ActionDoc:
    name: str
    target: str
    summary: str
    body: str
    params: list
    returns: str
    documented_reasons: list   # in the docstring, in its order
    reasons: dict              # reason -> [RaiseSite] the source can return
    unknown_codes: list        # ``codes`` after "reasons" that no source raises

    @property
    def all_reasons(self):
        seen = list(self.documented_reasons)
        seen += [r for r in sorted(self.reasons) if r not in seen]
        return seen

    @property
    def undocumented(self):
        return [r for r in sorted(self.reasons) if r not in self.documented_reasons]


def entry_points(root):
    """``{action name: "module:Class"}`` of the selfheal actions."""
    pyproject = pathlib.Path(root) / "pyproject.toml"
    if tomllib is not None and pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        found = project.get("entry-points", {}).get("mistral.actions", {})
    else:
        import importlib.metadata

        found = {ep.name: ep.value
                 for ep in importlib.metadata.entry_points(group="mistral.actions")}
    return {k: v for k, v in sorted(found.items()) if k.startswith("selfheal.")}


# --- docstrings ---------------------------------------------------------------

def parse_docstring(doc):
    """``(summary, body, {field key: text})``; keys like ``param host``."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary, rest = [], []
    i = 0
    while i < len(lines) and lines[i].strip():
        summary.append(lines[i].strip())
        i += 1
    body, fields, current = [], {}, None
    for line in lines[i:]:
        match = _FIELD.match(line)
        if match:
            current = f"{match.group(1)} {match.group(2) or ''}".strip()
            fields[current] = match.group(3).strip()
        elif current and (line.startswith((" ", "\t")) or not line.strip()):
            if line.strip():
                fields[current] = (fields[current] + " " + line.strip()).strip()
        elif current is None:
            body.append(line)
        else:
            current = None
            body.append(line)
        rest.append(line)
    return " ".join(summary), "\n".join(body).strip(), fields


def documented_codes(fields):
    """Every ``code`` named after 'reasons' in :returns:, or in :raises:."""
    codes = []
    for key, text in fields.items():
        if key.startswith("raises"):
            part = text
        else:
            at = text.lower().find("reasons")
            if at < 0:
                continue
            part = text[at:]
        codes += [c for c in _CODE.findall(part) if c not in codes]
    return codes


# --- source analysis ------------------------------------------------------------

class _Module:
    """One module; ``name`` is dotted below the package (``hosts.evacuation``),
    ``known`` every such name (to tell an imported module from a symbol)."""

    def __init__(self, name, tree, known=()):
        self.name = name
        self.tree = tree
        self.functions = {}      # qualname -> FunctionDef
        self.classes = {}        # name -> ClassDef
        self.imports = {}        # alias -> ("module", mod) | ("symbol", mod, name)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.functions[f"{node.name}.{item.name}"] = item
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                below = node.module[len(PACKAGE) + 1:]
                for alias in node.names:
                    dotted = f"{below}.{alias.name}" if below else alias.name
                    if dotted in known:
                        self.imports[alias.asname or alias.name] = ("module", dotted)
                    else:
                        self.imports[alias.asname or alias.name] = ("symbol", below, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE + "."):
                        short = alias.name.split(".", 1)[1]
                        self.imports[alias.asname or alias.name] = ("module", short)


class SourceIndex:
    """Every module of the package, parsed, with its failures and calls."""

    def __init__(self, root):
        self.modules = {}
        package = pathlib.Path(root) / PACKAGE
        paths = {".".join(path.relative_to(package).with_suffix("").parts): path
                 for path in sorted(package.rglob("*.py")) if path.name != "__init__.py"}
        for name, path in paths.items():
            tree = ast.parse(path.read_text(), str(path))
            self.modules[name] = _Module(name, tree, set(paths))
        self.failure_classes = self._failure_classes()

    # classes ------------------------------------------------------------------
    def resolve_class(self, module, name):
        """``(module, class)`` of a class name used in ``module``."""
        mod = self.modules.get(module)
        if mod is None:
            return None
        if name in mod.classes:
            return module, name
        imported = mod.imports.get(name)
        if imported and imported[0] == "symbol":
            return self.resolve_class(imported[1], imported[2])
        return None

    def _bases(self, module, cls):
        node = self.modules[module].classes[cls]
        bases = []
        for base in node.bases:
            if isinstance(base, ast.Name):
                found = self.resolve_class(module, base.id)
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
                found = self._module_attr(module, base.value.id, base.attr, classes=True)
            else:
                found = None
            if found:
                bases.append(found)
        return bases

    def _failure_classes(self):
        """``{(module, class): fixed reason or None}`` for ActionFailure and subclasses."""
        result = {}
        for module, mod in self.modules.items():
            if FAILURE in mod.classes:
                result[(module, FAILURE)] = None
        changed = True
        while changed:
            changed = False
            for module, mod in self.modules.items():
                for cls in mod.classes:
                    key = (module, cls)
                    if key in result:
                        continue
                    if any(b in result for b in self._bases(module, cls)):
                        result[key] = self._fixed_reason(mod, cls)
                        changed = True
        return result

    @staticmethod
    def _fixed_reason(mod, cls):
        init = mod.functions.get(f"{cls}.__init__")
        for node in ast.walk(init) if init else []:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "__init__" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                return node.args[0].value
        return None

    def _module_attr(self, module, alias, attr, classes=False):
        imported = self.modules[module].imports.get(alias)
        if not imported or imported[0] != "module" or imported[1] not in self.modules:
            return None
        target = self.modules[imported[1]]
        if attr in target.classes:
            return imported[1], attr
        if not classes and attr in target.functions:
            return imported[1], attr
        return None

    # functions ----------------------------------------------------------------
    def method(self, module, cls, name):
        """``(module, "Class.name")`` found on the class or its project bases."""
        if f"{cls}.{name}" in self.modules[module].functions:
            return module, f"{cls}.{name}"
        for base_module, base in self._bases(module, cls):
            found = self.method(base_module, base, name)
            if found:
                return found
        return None

    def _callee(self, module, cls, node, types):
        """Functions a call may run: ``[(module, qualname)]``; classes -> __init__."""
        func = node.func
        found = None
        if isinstance(func, ast.Name):
            mod = self.modules[module]
            if func.id in mod.functions:
                found = (module, func.id)
            else:
                found = self.resolve_class(module, func.id)
                if found is None:
                    imported = mod.imports.get(func.id)
                    if imported and imported[0] == "symbol" and imported[1] in self.modules \
                            and imported[2] in self.modules[imported[1]].functions:
                        found = (imported[1], imported[2])
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner == "self" and cls:
                return [self.method(module, cls, func.attr)]
            if owner in types:
                return [self.method(*types[owner], func.attr)]
            found = self._module_attr(module, owner, func.attr)
        if found is None:
            return []
        target_module, name = found
        if name in self.modules[target_module].classes:
            return [self.method(target_module, name, "__init__")]
        return [found]

    def _failure_of(self, module, node):
        """``(reason, message node)`` when ``node`` makes an ActionFailure."""
        func = node.func
        if isinstance(func, ast.Name):
            cls = self.resolve_class(module, func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            cls = self._module_attr(module, func.value.id, func.attr, classes=True)
        else:
            return None
        if cls not in self.failure_classes:
            return None
        fixed = self.failure_classes[cls]
        args = list(node.args)
        keywords = {k.arg: k.value for k in node.keywords}
        if fixed is None:
            reason = args.pop(0) if args else keywords.get("reason")
            if not (isinstance(reason, ast.Constant) and isinstance(reason.value, str)):
                raise ValueError(f"{module}.py:{node.lineno}: an ActionFailure whose reason is "
                                 "not a string literal: the docs cannot list it")
            reason = reason.value
        else:
            reason = fixed
        message = args[0] if args else keywords.get("message")
        return reason, message

    def analyse(self, module, qualname):
        """Raise sites reachable from one function: ``{reason: [RaiseSite]}``."""
        found, seen, todo = {}, set(), [(module, qualname)]
        while todo:
            key = todo.pop()
            if key is None or key in seen:
                continue
            seen.add(key)
            mod_name, name = key
            func = self.modules[mod_name].functions[name]
            cls = name.split(".")[0] if "." in name else None
            types = {}
            for node in ast.walk(func):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    made = self._made_class(mod_name, node.value)
                    if made:
                        for target in node.targets:
                            if isinstance(target, ast.Name):
                                types[target.id] = made
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                failure = self._failure_of(mod_name, node)
                if failure:
                    reason, message = failure
                    found.setdefault(reason, []).append(RaiseSite(
                        reason, render_message(message), mod_name, name, node.lineno))
                    continue
                todo.extend(self._callee(mod_name, cls, node, types))
        for sites in found.values():
            sites.sort(key=lambda s: (s.module, s.line))
        return found

    def _made_class(self, module, call):
        func = call.func
        if isinstance(func, ast.Name):
            return self.resolve_class(module, func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return self._module_attr(module, func.value.id, func.attr, classes=True)
        return None

    def every_reason(self):
        """Every reason raised anywhere in the package: ``{reason: [RaiseSite]}``."""
        found = {}
        for module, mod in self.modules.items():
            for name in mod.functions:
                for node in ast.walk(mod.functions[name]):
                    if isinstance(node, ast.Call):
                        failure = self._failure_of(module, node)
                        if failure:
                            found.setdefault(failure[0], []).append(RaiseSite(
                                failure[0], render_message(failure[1]), module, name,
                                node.lineno))
        return found


def render_message(node):
    """The text of a message expression, ``<placeholders>`` for what varies."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(render_message(v) if isinstance(v, ast.Constant)
                       else _placeholder(v.value) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return render_message(node.left) + render_message(node.right)
    return _placeholder(node)


def _placeholder(node):
    if isinstance(node, ast.Name):
        return f"<{node.id}>"
    if isinstance(node, ast.Attribute):
        return f"<{node.attr}>"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return f"<{node.slice.value}>"
    text = ast.unparse(node).replace("self.", "")
    return f"<{text if len(text) <= 40 else text[:39] + '…'}>"


# --- the actions ----------------------------------------------------------------

def action_docs(root, index=None):
    """``{action name: ActionDoc}`` for every selfheal action entry point."""
    index = index or SourceIndex(root)
    docs = {}
    for name, target in entry_points(root).items():
        module_path, _, cls_name = target.partition(":")
        module = module_path.split(".", 1)[1]
        cls = getattr(importlib.import_module(module_path), cls_name)
        summary, body, fields = parse_docstring(cls.__doc__)
        signature = list(inspect.signature(cls.__init__).parameters.values())[1:]
        params = []
        for p in signature:
            required = p.default is inspect.Parameter.empty
            params.append(Param(p.name, None if required else p.default, required,
                                fields.get(f"param {p.name}", "")))
        reasons = index.analyse(module, f"{cls_name}.execute") \
            if f"{cls_name}.execute" in index.modules[module].functions else {}
        init = index.method(module, cls_name, "__init__")
        if init:
            for reason, sites in index.analyse(*init).items():
                reasons.setdefault(reason, []).extend(sites)
        documented = documented_codes(fields)
        known = set(index.every_reason())
        param_names = {p.name for p in params}
        docs[name] = ActionDoc(
            name=name, target=target, summary=summary, body=body, params=params,
            returns=fields.get("returns", ""),
            documented_reasons=[c for c in documented if c in known],
            reasons=reasons,
            unknown_codes=[c for c in documented if c not in known and c not in param_names])
    return docs
