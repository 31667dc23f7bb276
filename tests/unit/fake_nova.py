# SPDX-License-Identifier: Apache-2.0
"""An in-memory stand-in for :class:`selfheal_actions.common.compute.NovaApi`.

It keeps services, servers and migrations as plain dicts and moves each
requested evacuation one step per poll (accepted -> pre-migrating -> done),
and each live
migration (queued -> completed) or cold migration (pre-migrating -> finished,
then confirmed on request), the way Nova's migration records change, so the
runners' logic is exercised step by step.
It is a fake for logic and edge cases; the functional tests use real Nova.
Where it matters it behaves like Nova 34 (``nova/compute/api.py``,
``nova/db/main/api.py``), not like a kinder service:

* evacuate checks the vm_state only: ``check_instance_state(task_state=None)``
  checks no task state and the save has no compare-and-swap, so a second
  evacuation of a server being rebuilt is accepted and runs too;
* ``since`` (changes-since) keeps the migrations whose ``updated_at`` is at
  or after it: a record never updated (``accepted``) or stuck in
  ``pre-migrating`` for long is not listed;
* ``fail_reads`` makes the next reads of a method answer HTTP 503.
"""

import itertools

from novaclient import exceptions as nova_exc

from selfheal_actions.common import timeutil


def _now():
    return timeutil.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")


def _updated_since(migration, since):
    """Nova's changes-since on migrations: ``updated_at >= since`` (never
    updated: not listed)."""
    if since is None:
        return True
    updated = timeutil.parse_time(migration.get("updated_at"))
    return updated is not None and updated >= since.replace(tzinfo=updated.tzinfo)


def server(uuid, name=None, host="failed-1", vm_state="active", task_state=None,
           metadata=None, locked=False, flavor="m1.small", image="img-1"):
    return {"id": uuid, "name": name or uuid, "OS-EXT-SRV-ATTR:host": host,
            "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task_state,
            "metadata": metadata or {}, "locked": locked,
            "flavor": {"original_name": flavor}, "image": {"id": image}}


