# SPDX-License-Identifier: Apache-2.0
"""Reading Nova's records of servers and migrations: what the movers agree on.

Plain functions on the dicts Nova returns; the evacuation and the drain both
decide and verify with them.
"""

IN_FLIGHT = "in_flight"
DONE = "done"
FAILED = "failed"

#: migration statuses, by what they mean for an evacuation
MIGRATION_DONE = {"done", "completed"}
MIGRATION_FAILED = {"error", "failed", "cancelled"}

RUNNING = "running"
SHUTOFF = "shutoff"

TRUE_WORDS = {"true", "1", "yes", "on"}
RESET_STATES = {"paused", "suspended", "rescued", "resized"}


def migration_phase(migration):
    status = (migration.get("status") or "").lower()
    if status in MIGRATION_DONE:
        return DONE
    if status in MIGRATION_FAILED:
        return FAILED
    return IN_FLIGHT


def latest_migrations(migrations):
    """The newest migration per instance uuid."""
    latest = {}
    for migration in migrations:
        uuid = migration.get("instance_uuid")
        if uuid and (uuid not in latest or migration["id"] > latest[uuid]["id"]):
            latest[uuid] = migration
    return latest


def vm_state(server):
    return (server.get("OS-EXT-STS:vm_state") or "").lower()


def task_state(server):
    return server.get("OS-EXT-STS:task_state")


def power_of(server):
    """``running`` / ``shutoff`` / None from a server's vm_state."""
    return {"active": RUNNING, "stopped": SHUTOFF}.get(vm_state(server))


def flavor_names(server):
    flavor = server.get("flavor") or {}
    return {str(v) for k, v in flavor.items() if k in ("id", "original_name") and v}


def image_id(server):
    image = server.get("image")
    return image.get("id") if isinstance(image, dict) else None


def is_true(value):
    return str(value).strip().lower() in TRUE_WORDS
