"""The code passes the project's linter (configured in pyproject.toml)."""

import shutil
import subprocess

import pytest

from selfheal_lab import state


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_is_clean():
    result = subprocess.run(["ruff", "check", "selfheal_actions", "selfheal_lab", "tests",
                             "benchmarks", "tools"], cwd=state.SOURCE_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
