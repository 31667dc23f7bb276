# SPDX-License-Identifier: Apache-2.0
"""Validate workbooks and templates with the platforms' own parsers, offline.

Mistral's DSL parser and Vitrage's template validator are the judges that
matter, but they live in big packages an operator's laptop may not have (and
Mistral's and Nova's pins conflict), so each runs in a subprocess of a Python
that has it: one named on the command line, this one, or the lab's venv.
When none has it, the check is reported as skipped, never as passed.
"""

import json
import pathlib
import subprocess
import sys

_MISTRAL = r"""
import json, sys
from mistral.lang import parser
for path in sys.argv[1:]:
    try:
        spec = parser.get_workbook_spec_from_yaml(open(path).read())
        print(json.dumps({"path": path, "ok": True,
                          "workflows": sorted(w.get_name() for w in spec.get_workflows())}))
    except Exception as e:
        print(json.dumps({"path": path, "ok": False, "error": f"{type(e).__name__}: {e}"}))
"""

_VITRAGE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import yaml
import vitrage.evaluator  # registers the template schemas
from vitrage.evaluator import template_validation
for path in sys.argv[1:]:
    try:
        template = yaml.load(open(path).read(), Loader=yaml.BaseLoader)
        result = template_validation.validate_template(template, {}, None)
        print(json.dumps({"path": path, "ok": bool(result.is_valid_config),
                          "code": result.status_code, "error": None if result.is_valid_config
                          else f"Vitrage code {result.status_code}: {result.comment}"}))
    except Exception as e:
        print(json.dumps({"path": path, "ok": False, "error": f"{type(e).__name__}: {e}"}))
"""

PROGRAMS = {"mistral": ("mistral.lang.parser", _MISTRAL),
            "vitrage": ("vitrage.evaluator", _VITRAGE)}


def find_python(platform, given=None):
    """A Python that can import ``platform``'s validator, or None.

    Tried in order: ``given``, this interpreter, the lab's venv for it.
    """
    module = PROGRAMS[platform][0]
    lab_python = pathlib.Path(__file__).resolve().parent.parent / ".lab" / "venvs" / platform \
        / "bin" / "python"
    for candidate in ([given] if given else []) + [sys.executable, str(lab_python)]:
        if not pathlib.Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-c", f"import {module}"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def run(platform, python, paths):
    """Run ``platform``'s validator in ``python`` on ``paths``.

    :returns: ``{path: {"ok": bool, "error": str or None}}``.
    """
    out = subprocess.run([python, "-c", PROGRAMS[platform][1], *map(str, paths)],
                         capture_output=True, text=True, timeout=600)
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row["path"]] = row
    for path in map(str, paths):
        results.setdefault(path, {"ok": False, "error": f"{platform} validator crashed: "
                                  f"{out.stderr.strip()[-500:]}"})
    return results
