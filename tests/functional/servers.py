# SPDX-License-Identifier: Apache-2.0
"""What the functional tests read of a server and its moves, in one place."""


def host_of(server):
    """The compute host Nova places ``server`` on (admin view)."""
    return getattr(server, "OS-EXT-SRV-ATTR:host")


def moves(cloud, server_id, kind="live-migration"):
    """Nova's migration records of ``server_id`` of one ``kind``."""
    return cloud.nova().migrations.list(instance_uuid=server_id, migration_type=kind)
