#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Set up everything from a fresh checkout with only Python, then run a job.

    python3 tools/dev.py demo     # a host failure healed on the embedded lab
    python3 tools/dev.py test     # the whole test suite (unit + functional)
    python3 tools/dev.py bench    # selfheal vs Nova's floor (benchmarks/evacuation.py)
    python3 tools/dev.py bench NAME [ARGS]   # another benchmark: autoheal, alarm,
                                             # drain, peers, watch (benchmarks/<NAME>*.py)

It makes ``.venv`` with the product (``selfheal``, with its test extras) and
the lab (``lab/``, the ``selfheal-lab`` distribution), both editable, and
reinstalls them when their requirements change; the lab then builds one venv per OpenStack service
under ``.lab/`` the first time it is needed. Extra arguments go to pytest
(``test``), to ``selfheal-lab demo`` or to the benchmark.
"""

import hashlib
import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def ensure_venv():
    wanted = hashlib.sha256(b"".join(
        (ROOT / f).read_bytes() for f in ("requirements.txt", "pyproject.toml", "setup.cfg",
                                          "lab/pyproject.toml")
    )).hexdigest()
    stamp = VENV / "selfheal-dev-stamp"
    if stamp.exists() and stamp.read_text() == wanted and PY.exists():
        return
    print("[dev] creating .venv with the project and its test tools", file=sys.stderr,
          flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[test,bench]", "-e", f"{ROOT / 'lab'}"], check=True)
    stamp.write_text(wanted)

BENCHMARKS = {"evacuation": "evacuation.py", "autoheal": "autoheal_latency.py",
              "alarm": "alarm_latency.py", "drain": "drain.py", "peers": "peers.py",
              "watch": "watch_detection.py", "autoheal-scale": "autoheal_scale.py"}


def main(argv):
    if not argv or argv[0] not in ("demo", "test", "bench"):
        sys.exit(__doc__)
    job, rest = argv[0], argv[1:]
    ensure_venv()
    os.chdir(ROOT)
    if job == "test":
        cmd = [str(PY), "-m", "pytest", "-ra", *(rest or ["tests"])]
    elif job == "demo":
        cmd = [str(VENV / "bin" / "selfheal-lab"), "demo", *rest]
    elif rest and rest[0] in BENCHMARKS:
        cmd = [str(PY), f"benchmarks/{BENCHMARKS[rest[0]]}", *rest[1:]]
    else:
        cmd = [str(PY), "benchmarks/evacuation.py", *rest]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
