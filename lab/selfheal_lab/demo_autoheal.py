# SPDX-License-Identifier: Apache-2.0
"""The autoheal demo: a member of a Heat group dies, its alarm arrives three
times through Zaqar, and selfheal replaces it exactly once.

Every line is read from the lab's Heat, Zaqar and Mistral as it happens.
"""

import time
import uuid

from selfheal_lab import autoheal_scenario
from selfheal_lab import lab
from selfheal_lab import mistral_client
from selfheal_lab import tables
from selfheal_lab import zaqar_client
from selfheal_lab.demo import Timeline

ALARMS = 3


def _watch(heal_lab, stack_id, old_members, timeline, timeout=180):
    """Print executions, stack states and replacements until all ended."""
    seen_states, seen_stack, seen_members = {}, None, dict(old_members)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = heal_lab.triggered_executions(stack_id)
        for execution in executions:
            if seen_states.get(execution["id"]) != execution["state"]:
                seen_states[execution["id"]] = execution["state"]
                timeline.say(f"execution {execution['id'][:8]} {execution['state']}")
        status = heal_lab.stack(stack_id).stack_status
        if status != seen_stack:
            seen_stack = status
            timeline.say(f"stack {status}")
        for name, physical_id in heal_lab.members(stack_id).items():
            if seen_members.get(name) != physical_id:
                timeline.say(f"member {name} is now {physical_id} "
                             f"(was {seen_members.get(name)})")
                seen_members[name] = physical_id
        if len(executions) >= ALARMS and all(
                e["state"] in mistral_client.TERMINAL_STATES for e in executions):
            return [mistral_client.get_execution(heal_lab.mistral_url, e["id"])
                    for e in executions]
        time.sleep(0.2)
    raise TimeoutError(f"the heals did not end within {timeout} s")


def run(keep_lab=False):
    """Run the autoheal demo; return 0 when the member was replaced once."""
    print("selfheal demo: a Heat group member dies and is replaced\n", flush=True)
    lab.up_autoheal()
    heal_lab = autoheal_scenario.AutohealLab()
    name = f"demo-web-{uuid.uuid4().hex[:4]}"
    print(f"\n1. Stack {name}: a ResourceGroup of 3 members, and a Zaqar queue whose "
          "subscription starts selfheal.autoheal.heal_from_alarm (as "
          "OS::Zaqar::MistralTrigger does)")
    stack_id = heal_lab.create_group(name, 3)
    queue = f"alarms-{name}"
    heal_lab.subscribe_trigger(queue, stack_id)
    before = heal_lab.members(stack_id)
    for member, physical_id in sorted(before.items()):
        print(f"   member {member}: {physical_id}")

    print(f"\n2. Member 1 dies: Aodh's event alarm reaches the queue {ALARMS} times "
          "(repeated alarms, as Aodh sends them)")
    timeline = Timeline()
    for _ in range(ALARMS):
        heal_lab.post_alarm(queue, before["1"])
    timeline.say(f"{ALARMS} alarms for {before['1']} posted to Zaqar queue {queue}")
    executions = _watch(heal_lab, stack_id, before, timeline)

    print("\n3. Result\n")
    rows = [("execution", "state", "outcome", "member", "new physical id", "seconds")]
    for execution in executions:
        result = (execution.get("output") or {}).get("result") or {}
        member = result.get("member") or {}
        rows.append((execution["id"][:8], execution["state"], result.get("outcome", "?"),
                     member.get("name", "?"), member.get("new_physical_id") or "",
                     str(result.get("seconds", ""))))
    print(tables.format_table(rows, indent="  "))
    after = heal_lab.members(stack_id)
    replaced = [m for m in before if after[m] != before[m]]
    print(f"\n  replaced: {', '.join(replaced) or 'nothing'}; "
          f"stack {heal_lab.stack(stack_id).stack_status}")

    if keep_lab:
        print(f"\nThe lab and stack {name} are still running (selfheal-lab down).")
    else:
        zaqar_client.delete_queue(queue)
        heal_lab.delete(stack_id)
        lab.down()
    ok = replaced == ["1"] and all(e["state"] == "SUCCESS" for e in executions)
    print("\nMember 1 was replaced once and verified." if ok
          else "\nHealing did not go as expected: see above.")
    return 0 if ok else 1
