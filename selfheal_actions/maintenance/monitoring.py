# SPDX-License-Identifier: Apache-2.0
"""Planned maintenance of a compute host: take it out of monitoring and back.

``selfheal.disable_monitoring`` tells the monitors that the host is in
maintenance: a Prometheus Alertmanager silence of the host for the window
(when the cloud config names an Alertmanager,
:mod:`selfheal_actions.maintenance.silences`) and the Vitrage maintenance
alarm (when Vitrage is present), so that no alarm for it pages anyone or
starts healing; and it
disables its nova-compute service with the maintenance marker
(:mod:`selfheal_actions.common.markers`), which the host failure flow refuses to
touch unless forced. ``selfheal.enable_monitoring`` undoes exactly that (the
silence expired, the alarm cleared), and only on a healthy host.

What was done is recorded where it survives any restart: in the service's
disabled reason, e.g.::

    selfheal:maintenance 2026-11-22T06:00:00Z by <execution>: [vitrage; until
    2026-11-22T10:00:00Z] disk swap          (one line in Nova)

``vitrage`` says the maintenance alarm was raised in Vitrage (so enabling
clears it); without it, monitoring was not changed (Vitrage absent or not
answering) and enabling leaves Vitrage alone.
"""

import re

from novaclient import exceptions as nova_exc

from selfheal_actions.common import alarm_names
from selfheal_actions.common import clients
from selfheal_actions.common import compute
from selfheal_actions.common import inputs
from selfheal_actions.common import markers
from selfheal_actions.common import timeutil
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.common.results import raise_if_forbidden
from selfheal_actions.maintenance import silences
from selfheal_actions.maintenance import vitrage

DEFAULT_REASON = "planned maintenance"
_NOTE = re.compile(r"^\[(?P<tags>[^\]]*)\] ?(?P<text>.*)$", re.S)


def make_note(text, monitored, until=None):
    """The note of a maintenance marker: tags first (they survive truncation)."""
    tags = ([vitrage.BACKEND] if monitored else []) + ([f"until {until}"] if until else [])
    return (f"[{'; '.join(tags)}] " if tags else "") + (text or "")


def parse_note(note):
    """``{"monitored": bool, "until": str or None, "text": str}`` of a marker note."""
    found = {"monitored": False, "until": None, "text": note or ""}
    match = _NOTE.match(note or "")
    if not match:
        return found
    found["text"] = match.group("text")
    for tag in (t.strip() for t in match.group("tags").split(";")):
        if tag == vitrage.BACKEND:
            found["monitored"] = True
        elif tag.startswith("until "):
            found["until"] = tag[len("until "):]
    return found


def _until(value):
    text = inputs.text("until", value, required=False)
    if text is None:
        return None
    moment = timeutil.parse_time(text)
    if moment is None:
        raise InvalidInput(f"input 'until' must be a UTC time like 2026-11-22T10:00:00Z, "
                           f"got {value!r}")
    return timeutil.iso(moment)


def _silence_unavailable(host, error, what):
    return ActionFailure(
        "silence_unavailable",
        f"{error.message}, so host '{host}' {what}; nothing was changed. Fix the "
        "Alertmanager settings (cloud config 'alertmanager: {url}'), or pass "
        "require_silence=false to go on without it.", host=host, silence_reason=error.reason)


def _silence(host, until, text, by, require, dry_run, changes):
    """Create or extend selfheal's Alertmanager silence of ``host`` (see
    :meth:`silences.Alertmanager.ensure`); the ``silence`` output."""
    try:
        state = silences.connect().ensure(host, until=timeutil.parse_time(until), text=text,
                                          by=by, dry_run=dry_run)
    except silences.SilencesUnavailable as error:
        if require:
            raise _silence_unavailable(host, error, "cannot be silenced") from None
        return {"backend": None, "id": None, "changed": False, "reason": error.reason,
                "message": f"{error.message}; no silence was made"}
    if state["changed"]:
        changes.append(change(f"alertmanager silences of host {host}",
                              f"silence_{state['change']}", silence_id=state["id"],
                              ends_at=state["ends_at"]))
    return state


