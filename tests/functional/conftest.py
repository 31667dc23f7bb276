# SPDX-License-Identifier: Apache-2.0
"""Functional tests run on the lab's real services (Mistral, Nova in a box).

The lab comes up once per test session (built on first use, about two
minutes; then seconds) and goes down at the end unless SELFHEAL_KEEP_LAB=1.
Each test makes its own uniquely named compute hosts and removes them (and
their servers) afterwards, so tests do not see each other's failures.
"""

import itertools
import os
import uuid

import pytest

from selfheal_lab import lab
from selfheal_lab import scenario

_COUNTER = itertools.count(1)
# unique per session: a kept lab remembers the hosts of earlier sessions
_SESSION = uuid.uuid4().hex[:4]


@pytest.fixture(scope="session")
def lab_info():
    info = lab.up()
    yield info
    if not os.environ.get("SELFHEAL_KEEP_LAB"):
        lab.down()


@pytest.fixture(scope="session")
def cloud(lab_info):
    return scenario.LabCloud()


@pytest.fixture
def make_hosts(cloud):
    """``make_hosts(n)`` -> n fresh compute host names, up and enabled."""
    created = []

    def make(count=3):
        test_id = next(_COUNTER)
        names = [f"t{_SESSION}{test_id:02d}-{chr(ord('a') + i)}" for i in range(count)]
        cloud.add_hosts(*names)
        created.extend(names)
        return names

    yield make
    if created:
        cloud.remove_hosts(created)
