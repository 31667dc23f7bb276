# SPDX-License-Identifier: Apache-2.0
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

Every action can also end with ``forbidden``: a service answered HTTP 403
because the caller's roles lack a permission. ``details.missing_permission``
names the policy rule when the service said which, ``details.user`` and
``details.project`` who the caller was. The action stops at the first
refusal and ``changes`` lists what it had changed before (with the default
policies, nothing: a caller who may not fence or evacuate may not even list
the compute services, the first call each action makes).
"""

import logging
import re

from mistral_lib import actions

LOG = logging.getLogger(__name__)
#: how much of an error text a message echoes
ECHO_LIMIT = 300

#: an oslo.policy rule name in a service's 403 message, e.g.
#: "Policy doesn't allow os_compute_api:os-services:list to be performed."
_POLICY_RULE = re.compile(r"\b([a-z][\w-]*(?::[\w.-]*\w)+)")


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


def http_status(error):
    """The HTTP status of a client library's error (novaclient, heatclient,
    keystoneauth), or None when it is not an HTTP answer."""
    for attribute in ("http_status", "code", "status_code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def forbidden(error, changes=()):
    """The ``forbidden`` failure for a service's HTTP 403 answer.

    :param error: the client library's exception.
    :param changes: what the action had changed before the refusal.
    """
    text = getattr(error, "message", None) or str(error)
    found = _POLICY_RULE.search(text)
    rule = found.group(1) if found else None
    what = (f"the permission {rule}" if rule else "a permission this call needs")
    done = ("Nothing was changed." if not changes else
            f"{len(changes)} change(s) were made before the refusal; see changes.")
    return ActionFailure(
        "forbidden",
        f"the caller lacks {what} (HTTP 403: {text.strip()}). {done} Run the workflow as a "
        "user whose roles grant it (with the default policies, the admin role), or from a "
        "trust of such a user.", changes=changes, missing_permission=rule, http_status=403)


def raise_if_forbidden(error, changes=()):
    """Raise :func:`forbidden` when ``error`` is an HTTP 403; else return.

    For handlers that turn other refusals into per-resource outcomes: a
    missing permission is no reason to retry elsewhere.
    """
    if http_status(error) == 403:
        raise forbidden(error, changes) from None


def shown(value, limit=80):
    """``repr(value)`` cut to ``limit`` characters: what a message may echo
    of an input (a 10 kB host name is not repeated whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _is_service_error(error):
    module = type(error).__module__.split(".")[0]
    return http_status(error) is not None or module in (
        "keystoneauth1", "novaclient", "heatclient", "requests", "urllib3")


def unexpected(error, changes=()):
    """The failure for an error no step expected: ``api_error`` when a
    service failed (an HTTP answer, a timeout, a reset connection),
    ``internal_error`` otherwise (a bug: the traceback is in the executor's
    log). Never a traceback in the result; ``changes`` says what was done."""
    text = f"{type(error).__name__}: {error}"[:ECHO_LIMIT]
    done = (f"{len(changes)} change(s) were made before it (see changes)" if changes
            else "nothing was changed")
    if _is_service_error(error):
        return ActionFailure(
            "api_error", f"a service call failed: {text}; {done}. Check the service, then "
            "run the workflow again: it resumes where this run stopped.",
            changes=list(changes), http_status=http_status(error))
    return ActionFailure(
        "internal_error", f"unexpected error: {text}; {done}. This is a bug in selfheal: "
        "the executor's log has the traceback; please report it.", changes=list(changes))


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
        raw = getattr(self, "dry_run", False)
        # as the action reads it (inputs.boolean): true, or the string "true"
        dry_run = raw is True or (isinstance(raw, str) and raw.strip().lower() == "true")
        #: the changes made so far; an action that changes several things
        #: points this at its own list, so that any failure reports them
        self.changes_so_far = []
        try:
            data = self.execute(context)
        except ActionFailure as failure:
            if not failure.changes and self.changes_so_far:
                failure.changes = list(self.changes_so_far)
            return self._error(failure, dry_run, context)
        except Exception as error:
            if http_status(error) == 403:
                return self._error(forbidden(error, self.changes_so_far), dry_run, context)
            LOG.exception("%s failed unexpectedly", self.action_name)
            return self._error(unexpected(error, self.changes_so_far), dry_run, context)
        changes = data.pop("changes", [])
        envelope = {
            "action": self.action_name,
            "dry_run": dry_run,
            "changed": bool(changes) and not dry_run,
            "changes": changes,
        }
        envelope.update(data)
        return actions.Result(data=envelope)

    def _error(self, failure, dry_run, context):
        details = dict(failure.details)
        if failure.reason == "forbidden":
            security = getattr(context, "security", None)
            details.setdefault("user", getattr(security, "user_name", None))
            details.setdefault("project", getattr(security, "project_name", None))
        return actions.Result(error={
            "action": self.action_name,
            "reason": failure.reason,
            "message": failure.message,
            "dry_run": dry_run,
            "changed": bool(failure.changes) and not dry_run,
            "changes": failure.changes,
            "details": details,
        })

    def execute(self, context):
        raise NotImplementedError

    def test(self, context):
        """Mistral's test mode: run as a dry run."""
        self.dry_run = True
        return self.run(context)