def _unsilence(host, require, dry_run, changes):
    """Expire selfheal's silences of ``host``; the ``silence`` output."""
    try:
        state = silences.connect().end(host, dry_run=dry_run)
    except silences.SilencesUnavailable as error:
        if require and error.reason != silences.NOT_CONFIGURED:
            raise _silence_unavailable(host, error, "cannot be unsilenced") from None
        return {"backend": None, "expired": [], "changed": False, "reason": error.reason,
                "message": f"{error.message}; silences were not changed"}
    for silence_id in state["expired"]:
        changes.append(change(f"alertmanager silences of host {host}", "silence_expired",
                              silence_id=silence_id))
    return state


def _refuse_foreign(service, host, force, kind):
    """Refuse a service disabled by someone else (or fenced) unless ``force``."""
    if force:
        return
    if kind == markers.FENCED:
        raise ActionFailure(
            "host_fenced",
            f"host '{host}' is fenced after a failure ({service['disabled_reason']}), not in "
            "planned maintenance. Put it back with selfheal.host_failure.enable_host once "
            "repaired; pass force=true to treat it as maintenance anyway.", host=host)
    raise ActionFailure(
        "disabled_by_someone_else",
        f"host '{host}' was disabled by someone else (reason: "
        f"{service.get('disabled_reason')!r}); selfheal leaves it alone. Pass force=true to "
        "take it over (finishing the maintenance then enables it).", host=host)


def _unavailable(host, error, what):
    return ActionFailure(
        "monitoring_unavailable",
        f"{error.message}, so the monitor cannot be told that host '{host}' {what}; nothing "
        "was changed. Fix the Vitrage endpoint, or pass require_monitoring=false to go on "
        "without it.", host=host, monitoring_reason=error.reason)


