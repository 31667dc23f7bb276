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

from selfheal_lab import autoheal_scenario
from selfheal_lab import lab
from selfheal_lab import scenario
from selfheal_lab import zaqar_client

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
def delete_new_servers(cloud):
    """Servers a test booted may have moved off its hosts (which make_hosts
    cleans up): delete them too, so they do not pile up on the shared hosts.
    A module takes it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    nova = cloud.nova()
    before = {s.id for s in nova.servers.list(search_opts={"all_tenants": True})}
    yield
    for server in nova.servers.list(search_opts={"all_tenants": True}):
        if server.id not in before:
            nova.servers.delete(server.id)


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


@pytest.fixture(scope="module")
def heal_lab(lab_info):
    """The lab with Heat and Zaqar (the autohealing flow)."""
    lab.up_autoheal()
    return autoheal_scenario.AutohealLab()


def _alarmed_stacks(heal_lab, prefix, create):
    """The body of a stack factory fixture: ``make(*args, extra_input=None,
    params=None, **kwargs)`` creates a stack with ``create(name, *args,
    **kwargs)`` and a queue whose subscription (``extra_input``, ``params``:
    the trigger's) starts heal_from_alarm, and returns ``(stack id, queue)``;
    every stack and queue made is deleted at the end."""
    created = []

    def make(*args, extra_input=None, params=None, **kwargs):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        stack_id = create(name, *args, **kwargs)
        queue = f"alarms-{name}"
        heal_lab.subscribe_trigger(queue, stack_id, extra_input=extra_input, params=params)
        created.append((stack_id, queue))
        return stack_id, queue

    yield make
    for stack_id, queue in created:
        zaqar_client.delete_queue(queue)
        heal_lab.delete(stack_id)


@pytest.fixture
def group(heal_lab):
    """A fresh stack with 3 members and a queue triggering heal_from_alarm."""
    def create(name, count=3, nested_members=False, member_type="OS::Heat::TestResource"):
        return heal_lab.create_group(name, count, nested_members=nested_members,
                                     member_type=member_type)

    yield from _alarmed_stacks(heal_lab, "ah", create)


@pytest.fixture
def scaling_group(heal_lab):
    """A fresh auto-scaling group stack (the shipped template) and a queue
    triggering heal_from_alarm."""
    def create(name, min_size=3, **params):
        return heal_lab.create_scaling_group(name, min_size=min_size, **params)

    yield from _alarmed_stacks(heal_lab, "as", create)
