# SPDX-License-Identifier: Apache-2.0
"""Where the lab keeps its state, and the endpoints file that tools read.

The state folder (``.lab/`` beside the source tree, or ``$SELFHEAL_LAB_DIR``)
holds one virtual environment per service, their configuration, databases,
logs and PID files, ``endpoints.json``, the one place where tests, the
demo and the benchmark find the running services, and ``created.json``, what
the lab created on the machine's shared backends (:mod:`selfheal_lab.ledger`).
"""

import json
import os
import pathlib

#: the selfheal checkout the lab runs from (lab/selfheal_lab/state.py -> the root)
SOURCE_ROOT = pathlib.Path(os.environ.get("SELFHEAL_SOURCE_ROOT")
                           or pathlib.Path(__file__).resolve().parents[2])


def lab_dir():
    """Return the lab's state folder, creating it if needed."""
    path = pathlib.Path(os.environ.get("SELFHEAL_LAB_DIR") or SOURCE_ROOT / ".lab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def service_dir(name):
    """Return (and create) the folder of one service: config, db, logs."""
    path = lab_dir() / "services" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def endpoints_path():
    return lab_dir() / "endpoints.json"


def read_endpoints():
    """Return the endpoints of the running lab services ({} when none)."""
    try:
        return json.loads(endpoints_path().read_text())
    except FileNotFoundError:
        return {}


def update_endpoints(service, info):
    """Record (or with ``info=None`` remove) the endpoints of one service."""
    endpoints = read_endpoints()
    if info is None:
        endpoints.pop(service, None)
    else:
        endpoints[service] = info
    tmp = endpoints_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints, indent=2, sort_keys=True))
    tmp.replace(endpoints_path())
    return endpoints


def write_private(path, text):
    """Write ``text`` to ``path`` readable by this user only (mode 0600): for
    files holding passwords (service configurations, the lab's passwords)."""
    path = pathlib.Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with a wider mode
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
