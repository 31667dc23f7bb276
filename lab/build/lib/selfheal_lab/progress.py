# SPDX-License-Identifier: Apache-2.0
"""Progress lines a person can follow on long lab steps (to stderr)."""

import sys
import time

_START = time.monotonic()


def step(message):
    """Print one timestamped progress line, seconds since the lab started."""
    print(f"[{time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)
