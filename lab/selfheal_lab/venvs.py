# SPDX-License-Identifier: Apache-2.0
"""One virtual environment per service, built once and reused.

Their pins conflict (Nova needs SQLAlchemy < 2.1, the others take 2.1), so
each service gets its own. A stamp file holds a hash of the requirements: the
venv is rebuilt only when they change, which makes ``lab up`` idempotent.
"""

import contextlib
import fcntl
import hashlib
import pathlib
import subprocess
import sys
import venv

from selfheal_lab import progress
from selfheal_lab import state

REQUIREMENTS_DIR = pathlib.Path(__file__).resolve().parent / "requirements"


def venv_dir(name):
    return state.lab_dir() / "venvs" / name


def python(name):
    """Return the interpreter of the service venv ``name``."""
    return venv_dir(name) / "bin" / "python"


def stamp(name):
    """The hash of the requirements the venv ``name`` was built from."""
    path = venv_dir(name) / "selfheal-stamp"
    return path.read_text() if path.exists() else ""


def _requirements(name):
    return (REQUIREMENTS_DIR / f"{name}.txt").read_text()


def ensure(name, extra_requirements=()):
    """Create the venv ``name`` from ``requirements/<name>.txt`` if needed.

    Two lab commands that need the same venv at once (a test run beside a
    ``selfheal-lab up``) take turns: the second waits for the first build
    and then uses it, instead of clearing it half-way.

    :param name: service name; its requirements file must exist.
    :param extra_requirements: more pip arguments hashed into the stamp.
    :returns: the venv's interpreter path.
    """
    wanted = _requirements(name) + "\n".join(extra_requirements)
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    with _build_lock(name):
        if stamp(name) == digest and python(name).exists():
            return python(name)
        _build(name, extra_requirements)
        (venv_dir(name) / "selfheal-stamp").write_text(digest)
    return python(name)


@contextlib.contextmanager
def _build_lock(name):
    """Hold an exclusive lock on the venv ``name`` for one process at a time."""
    lock_path = state.lab_dir() / "venvs" / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _build(name, extra_requirements):
    progress.step(f"building the {name} virtual environment (first time only, about a minute)")
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir(name))
    pip = [str(python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log = state.lab_dir() / "venvs" / f"{name}-pip.log"
    with open(log, "w") as out:
        cmd = pip + ["-r", str(REQUIREMENTS_DIR / f"{name}.txt"), *extra_requirements]
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"installing the {name} venv failed; see {log}")


def install_package(name, path, force=False):
    """Install the project at ``path`` into venv ``name`` when its sources changed.

    :returns: True when it (re)installed, False when it was current.
    """
    path = pathlib.Path(path)
    digest = source_digest(path)
    stamp = venv_dir(name) / "selfheal-package-stamp"
    if not force and stamp.exists() and stamp.read_text() == digest:
        return False
    progress.step(f"installing selfheal into the {name} venv")
    log = state.lab_dir() / "venvs" / f"{name}-selfheal.log"
    cmd = [str(python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--force-reinstall", str(path)]
    with open(log, "w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"installing selfheal into the {name} venv failed; see {log}")
    stamp.write_text(digest)
    return True


def source_digest(path):
    """Hash of everything that ends up in the installed package."""
    h = hashlib.sha256()
    parts = ("selfheal_actions", "selfheal_tools", "workbooks", "vitrage_templates",
             "heat_templates", "setup.cfg",
             "pyproject.toml")
    for sub in parts:
        root = pathlib.Path(path) / sub
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()
