# SPDX-License-Identifier: Apache-2.0
"""The demo: a compute host dies on the lab and selfheal brings it all back.

It prints a timeline as things happen (seconds since the failure) and a
final table of every instance: where it was, where it is, its state, what
selfheal did and how long it took. Nothing in it is canned: every line is
read from the lab's Nova and Mistral.
"""

import itertools
import time

from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import scenario
from selfheal_lab import tables

WF = "selfheal.host_failure.evacuate_host"

# name, state before the failure, metadata
INSTANCES = [
    ("web-1", "active", {"HA_Enabled": "True"}),
    ("web-2", "active", {"HA_Enabled": "True"}),
    ("db-1", "active", {}),
    ("cache-1", "locked", {}),
    ("batch-1", "stopped", {}),
    ("worker-1", "paused", {}),
    ("legacy-1", "error", {}),
    ("amphora-1", "active", {"selfheal_exclude": "true"}),
]


class Timeline:
    def __init__(self):
        self.zero = time.monotonic()

    def reset(self):
        self.zero = time.monotonic()

    def say(self, message):
        print(f"  [{time.monotonic() - self.zero:+7.1f}s] {message}", flush=True)


def _fresh_host_names(cloud):
    taken = {s.host for s in cloud.nova().services.list(binary="nova-compute")}
    for n in itertools.count(1):
        names = [f"demo{n}-{x}" for x in ("compute-a", "compute-b", "compute-c")]
        if not taken & set(names):
            return names


def _describe(server):
    host = getattr(server, "OS-EXT-SRV-ATTR:host")
    return f"{host} {server.status}{' locked' if server.locked else ''}"


def _watch(cloud, execution_id, failed, ids, timeline):
    """Print task and instance progress until the execution ends."""
    names = {v: k for k, v in ids.items()}
    seen_tasks, seen_migrations = {}, {}
    fenced = False
    while True:
        for task in mistral_client.list_tasks(cloud.mistral_url, execution_id):
            if seen_tasks.get(task["name"]) != task["state"]:
                seen_tasks[task["name"]] = task["state"]
                timeline.say(f"workflow task {task['name']}: {task['state']}")
        if not fenced:
            service = cloud.service(failed)
            fenced = service.forced_down and service.status == "disabled"
            if fenced:
                timeline.say(f"{failed} fenced: nova-compute forced down and disabled "
                             f"({service.disabled_reason})")
        for migration in cloud.nova().migrations.list(source_compute=failed,
                                                      migration_type="evacuation"):
            key = (migration.id, migration.status)
            if migration.instance_uuid in names and key not in seen_migrations:
                seen_migrations[key] = True
                timeline.say(f"{names[migration.instance_uuid]}: evacuation migration "
                             f"{migration.id} {migration.status}"
                             f"{' -> ' + migration.dest_compute if migration.dest_compute else ''}")
        execution = mistral_client.get_execution(cloud.mistral_url, execution_id)
        if execution["state"] in mistral_client.TERMINAL_STATES:
            return execution
        time.sleep(0.3)


def run(keep_lab=False):
    """Run the host failure demo; return 0 when every instance was healed."""
    print("selfheal demo: a compute host fails and heals itself\n", flush=True)
    lab.up()
    cloud = scenario.LabCloud()
    failed, spare_b, spare_c = cloud.add_hosts(*_fresh_host_names(cloud))
    print(f"\n1. Booting {len(INSTANCES)} instances on {failed} (spares: {spare_b}, {spare_c})")
    ids = {}
    for name, state, metadata in INSTANCES:
        ids[name] = cloud.boot(name, failed, state=state, metadata=metadata)
    before = {name: _describe(cloud.server(i)) for name, i in ids.items()}

    print(f"\n2. {failed} fails")
    timeline = Timeline()
    cloud.fail_host(failed, wait_down=False)
    timeline.say(f"nova-compute on {failed} stopped (simulated host failure)")
    cloud.wait_services([failed], "down")
    timeline.say(f"Nova reports {failed} down")
    execution = cloud.start_workflow(WF, {"host": failed, "reason": "demo: host down"})
    timeline.say(f"mistral execution-create {WF} '{{\"host\": \"{failed}\"}}' -> "
                 f"{execution['id']}")
    execution = _watch(cloud, execution["id"], failed, ids, timeline)
    timeline.say(f"workflow {execution['state']}")

    output = execution.get("output") or {}
    evac = output.get("evacuation") or (output.get("error") or {}).get("details") or {}
    results = {i["id"]: i for i in evac.get("instances", [])}
    print("\n3. Result\n")
    rows = [("instance", "before", "after", "selfheal outcome", "attempts", "seconds")]
    for name, server_id in ids.items():
        entry = results.get(server_id, {})
        outcome = entry.get("outcome", "?")
        if entry.get("reason"):
            outcome += f" ({entry['reason']})"
        rows.append((name, before[name], _describe(cloud.server(server_id)), outcome,
                     str(entry.get("attempts", "")), str(entry.get("seconds") or "")))
    print(tables.format_table(rows, indent="  "))
    totals = evac.get("totals", {})
    print(f"\n  totals: {totals}; workflow {execution['state']} in "
          f"{evac.get('seconds', '?')} s of evacuation")

    print(f"\n4. {failed} is repaired and put back")
    cloud_start = time.monotonic()
    from selfheal_lab.services import nova as nova_box
    nova_box.start_host(failed)
    enabled = cloud.run_workflow("selfheal.host_failure.enable_host", {"host": failed})
    changes = [c["change"] for c in (enabled.get("output") or {}).get("result", {}).get(
        "changes", [])]
    print(f"  enable_host {enabled['state']} in {time.monotonic() - cloud_start:.1f}s: "
          f"{', '.join(changes) or 'nothing to change'}")

    if keep_lab:
        print("\nThe lab is still running (selfheal-lab status; selfheal-lab down).")
    else:
        lab.down()
    healed = execution["state"] == "SUCCESS"
    print("\nAll instances that should move were evacuated and verified." if healed
          else "\nHealing failed: see the table above.")
    return 0 if healed else 1
