"""The code passes the project's linter (configured in pyproject.toml)."""

import pathlib
import shutil
import subprocess
import sys

from selfheal_lab import state

# ruff comes with the test extras, beside this interpreter
RUFF = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")


def test_ruff_is_clean():
    assert RUFF, "ruff is missing: install the project with its test extras (.[test])"
    result = subprocess.run([RUFF, "check", "selfheal_actions", "selfheal_lab", "tests",
                             "benchmarks", "tools", "doc"], cwd=state.SOURCE_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
