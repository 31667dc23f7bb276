# SPDX-License-Identifier: Apache-2.0
"""The lab's Nova box keeps its state for as long as it runs."""

from selfheal_lab.services import nova as nova_box


def test_in_memory_databases_are_never_recycled(cloud):
    # oslo.db recycles connections older than an hour by default; for an
    # in-memory SQLite database the new connection is an empty database,
    # and a box that had run for an hour answered "no such table".
    in_memory = [e for e in nova_box.databases() if e["url"] in ("sqlite://", "sqlite:///")]
    # the API database, cell0, cell1 and Placement at least
    assert len(in_memory) >= 4, in_memory
    assert {e["recycle_seconds"] for e in in_memory} == {-1}, in_memory
    assert cloud.nova().flavors.list()
