# SPDX-License-Identifier: Apache-2.0
"""Cron triggers fire in the lab's embedded Mistral (the periodic service
runs in its one process) with a 6-field pattern, seconds last: what a
periodic watch workflow relies on. ``cron_fires`` is shared with the
distributed Mistral's test (``test_distributed.py``)."""

import datetime
import time
import uuid

from selfheal_lab import mistral_client

EVERY_5_S = "* * * * * */5"  # croniter: the sixth field is the seconds


def _started(execution):
    return datetime.datetime.fromisoformat(execution["created_at"])


def cron_fires(url, runs=2, timeout=30.0):
    """Make a one-task workflow and a trigger firing it every 5 s for
    ``runs`` runs; return the executions it started (removed afterwards)."""
    workflow = f"test_cron_{uuid.uuid4().hex[:8]}"
    trigger = f"{workflow}_every_5s"
    mistral_client.create_workflows(url, f"""
version: '2.0'
{workflow}:
  input:
    - origin
  tasks:
    tick:
      action: std.echo output=<% $.origin %>
""")
    try:
        created = mistral_client.create_cron_trigger(
            url, trigger, workflow, EVERY_5_S, workflow_input={"origin": "cron"},
            remaining_executions=runs)
        assert created["pattern"] == EVERY_5_S
        deadline = time.monotonic() + timeout
        while True:
            done = [e for e in mistral_client.list_executions(url, workflow_name=workflow)
                    if e["state"] in mistral_client.TERMINAL_STATES]
            if len(done) >= runs or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return sorted(done, key=_started)
    finally:
        mistral_client.delete_cron_trigger(url, trigger)
        for execution in mistral_client.list_executions(url, workflow_name=workflow):
            mistral_client._request("DELETE", f"{url}/executions/{execution['id']}")
        mistral_client.delete_workflow(url, workflow)


def check(executions, runs=2):
    assert len(executions) == runs, executions
    assert all(e["state"] == "SUCCESS" for e in executions), executions
    assert all(e["input"] == {"origin": "cron"} for e in executions)
    # every 5 s, not every second of every 5th minute (seconds first) nor a
    # minute apart (a 5-field reading); triggers may fire up to ~2 s early
    gap = (_started(executions[1]) - _started(executions[0])).total_seconds()
    assert 2.0 <= gap <= 8.0, gap


def test_a_six_field_cron_trigger_fires_every_5_s_in_the_embedded_mistral(lab_info):
    check(cron_fires(lab_info["mistral"]["url"]))
