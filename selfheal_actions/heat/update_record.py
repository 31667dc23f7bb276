# SPDX-License-Identifier: Apache-2.0
"""Whose failure is a failed stack's: the record of selfheal's own updates.

Autohealing must go on after an update of its own fails (a replacement
server Nova could not place, a timeout of a dependency): Heat accepts an
``existing=true`` update of an ``UPDATE_FAILED`` stack, and the member is
still marked. But a stack that someone else's update left failed (a broken
template, a quota) must be left alone: another update would act on the
owner's broken change. Heat does not say who started the update that failed,
so the heal that holds the stack's claim records what it started, in a
Mistral environment ``selfheal-stack-update-<stack id>`` beside the claim:

- ``updated_time``: the stack's ``updated_time`` that Heat gave the update
  (it is set when an update starts and only the next update changes it), so
  a failed stack whose ``updated_time`` is the recorded one failed in
  selfheal's update, and any other is someone else's;
- ``attempts``: how many updates selfheal has run in a row for this failure
  (1: the first; every retry adds one), which bounds the retries across
  heals too; ``execution``, ``owner``, ``started``, ``status_reason`` (of
  the last failure).

The record is written as soon as the update is seen started and deleted
when an update of selfheal completes: it exists only while a stack is
failed by, or being updated by, selfheal. Only the claim holder writes it.
"""

from selfheal_actions.common import mistral_api
from selfheal_actions.common import timeutil

PREFIX = "selfheal-stack-update-"


def record_name(stack_id):
    return (PREFIX + stack_id)[:180]


def decide(stack, record, retries):
    """What to do with a stack found in a failed state.

    :param stack: the stack dict (``status``, ``updated_time``).
    :param record: the record's variables, or None.
    :param retries: how many updates may follow a failed one of selfheal.
    :returns: ``{"decision": "retry" | "exhausted" | "not_ours", "attempts":
        updates of selfheal so far in this failure (0 when not ours)}``.
    """
    ours = (stack["status"] == "UPDATE_FAILED" and record is not None
            and record.get("updated_time") is not None
            and record.get("updated_time") == stack.get("updated_time"))
    if not ours:
        return {"decision": "not_ours", "attempts": 0}
    attempts = _whole(record.get("attempts"))
    if attempts > retries:
        return {"decision": "exhausted", "attempts": attempts}
    return {"decision": "retry", "attempts": attempts}


def _whole(value):
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def attempts_of(record):
    """The record's ``attempts`` (0 without a record; 1 when unreadable)."""
    return 0 if not record else _whole(record.get("attempts"))


class UpdateRecord:
    """The record of one stack (see the module's description).

    :param store: a :class:`~selfheal_actions.common.mistral_api.MistralApi`
        or a fake with the same environment methods.
    :param stack_id: the root stack's id.
    """

    def __init__(self, store, stack_id, stack_name=None):
        self.store = store
        self.stack_id = stack_id
        self.stack_name = stack_name
        self.name = record_name(stack_id)
        self.written = False

    def read(self):
        """The record's variables, or None."""
        found = self.store.get_environment(self.name)
        return None if found is None else dict(found.get("variables") or {})

    def write(self, updated_time, attempts, execution=None, owner=None):
        """Record the update of ours that Heat stamped ``updated_time``."""
        variables = {"stack": self.stack_id, "updated_time": updated_time,
                     "attempts": attempts, "started": timeutil.iso(timeutil.utcnow())}
        if self.stack_name:
            variables["stack_name"] = self.stack_name
        if execution:
            variables["execution"] = execution
        if owner:
            variables["owner"] = owner
        if not self.store.create_environment(
                self.name, variables,
                description="selfheal: the last stack update selfheal started"):
            try:
                self.store.update_environment(self.name, variables)
            except mistral_api.EnvironmentGone:
                self.store.create_environment(self.name, variables)
        self.written = True
        return variables

    def clear(self):
        """Forget the record (an update of ours completed)."""
        self.written = False
        return self.store.delete_environment(self.name)