def service(host, state="up", status="enabled", forced_down=False, reason=None, sid=None):
    return {"id": sid or f"svc-{host}", "host": host, "state": state, "status": status,
            "forced_down": forced_down, "disabled_reason": reason,
            "updated_at": timeutil.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")}


class FakeNova:
    def __init__(self, servers=(), services=(), stops_evacuated=True, steps_to_finish=1):
        self.servers = {s["id"]: s for s in servers}
        self.services = list(services)
        self.migrations = []
        self.stops_evacuated_servers = stops_evacuated
        self.microversion = "2.96" if stops_evacuated else "2.60"
        self.steps_to_finish = steps_to_finish
        self.failures = {}  # destination host -> failures left
        self.calls = []
        self.ids = itertools.count(1)
        self.aggregates = {}
        self.capacity = {}  # host -> how many servers it holds at most (default 1000)
        # vm state a live migration lands in, by the state it had (a Nova quirk to test)
        self.live_migrated_state = {}
        self.stalled = set()  # instance uuids whose evacuation never progresses (slow spawn)
        self.read_faults = {}  # method name -> 503 answers left
        self.groups = []  # server groups: {id, name, policy, members}
        self.resources = {}  # host -> {vcpus, memory_mb, local_gb} (default: large)

    def fail_reads(self, method, count):
        """The next ``count`` calls of ``method`` answer HTTP 503."""
        self.read_faults[method] = count

    def _read_fault(self, method):
        if self.read_faults.get(method, 0) > 0:
            self.read_faults[method] -= 1
            raise nova_exc.ClientException(503, "Service Unavailable (injected)")

    def fail_next(self, dest, count):
        self.failures[dest] = count

    def _service(self, host):
        return next(s for s in self.services if s["host"] == host)

    def _pick(self, source):
        up = [s["host"] for s in self.services
              if s["host"] != source and s["state"] == "up" and s["status"] == "enabled"]
        return up[0] if up else None

    # NovaApi methods
    def force_down(self, service_id, down=True):
        self.calls.append(("force_down", service_id, down))
        svc = next(s for s in self.services if s["id"] == service_id)
        if not down and any(m["source_compute"] == svc["host"] and m["status"] == "done"
                            for m in self.migrations):
            raise nova_exc.BadRequest(400, f"Unable to force up host {svc['host']} as `done` "
                                      "evacuation migration records remain associated")
        svc["forced_down"] = down
        # like Nova: a forced-down service is down; lifted, it is up only if it heartbeats
        svc["state"] = "down" if down or not svc.get("alive", True) else "up"

    def disable(self, service_id, reason):
        self.calls.append(("disable", service_id, reason))
        next(s for s in self.services if s["id"] == service_id).update(
            status="disabled", disabled_reason=reason)

    def enable(self, service_id):
        self.calls.append(("enable", service_id))
        next(s for s in self.services if s["id"] == service_id).update(
            status="enabled", disabled_reason=None)

    def compute_services(self):
        self.calls.append(("compute_services",))
        self._read_fault("compute_services")
        return [dict(s) for s in self.services]

    def servers_on_host(self, host):
        self.calls.append(("servers_on_host", host))
        self._read_fault("servers_on_host")
        return [dict(s) for s in self.servers.values() if s["OS-EXT-SRV-ATTR:host"] == host]

    def servers_changed_since(self, since):
        self.calls.append(("servers_changed_since",))
        self._read_fault("servers_changed_since")
        return [dict(s) for s in self.servers.values()]

    def get_server(self, uuid):
        self.calls.append(("get_server", uuid))
        self._read_fault("get_server")
        return dict(self.servers[uuid]) if uuid in self.servers else None

    def evacuate(self, uuid, target_host=None):
        self.calls.append(("evacuate", uuid, target_host))
        srv = self.servers.get(uuid)
        if srv is None:
            raise nova_exc.NotFound(404, f"Instance {uuid} could not be found.")
        host = srv["OS-EXT-SRV-ATTR:host"]
        svc = self._service(host)
        if svc["state"] == "up" and not svc["forced_down"]:
            raise nova_exc.BadRequest(400, f"Compute service of {host} is still in use.")
        if srv["OS-EXT-STS:vm_state"] not in ("active", "stopped", "error"):
            raise nova_exc.Conflict(409, f"Cannot 'evacuate' instance {uuid} while it is in "
                                    f"vm_state {srv['OS-EXT-STS:vm_state']}")
        # like Nova 34: no task-state check, no compare-and-swap on save
        srv["OS-EXT-STS:task_state"] = "rebuilding"
        self.migrations.append({
            "id": next(self.ids), "instance_uuid": uuid, "source_compute": host,
            "dest_compute": target_host or self._pick(host), "status": "accepted",
            "migration_type": "evacuation", "created_at": _now(), "updated_at": None,
            "steps": 0})

    def start(self, uuid):
        self.calls.append(("start", uuid))
        self.servers[uuid]["OS-EXT-STS:vm_state"] = "active"

    def stop(self, uuid):
        self.calls.append(("stop", uuid))
        self.servers[uuid]["OS-EXT-STS:vm_state"] = "stopped"

    def set_server_metadata(self, uuid, key, value):
        self.calls.append(("set_server_metadata", uuid, key))
        self.servers[uuid].setdefault("metadata", {})[key] = value

    def delete_server_metadata(self, uuid, key):
        self.calls.append(("delete_server_metadata", uuid, key))
        self.servers[uuid].get("metadata", {}).pop(key, None)

    def server_groups(self):
        self.calls.append(("server_groups",))
        return [dict(g, members=list(g["members"])) for g in self.groups]

    def hypervisors(self):
        """Usage as Nova reports it: the fake's ``resources`` per host, less
        the flavors of the servers on it."""
        self.calls.append(("hypervisors",))
        found = []
        for svc in self.services:
            total = self.resources.get(svc["host"], {"vcpus": 1000, "memory_mb": 800000,
                                                     "local_gb": 1000})
            used = {"vcpus": 0, "memory_mb": 0, "local_gb": 0}
            for srv in self.servers.values():
                if srv["OS-EXT-SRV-ATTR:host"] == svc["host"]:
                    flavor = srv.get("flavor") or {}
                    used["vcpus"] += flavor.get("vcpus", 1)
                    used["memory_mb"] += flavor.get("ram", 512)
                    used["local_gb"] += flavor.get("disk", 1)
            found.append({"hypervisor_hostname": svc["host"], "service": {"host": svc["host"]},
                          "state": svc["state"], "status": svc["status"],
                          "vcpus": total["vcpus"], "vcpus_used": used["vcpus"],
                          "memory_mb": total["memory_mb"], "memory_mb_used": used["memory_mb"],
                          "local_gb": total["local_gb"], "local_gb_used": used["local_gb"]})
        return found

    def reset_to_error(self, uuid):
        self.calls.append(("reset_to_error", uuid))
        self.servers[uuid]["OS-EXT-STS:vm_state"] = "error"
        self.servers[uuid]["OS-EXT-STS:task_state"] = None

    def evacuations_from(self, host, since=None):
        self.calls.append(("evacuations_from", host, since is not None))
        self._read_fault("evacuations_from")
        self._advance()
        return [{k: v for k, v in m.items() if k != "steps"}
                for m in self.migrations if m["source_compute"] == host
                and m.get("migration_type", "evacuation") == "evacuation"
                and _updated_since(m, since)]

    def _advance(self):
        for mig in self.migrations:
            if mig["status"] not in ("accepted", "pre-migrating"):
                continue
            if mig["status"] == "accepted":
                mig.update(status="pre-migrating", updated_at=_now())
            if mig["instance_uuid"] in self.stalled:
                continue  # the spawn on the destination takes its time
            mig["steps"] += 1
            if mig["steps"] < self.steps_to_finish:
                continue
            mig["updated_at"] = _now()
            srv = self.servers[mig["instance_uuid"]]
            srv["OS-EXT-STS:task_state"] = None
            dest = mig["dest_compute"]
            if dest is None:
                mig["status"] = "error"
            elif self.failures.get(dest, 0) > 0:
                self.failures[dest] -= 1
                mig["status"] = "failed"
            else:
                mig["status"] = "done"
                srv["OS-EXT-SRV-ATTR:host"] = dest
                before = srv["OS-EXT-STS:vm_state"]
                srv["OS-EXT-STS:vm_state"] = ("stopped" if self.stops_evacuated_servers
                                              or before == "stopped" else "active")

    # live and cold migrations (the drain)
    def _room(self, host):
        used = sum(1 for s in self.servers.values() if s["OS-EXT-SRV-ATTR:host"] == host)
        return self.capacity.get(host, 1000) - used

    def _pick_with_room(self, source):
        for svc in self.services:
            if (svc["host"] != source and svc["state"] == "up" and svc["status"] == "enabled"
                    and self._room(svc["host"]) > 0):
                return svc["host"]
        return None

    def _start_move(self, uuid, target_host, kind, allowed, task, status):
        srv = self.servers.get(uuid)
        if srv is None:
            raise nova_exc.NotFound(404, f"Instance {uuid} could not be found.")
        if srv["OS-EXT-STS:task_state"] is not None:
            raise nova_exc.Conflict(409, f"Cannot '{kind}' instance {uuid} while it is in "
                                    f"task_state {srv['OS-EXT-STS:task_state']}")
        if srv["OS-EXT-STS:vm_state"] not in allowed:
            raise nova_exc.Conflict(409, f"Cannot '{kind}' instance {uuid} while it is in "
                                    f"vm_state {srv['OS-EXT-STS:vm_state']}")
        source = srv["OS-EXT-SRV-ATTR:host"]
        srv["OS-EXT-STS:task_state"] = task
        self.migrations.append({
            "id": next(self.ids), "instance_uuid": uuid, "source_compute": source,
            "dest_compute": target_host or self._pick_with_room(source), "status": status,
            "migration_type": kind, "target": target_host,
            "created_at": timeutil.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f"), "steps": 0,
            "vm_state_before": srv["OS-EXT-STS:vm_state"]})

    def live_migrate(self, uuid, target_host=None):
        self.calls.append(("live_migrate", uuid, target_host))
        self._start_move(uuid, target_host, "live-migration", ("active", "paused"),
                         "migrating", "queued")

    def cold_migrate(self, uuid, target_host=None):
        self.calls.append(("cold_migrate", uuid, target_host))
        self._start_move(uuid, target_host, "migration", ("active", "stopped"),
                         "resize_prep", "pre-migrating")

    def confirm_migration(self, uuid):
        self.calls.append(("confirm_migration", uuid))
        srv = self.servers[uuid]
        if srv["OS-EXT-STS:vm_state"] != "resized":
            raise nova_exc.Conflict(409, f"Cannot 'confirmResize' instance {uuid} while it is "
                                    f"in vm_state {srv['OS-EXT-STS:vm_state']}")
        mig = [m for m in self.migrations if m["instance_uuid"] == uuid
               and m["migration_type"] == "migration"][-1]
        mig["status"] = "confirmed"
        srv["OS-EXT-STS:vm_state"] = mig["vm_state_before"]

    def reboot(self, uuid, hard=True):
        self.calls.append(("reboot", uuid, hard))
        srv = self.servers[uuid]
        if srv["OS-EXT-STS:vm_state"] not in ("active", "stopped", "paused", "suspended",
                                              "error"):
            raise nova_exc.Conflict(409, f"Cannot 'reboot' instance {uuid} while it is in "
                                    f"vm_state {srv['OS-EXT-STS:vm_state']}")
        if srv.get("reboot_fails"):
            srv["OS-EXT-STS:vm_state"] = "error"
        else:
            srv["OS-EXT-STS:vm_state"] = "active"

    def pause(self, uuid):
        self.calls.append(("pause", uuid))
        self.servers[uuid]["OS-EXT-STS:vm_state"] = "paused"

    def unpause(self, uuid):
        self.calls.append(("unpause", uuid))
        self.servers[uuid]["OS-EXT-STS:vm_state"] = "active"

    def migrations_from(self, host, migration_type=None, since=None):
        self.calls.append(("migrations_from", host))
        self._advance_moves()
        return [{k: v for k, v in m.items() if k not in ("steps", "target", "vm_state_before")}
                for m in self.migrations if m["source_compute"] == host
                and m.get("migration_type") in (("live-migration", "migration")
                                                if migration_type is None
                                                else (migration_type,))]

    def _advance_moves(self):
        for mig in self.migrations:
            if mig.get("migration_type") not in ("live-migration", "migration") or \
                    mig["status"] not in ("queued", "pre-migrating"):
                continue
            mig["steps"] += 1
            if mig["steps"] < self.steps_to_finish:
                continue
            srv = self.servers[mig["instance_uuid"]]
            srv["OS-EXT-STS:task_state"] = None
            dest = mig["dest_compute"]
            if dest is None or self._room(dest) <= 0 or self.failures.get(dest, 0) > 0:
                if dest is not None and self.failures.get(dest, 0) > 0:
                    self.failures[dest] -= 1
                mig["status"] = "error"
                continue
            srv["OS-EXT-SRV-ATTR:host"] = dest
            if mig["migration_type"] == "live-migration":
                mig["status"] = "completed"
                srv["OS-EXT-STS:vm_state"] = self.live_migrated_state.get(
                    srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:vm_state"])
            else:
                mig["status"] = "finished"
                srv["OS-EXT-STS:vm_state"] = "resized"

    def create_aggregate(self, name):
        self.calls.append(("create_aggregate", name))
        if any(a["name"] == name for a in self.aggregates.values()):
            raise nova_exc.Conflict(409, f"Aggregate {name} already exists.")
        aggregate = {"id": next(self.ids), "name": name, "metadata": {},
                     "created_at": timeutil.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")}
        self.aggregates[aggregate["id"]] = aggregate
        return dict(aggregate)

    def get_aggregate(self, aggregate_id):
        self.calls.append(("get_aggregate", aggregate_id))
        found = self.aggregates.get(aggregate_id)
        return dict(found, metadata=dict(found["metadata"])) if found else None

    def find_aggregate(self, name):
        self.calls.append(("find_aggregate", name))
        found = [a for a in self.aggregates.values() if a["name"] == name]
        return dict(found[0], metadata=dict(found[0]["metadata"])) if found else None

    def set_aggregate_metadata(self, aggregate_id, metadata):
        self.calls.append(("set_aggregate_metadata", aggregate_id))
        if aggregate_id not in self.aggregates:
            raise nova_exc.NotFound(404, f"Aggregate {aggregate_id} could not be found.")
        self.aggregates[aggregate_id]["metadata"].update(metadata)

    def delete_aggregate(self, aggregate_id):
        self.calls.append(("delete_aggregate", aggregate_id))
        if aggregate_id not in self.aggregates:
            raise nova_exc.NotFound(404, f"Aggregate {aggregate_id} could not be found.")
        del self.aggregates[aggregate_id]

    def count(self, name):
        return sum(1 for c in self.calls if c[0] == name)