class DisableMonitoringAction(SelfhealAction):
    """Put a host in planned maintenance: silence its monitoring, disable its service.

    With Vitrage present (python-vitrageclient and a ``rca`` endpoint), posts
    the maintenance event that raises the ``selfheal.maintenance`` alarm on
    the host, which the shipped templates use to stay silent. Then disables
    the host's nova-compute service with a ``selfheal:maintenance`` marker
    that records what was done, so ``selfheal.enable_monitoring`` undoes
    exactly that; the host failure flow refuses a host carrying it unless
    forced. Without Vitrage, the Nova part still happens and ``monitoring``
    says why it was not changed (``require_monitoring`` makes that an
    error). When the cloud config names an Alertmanager, the host's alerts
    are silenced until ``until`` (or for its ``default_seconds``): one
    silence per host, found again by its marker, so a rerun extends it
    instead of making a second (``silence``; ``require_silence`` makes a
    missing or failing Alertmanager an error). Running it again changes
    nothing.

    :param host: nova-compute service host name (string, required).
    :param reason: why, written in the disabled reason and the event.
    :param until: expected end of the maintenance (UTC time, optional).
    :param require_monitoring: fail, changing nothing, when Vitrage cannot
        be told (default false: go on with the Nova part).
    :param require_silence: fail, changing nothing, when no Alertmanager
        silence can be made (default false: go on and say why).
    :param force: take over a service disabled by someone else (or fenced).
    :param dry_run: report what would change, change nothing.
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``marker``, ``until``,
        ``previous_reason`` (a reason replaced with force), ``silence``
        (``backend``: alertmanager or null, ``id``, ``starts_at``,
        ``ends_at``, ``changed``, ``change``: created, extended or
        unchanged; ``reason`` and ``message`` when none was made:
        alertmanager_not_configured, alertmanager_unreachable,
        alertmanager_refused), ``monitoring``
        (``backend``: vitrage or null, ``in_maintenance``, ``changed``,
        ``reason`` and ``message`` when not changed: vitrage_not_installed,
        vitrage_not_configured, vitrage_unreachable), ``changes``. Error
        reasons: ``invalid_input``, ``host_not_found``,
        ``disabled_by_someone_else``, ``host_fenced``,
        ``monitoring_unavailable``, ``silence_unavailable``, ``nova_refused``,
        plus the client errors of fence_host.
    """

    action_name = "selfheal.disable_monitoring"

    def __init__(self, host, reason=DEFAULT_REASON, until=None, require_monitoring=False,
                 force=False, dry_run=False, microversion=None, require_silence=False):
        self.host = host
        self.reason = reason
        self.until = until
        self.require_monitoring = require_monitoring
        self.require_silence = require_silence
        self.force = force
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        reason = inputs.text("reason", self.reason, required=False) or DEFAULT_REASON
        until = _until(self.until)
        require = inputs.boolean("require_monitoring", self.require_monitoring)
        require_silence = inputs.boolean("require_silence", self.require_silence)
        force = inputs.boolean("force", self.force)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        nova = compute.NovaApi(clients.nova(context, version))
        service = compute.find_service(nova.compute_services(), host)
        disabled = service["status"] == "disabled"
        current = markers.parse(service.get("disabled_reason")) if disabled else None
        ours = bool(current) and current["kind"] == markers.MAINTENANCE
        if disabled and not ours:
            _refuse_foreign(service, host, force, current and current["kind"])
        note = parse_note(current["note"]) if ours else {"monitored": False, "until": None,
                                                         "text": reason}
        by = clients.execution_id(context)
        changes = self.changes_so_far = []
        silence = _silence(host, until or note["until"], note["text"], by, require_silence,
                           dry_run, changes)
        state = {"backend": vitrage.BACKEND if note["monitored"] else None,
                 "in_maintenance": note["monitored"], "changed": False}
        if not note["monitored"]:
            try:
                monitor = vitrage.connect(context)
                if not dry_run:
                    monitor.set_maintenance(host, True, reason=note["text"],
                                            until=until or note["until"], by=by)
            except vitrage.MonitoringUnavailable as error:
                if require:
                    raise _unavailable(host, error, "is in maintenance") from None
                state.update(reason=error.reason, message=f"{error.message}; monitoring was "
                             "not changed (the Nova part was done)")
            else:
                state.update(backend=monitor.backend, in_maintenance=not dry_run, changed=True)
                changes.append(change(f"vitrage alarms of host {host}",
                                      "maintenance_alarm_raised",
                                      alarm=alarm_names.MAINTENANCE_ALARM))

        monitored = note["monitored"] or state["changed"]
        text = make_note(note["text"], monitored, until or note["until"])
        if ours:
            marker = markers.make(markers.MAINTENANCE, current["by"], text, at=current["at"])
        else:
            marker = markers.make(markers.MAINTENANCE, by, text)
        resource = f"nova-compute service on {host}"
        result = {"host": host, "service_id": service["id"], "until": until or note["until"],
                  "monitoring": state, "silence": silence, "marker": marker}
        if disabled and not ours:
            result["previous_reason"] = service.get("disabled_reason")
        if marker != service.get("disabled_reason"):
            if not dry_run:
                try:
                    nova.disable(service["id"], marker)
                except nova_exc.ClientException as error:
                    raise_if_forbidden(error, changes)
                    raise ActionFailure(
                        "nova_refused", f"Nova refused to disable '{host}': "
                        f"{compute.client_error(error)[1]}", changes=changes,
                        host=host) from None
            changes.append(change(resource, "marker_updated" if ours else "disabled",
                                  disabled_reason=marker))
        result["changes"] = changes
        return result


