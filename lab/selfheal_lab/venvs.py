# SPDX-License-Identifier: Apache-2.0
"""One virtual environment per service, built once and reused.

Their pins conflict (Nova needs SQLAlchemy < 2.1, the others take 2.1), so
each service gets its own. A stamp file holds a hash of the requirements: the
venv is rebuilt only when they change, which makes ``lab up`` idempotent.
"""

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

    :param name: service name; its requirements file must exist.
    :param extra_requirements: more pip arguments hashed into the stamp.
    :returns: the venv's interpreter path.
    """
    wanted = _requirements(name) + "\n".join(extra_requirements)
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    stamp = venv_dir(name) / "selfheal-stamp"
    if stamp.exists() and stamp.read_text() == digest and python(name).exists():
        return python(name)
    progress.step(f"building the {name} virtual environment (first time only, about a minute)")
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir(name))
    pip = [str(python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log = state.lab_dir() / "venvs" / f"{name}-pip.log"
    with open(log, "w") as out:
        cmd = pip + ["-r", str(REQUIREMENTS_DIR / f"{name}.txt"), *extra_requirements]
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"installing the {name} venv failed; see {log}")
    stamp.write_text(digest)
    return python(name)


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
