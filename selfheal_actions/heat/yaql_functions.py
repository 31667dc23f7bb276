# SPDX-License-Identifier: Apache-2.0
"""Custom YAQL functions for the workbooks, registered with Mistral.

Mistral loads every function of the ``mistral.expression.functions`` entry
point group into its YAQL context (the package must be installed on each
Mistral engine node). As with Mistral's own ``env()``, the first argument is
the expression context, which YAQL passes by itself::

    <% selfheal_alarm(env().get('notification')) %>
    <% selfheal_alarm_traits(env().get('notification')).state %>
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