class EnableMonitoringAction(SelfhealAction):
    """End a host's planned maintenance: enable its service, restore its monitoring.

    Only on a healthy host: its nova-compute service must be up (reporting)
    and not forced down; otherwise nothing changes (clearing the
    maintenance alarm while a fault is still present would make Vitrage
    start healing at once). Undoes what ``selfheal.disable_monitoring``
    recorded in the service's marker: clears the maintenance alarm in
    Vitrage if it raised it, expires selfheal's Alertmanager silences of the
    host (found by their marker; an operator's own are left), then enables
    the service. Running it on an enabled host changes nothing (but for a
    silence of selfheal still left, which it expires).

    :param host: nova-compute service host name (string, required).
    :param require_monitoring: fail, changing nothing, when the maintenance
        alarm selfheal raised cannot be cleared (default false: enable the
        service and report it).
    :param force: also end a maintenance that selfheal did not start (a
        service disabled by someone else, or fenced).
    :param dry_run: report what would change, change nothing (the health
        check still runs).
    :param microversion: compute API microversion; empty negotiates.
    :returns: ``host``, ``service_id``, ``enabled``, ``monitoring``
        (``backend``, ``changed``, ``in_maintenance``, and ``reason`` /
        ``message`` when not changed), ``silence`` (``backend``,
        ``expired``: the silence ids, ``changed``; ``reason`` and ``message``
        when Alertmanager could not be used), ``changes``. Error reasons:
        ``invalid_input``, ``host_not_found``, ``host_not_healthy``,
        ``disabled_by_someone_else``, ``host_fenced``,
        ``monitoring_unavailable``, ``silence_unavailable`` (with
        ``require_silence`` only, never for an Alertmanager not configured),
        ``nova_refused``, plus the client errors of fence_host.
    """

    action_name = "selfheal.enable_monitoring"

    def __init__(self, host, require_monitoring=False, force=False, dry_run=False,
                 microversion=None, require_silence=False):
        self.host = host
        self.require_monitoring = require_monitoring
        self.require_silence = require_silence
        self.force = force
        self.dry_run = dry_run
        self.microversion = microversion

    def execute(self, context):
        host = inputs.text("host", self.host)
        require = inputs.boolean("require_monitoring", self.require_monitoring)
        require_silence = inputs.boolean("require_silence", self.require_silence)
        force = inputs.boolean("force", self.force)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        version = inputs.microversion("microversion", self.microversion)

        nova = compute.NovaApi(clients.nova(context, version))
        service = compute.find_service(nova.compute_services(), host)
        result = {"host": host, "service_id": service["id"], "enabled": True,
                  "monitoring": {"backend": None, "changed": False, "in_maintenance": False},
                  "changes": []}
        if service["status"] != "disabled":  # a silence left by a run that stopped midway
            result["silence"] = _unsilence(host, require_silence, dry_run, result["changes"])
            return result
        current = markers.parse(service.get("disabled_reason"))
        ours = bool(current) and current["kind"] == markers.MAINTENANCE
        if not ours:
            _refuse_foreign(service, host, force, current and current["kind"])
        if service.get("forced_down") or service["state"] != "up":
            why = "forced down" if service.get("forced_down") else "not reporting (down)"
            raise ActionFailure(
                "host_not_healthy",
                f"nova-compute on '{host}' is {why}: the host is not healthy, so its "
                "maintenance is not finished and nothing was changed (ending it now would "
                "let a fault alarm start healing at once). Finish the work, start "
                "nova-compute, then run this again.", host=host, state=service["state"],
                forced_down=bool(service.get("forced_down")))
        note = parse_note(current["note"] if current else None)
        state = result["monitoring"]
        if note["monitored"]:
            state.update(backend=vitrage.BACKEND, in_maintenance=True)
            try:
                monitor = vitrage.connect(context)
                if not dry_run:
                    monitor.set_maintenance(host, False, by=clients.execution_id(context))
            except vitrage.MonitoringUnavailable as error:
                if require:
                    raise _unavailable(host, error, "is back") from None
                state.update(reason=error.reason, message=(
                    f"{error.message}; the maintenance alarm may still be raised in Vitrage: "
                    f"clear it with vitrage event post --type {alarm_names.MAINTENANCE_ALARM} "
                    f"--details '{{\"hostname\": \"{host}\", \"status\": \"up\"}}'"))
            else:
                state.update(changed=True, in_maintenance=dry_run)
                result["changes"].append(change(f"vitrage alarms of host {host}",
                                                "maintenance_alarm_cleared",
                                                alarm=alarm_names.MAINTENANCE_ALARM))
        else:
            state.update(reason="not_raised_by_selfheal",
                         message="selfheal did not raise a maintenance alarm for this host; "
                         "monitoring was not changed")
        result["silence"] = _unsilence(host, require_silence, dry_run, result["changes"])
        if not dry_run:
            try:
                nova.enable(service["id"])
            except nova_exc.ClientException as error:
                raise_if_forbidden(error, result["changes"])
                raise ActionFailure(
                    "nova_refused", f"Nova refused to enable '{host}': "
                    f"{compute.client_error(error)[1]}", changes=result["changes"],
                    host=host) from None
        result["changes"].append(change(f"nova-compute service on {host}", "enabled"))
        result["enabled"] = not dry_run
        return result
