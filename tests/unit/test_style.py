# SPDX-License-Identifier: Apache-2.0
"""The code passes the project's linter (configured in pyproject.toml) and
every Python file carries the license header."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECKED = ["selfheal_actions", "selfheal_tools", "lab", "tests", "benchmarks", "tools", "doc"]
HEADER = "# SPDX-License-Identifier: Apache-2.0"

# ruff comes with the test extras, beside this interpreter
RUFF = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")


def test_ruff_is_clean():
    assert RUFF, "ruff is missing: install the project with its test extras (.[test])"
    result = subprocess.run([RUFF, "check", *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def python_files():
    for part in CHECKED + ["setup.py"]:
        path = ROOT / part
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_every_python_file_has_the_license_header():
    missing = []
    for path in python_files():
        if "build" in path.relative_to(ROOT).parts:
            continue
        head = path.read_text().splitlines()[:2]
        if HEADER not in head:
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"add {HEADER!r} as the first line (after a #! line)"


def test_the_license_is_the_one_the_metadata_names():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert 'license = {text = "Apache-2.0"}' in (ROOT / "pyproject.toml").read_text()
    assert 'license = {text = "Apache-2.0"}' in (ROOT / "lab" / "pyproject.toml").read_text()
