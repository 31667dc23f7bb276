# SPDX-License-Identifier: Apache-2.0
"""Custom YAQL functions for the workbooks, registered with Mistral.

Mistral loads every function of the ``mistral.expression.functions`` entry
point group into its YAQL context (the package must be installed on each
Mistral engine node). As with Mistral's own ``env()``, the first argument is
the expression context, which YAQL passes by itself::

    <% selfheal_alarm(env().get('notification')) %>
    <% selfheal_alarm_traits(env().get('notification')).state %>
    <% selfheal_heals_ahead() %>
"""

from selfheal_actions.heat import alarm_messages


def _plain(value):
    """YAQL hands over frozen dicts and tuples; give the parser plain data."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def selfheal_alarm(context, notification):
    """The Aodh event alarm in a Zaqar notification, read safely.

    :returns: the dict of :func:`selfheal_actions.heat.alarm_messages.read_alarm`:
        ``valid``, ``error`` (what is wrong, or null), ``member`` (the
        instance id from the traits), ``traits`` and the alarm's fields.
    """
    return alarm_messages.read_alarm(_plain(notification))


def selfheal_alarm_traits(context, notification):
    """``{name: value}`` of the alarm event's traits ({} when malformed)."""
    return alarm_messages.read_alarm(_plain(notification))["traits"]


def stack_of(workflow_input):
    """The stack a heal is for, from a selfheal.autoheal workflow's input."""
    workflow_input = workflow_input or {}
    for key in ("root_stack_id", "stack_id", "stack"):
        if workflow_input.get(key):
            return workflow_input[key]
    return None


def heals_ahead(me, running):
    """How many of ``running`` executions heal the same stack as ``me`` with
    the same workflow and started first (oldest first; ties by id).

    :param me: this execution (``id``, ``workflow_name``, ``input``,
        ``created_at``); :param running: the RUNNING executions, alike.
    """
    stack = stack_of(me.input)
    return sum(1 for other in running
               if other.id != me.id and other.workflow_name == me.workflow_name
               and stack_of(other.input) == stack
               and (other.created_at, other.id) < (me.created_at, me.id))


def selfheal_heals_ahead(context):
    """Running executions of this workflow for the same stack that started
    earlier (0 means it is this execution's turn).

    Heat's convergence engine lets a second stack update cancel the first
    (the stack ends UPDATE_FAILED, "Stack UPDATE cancelled"), which is how
    Heat's sample autohealing fails on repeated alarms; the workbook waits
    until this is 0, so updates of one stack never overlap. Runs inside
    Mistral's engine and reads its database, like Mistral's ``executions()``.
    """
    from mistral.db.v2 import api as db_api

    me = db_api.get_workflow_execution(context["__execution"]["id"])
    running = db_api.get_workflow_executions(state="RUNNING", workflow_name=me.workflow_name)
    return heals_ahead(me, running)
