"""The one result envelope of every selfheal action, and its failures.

A successful action returns ``Result(data=...)``::

    {"action": "selfheal.fence_host", "dry_run": false, "changed": true,
     "changes": [{"resource": "service compute-2", "change": "forced_down", ...}],
     ...action-specific keys...}

A domain failure returns ``Result(error=...)`` (the Mistral task fails and
``on-error`` / ``publish-on-error`` see it)::

    {"action": "selfheal.fence_host", "reason": "host_still_up",
     "message": "what happened and what to do", "changed": false,
     "changes": [], "details": {...}}

``reason`` is a stable, machine-readable code; every code an action can
return is listed in its docstring. Exceptions are raised only for bugs.
"""

from mistral_lib import actions


class ActionFailure(Exception):
    """A failure an operator can act on; becomes ``Result(error=...)``.

    :param reason: stable snake_case code, e.g. ``host_not_found``.
    :param message: one or two sentences: what happened and what to do.
    :param changes: what the action had already changed before failing.
    :param details: anything else worth reading (JSON-serialisable).
    """

    def __init__(self, reason, message, changes=None, **details):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.changes = list(changes or [])
        self.details = details


class InvalidInput(ActionFailure):
    """Bad input: reported before anything is read or changed."""

    def __init__(self, message, **details):
        super().__init__("invalid_input", message, **details)


def change(resource, what, **details):
    """One entry of ``changes``: which resource, what was (or would be) done."""
    entry = {"resource": resource, "change": what}
    entry.update(details)
    return entry


class SelfhealAction(actions.Action):
    """Base class: turns :class:`ActionFailure` into ``Result(error=...)``.

    Subclasses implement ``execute(context)`` returning a dict of
    action-specific keys plus ``changes`` (a list of :func:`change` entries).
    """

    #: the name under which the action is registered, for the envelope
    action_name = None

    def run(self, context):
        dry_run = bool(getattr(self, "dry_run", False))
        try:
            data = self.execute(context)
        except ActionFailure as failure:
            return actions.Result(error={
                "action": self.action_name,
                "reason": failure.reason,
                "message": failure.message,
                "dry_run": dry_run,
                "changed": bool(failure.changes) and not dry_run,
                "changes": failure.changes,
                "details": failure.details,
            })
        changes = data.pop("changes", [])
        envelope = {
            "action": self.action_name,
            "dry_run": dry_run,
            "changed": bool(changes) and not dry_run,
            "changes": changes,
        }
        envelope.update(data)
        return actions.Result(data=envelope)

    def execute(self, context):
        raise NotImplementedError

    def test(self, context):
        """Mistral's test mode: run as a dry run."""
        self.dry_run = True
        return self.run(context)
