# SPDX-License-Identifier: Apache-2.0
"""Out-of-band power: switch a compute host off (or on) through its BMC and
confirm it, the fence Nova asks for before an evacuation.

The BMC of each host comes from the fencing inventory
(:mod:`selfheal_actions.hosts.inventory`) on the executor; the drivers are in
:mod:`selfheal_actions.hosts.bmc`. :func:`switch` is the one loop both the
power actions and the host failure flow use: read the state (already there:
success, no change), send the reset, poll until the BMC reports the target
state, for at most ``timeout`` seconds per attempt and ``attempts`` attempts.
A refused login is not retried (a locked-out account helps nobody), nor is
a certificate that cannot be verified (retrying will not change it).

Reasons: ``no_fencing_entry``, ``bmc_unreachable``, ``bmc_tls_error``,
``bmc_auth_failed``, ``bmc_error``, ``power_off_not_confirmed``, ``power_on_not_confirmed``,
``secret_unavailable``, ``configuration_error``, ``invalid_input``.
"""

import logging
import time

from selfheal_actions.common import inputs
from selfheal_actions.common.results import ActionFailure
from selfheal_actions.common.results import SelfhealAction
from selfheal_actions.common.results import change
from selfheal_actions.hosts import bmc
from selfheal_actions.hosts import inventory

LOG = logging.getLogger(__name__)
#: how the power loop waits and tells time (tests replace them)
SLEEP, CLOCK = time.sleep, time.monotonic

#: what an operator can do, per reason, after a failed power-off
ADVICE = {
    "bmc_unreachable": "Check the BMC's network and address, then run the workflow again; or "
                       "power the host off by hand and rerun with fencing=nova_only.",
    "bmc_tls_error": "Give the CA bundle that signed the BMC's certificate in the host's "
                     "fencing inventory entry (verify: /path/ca.pem, on the Mistral "
                     "executors), then run again; or power the host off by hand and rerun "
                     "with fencing=nova_only.",
    "bmc_auth_failed": "Fix the BMC credentials in the fencing inventory (on the Mistral "
                       "executors), then run again; or power the host off by hand and rerun "
                       "with fencing=nova_only.",
    "bmc_error": "Check the BMC (the details have its answer), then run again; or power the "
                 "host off by hand and rerun with fencing=nova_only.",
    "power_off_not_confirmed": "The host may still be running: check it at the BMC or in "
                               "the rack, power it off by hand and rerun with "
                               "fencing=nova_only, or fix the BMC and run again.",
}


def _target_reason(target):
    return f"power_{target}_not_confirmed"


def switch(driver, target, attempts=3, timeout=30.0, poll_interval=1.0, sleep=None,
           clock=None):
    """Bring the host behind ``driver`` to ``target`` (``"off"`` / ``"on"``)
    and confirm it.

    :returns: ``{"power_state_before", "power_state", "switched", "attempts",
        "seconds"}``; ``switched`` is False when it already was in
        ``target``; ``seconds`` runs from the first reset sent to the state
        confirmed (the fence time); each attempt: ``attempt``, ``sent``,
        ``outcome`` (``confirmed`` / ``already`` / ``not_confirmed`` / a BMC
        reason), ``seconds``, ``error``.
    :raises ActionFailure: the BMC reason of the last attempt, or
        ``power_<target>_not_confirmed``; details ``attempts``.
    """
    sleep, clock = sleep or SLEEP, clock or CLOCK
    log, before, first_sent = [], None, None
    reason, message = _target_reason(target), None
    for number in range(1, attempts + 1):
        started = clock()
        record = {"attempt": number, "sent": None, "outcome": None, "seconds": 0.0}
        log.append(record)
        try:
            state = driver.power_state()
            before = state if before is None else before
            if state == target:
                record.update(outcome="confirmed" if first_sent else "already")
                return {"power_state_before": before, "power_state": state,
                        "switched": first_sent is not None, "attempts": log,
                        "seconds": round(clock() - first_sent, 2) if first_sent else 0.0}
            try:
                (driver.power_off if target == bmc.OFF else driver.power_on)()
            except bmc.BmcError as error:
                if error.reason != "bmc_error":
                    raise
                # the BMC answered and refused the request: it will not switch
                raise bmc.BmcError(_target_reason(target), f"the BMC refused the power-"
                                   f"{target} request: {error.message}") from None
            record["sent"] = "power_" + target
            first_sent = first_sent or started
            while clock() - started < timeout:
                sleep(poll_interval)
                state = driver.power_state()
                if state == target:
                    record.update(outcome="confirmed", seconds=round(clock() - started, 2))
                    return {"power_state_before": before, "power_state": state,
                            "switched": True, "attempts": log,
                            "seconds": round(clock() - first_sent, 2)}
            record.update(outcome="not_confirmed", seconds=round(clock() - started, 2),
                          power_state=state)
            reason = _target_reason(target)
            message = (f"the BMC still reports power {state} {timeout:.0f} s after the "
                       f"power-{target} request")
        except bmc.BmcError as error:
            record.update(outcome=error.reason, error=error.message,
                          seconds=round(clock() - started, 2))
            reason, message = error.reason, error.message
            if error.reason in ("bmc_auth_failed", "bmc_tls_error"):
                break  # the same answer again: nothing to gain from retrying
            sleep(min(poll_interval * 2, 5))
    raise _failure(reason, message or reason, attempts=log, power_state_before=before)


def _failure(reason, message, **details):
    """The ActionFailure of a reason (each spelled out: the docs list them)."""
    if reason == "bmc_unreachable":
        return ActionFailure("bmc_unreachable", message, **details)
    if reason == "bmc_auth_failed":
        return ActionFailure("bmc_auth_failed", message, **details)
    if reason == "bmc_tls_error":
        return ActionFailure("bmc_tls_error", message, **details)
    if reason == "power_off_not_confirmed":
        return ActionFailure("power_off_not_confirmed", message, **details)
    if reason == "power_on_not_confirmed":
        return ActionFailure("power_on_not_confirmed", message, **details)
    return ActionFailure("bmc_error", message, **details)


def bmc_entry(host, context):
    """The resolved fencing entry of ``host``.

    :raises ActionFailure: ``no_fencing_entry`` (no inventory, or no entry
        for the host), ``configuration_error``, ``secret_unavailable``.
    """
    path, raw = inventory.lookup(host)
    if raw is None:
        where = (f"the fencing inventory {path} has no entry for '{host}'" if path else
                 "no fencing inventory is configured (fencing_inventory in the cloud config "
                 "of the Mistral executors)")
        raise ActionFailure("no_fencing_entry", f"{where}, so selfheal cannot switch its power. "
                            "Add the host's BMC to the inventory, or fence it by hand and use "
                            "fencing=nova_only.", host=host, inventory=path)
    return inventory.entry_for(host, context)


def power_options(action):
    return {"attempts": inputs.number("attempts", action.attempts, 1, 10, integer=True),
            "timeout": inputs.number("timeout", action.timeout, 1, 600),
            "poll_interval": inputs.number("poll_interval", action.poll_interval, 0.1, 30)}


def fail_with_advice(failure, host, entry, target):
    """``failure`` from :func:`switch`, its message saying which BMC and what to do."""
    shown = inventory.public(entry)
    advice = ADVICE.get(failure.reason, "") if target == bmc.OFF else (
        "Check the BMC and the host, then run again.")
    failure.message = (f"power {target} of '{host}' through {shown['driver']} BMC "
                       f"{shown['address']} failed: {failure.message}. {advice}").strip()
    failure.details.update(host=host, bmc=shown)
    return failure


class _PowerAction(SelfhealAction):
    target = None

    def __init__(self, host, attempts=3, timeout=30, poll_interval=1, dry_run=False):
        self.host = host
        self.attempts = attempts
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.dry_run = dry_run

    def execute(self, context):
        host = inputs.text("host", self.host)
        options = power_options(self)
        dry_run = inputs.boolean("dry_run", self.dry_run)
        entry = bmc_entry(host, context)
        shown = inventory.public(entry)
        result = {"host": host, "bmc": shown,
                  "warnings": inventory.tls_warnings(entry, host)}
        resource = f"power of {host}"
        if dry_run:
            result.update(power_state=None, attempts=[], seconds=0.0, changes=[
                change(resource, f"would_power_{self.target}", **shown)],
                note=f"a real run reads the power state first and changes nothing when the "
                     f"host is already {self.target}")
            return result
        LOG.info("power %s of %s through %s BMC %s", self.target, host, shown["driver"],
                 shown["address"])
        try:
            report = switch(bmc.driver_for(entry), self.target, **options)
        except ActionFailure as failure:
            raise fail_with_advice(failure, host, entry, self.target) from None
        result.update(report)
        result["changes"] = ([change(resource, f"powered_{self.target}", **shown)]
                             if report["switched"] else [])
        return result


class PowerOffAction(_PowerAction):
    """Power a compute host off through its BMC and confirm it is Off.

    The BMC comes from the fencing inventory on the executor (never from
    an input). Already Off: success, nothing changed. Each attempt sends a
    hard power-off (Redfish ``ForceOff``, IPMI chassis off) and polls until
    the BMC reports Off; a refused login is not retried.

    :param host: the compute host (string, required).
    :param attempts: attempts (1-10, default 3).
    :param timeout: seconds per attempt to see Off (1-600, default 30).
    :param poll_interval: seconds between two reads (0.1-30, default 1).
    :param dry_run: name the BMC, change nothing.
    :returns: ``host``, ``bmc`` (driver, address, system_id or port, and
        for HTTPS ``tls_verify``: system_ca / ca_bundle / off; never a
        credential), ``power_state_before``, ``power_state``, ``switched``,
        ``attempts`` (per attempt: sent, outcome, seconds, error),
        ``seconds`` (power-off sent to Off confirmed), ``warnings`` (TLS
        verification off), ``changes``. Error reasons: ``invalid_input``,
        ``no_fencing_entry``, ``configuration_error`` (also a bad
        verify option: no BMC contacted), ``secret_unavailable``,
        ``bmc_unreachable``, ``bmc_tls_error``, ``bmc_auth_failed``,
        ``bmc_error``, ``power_off_not_confirmed``.
    """

    action_name = "selfheal.power_off"
    target = bmc.OFF


class PowerOnAction(_PowerAction):
    """Power a compute host on through its BMC and confirm it is On.

    Same inputs, results and reasons as ``selfheal.power_off`` (with
    ``power_on_not_confirmed``). Already On: success, nothing changed.

    :param host: the compute host (string, required).
    :param attempts: attempts (1-10, default 3).
    :param timeout: seconds per attempt to see On (1-600, default 30).
    :param poll_interval: seconds between two reads (0.1-30, default 1).
    :param dry_run: name the BMC, change nothing.
    :returns: as ``selfheal.power_off``.
    """

    action_name = "selfheal.power_on"
    target = bmc.ON


class PowerStatusAction(SelfhealAction):
    """Read a compute host's power state from its BMC. Changes nothing.

    :param host: the compute host (string, required).
    :returns: ``host``, ``bmc`` (driver, address, and for HTTPS
        ``tls_verify``; never a credential), ``power_state`` (on / off /
        unknown), ``warnings`` (TLS verification off). Error reasons:
        ``invalid_input``, ``no_fencing_entry``, ``configuration_error``,
        ``secret_unavailable``, ``bmc_unreachable``, ``bmc_tls_error``,
        ``bmc_auth_failed``, ``bmc_error``.
    """

    action_name = "selfheal.power_status"

    def __init__(self, host):
        self.host = host

    def execute(self, context):
        host = inputs.text("host", self.host)
        entry = bmc_entry(host, context)
        try:
            state = bmc.driver_for(entry).power_state()
        except bmc.BmcError as error:
            raise _failure(error.reason, error.message, host=host,
                           bmc=inventory.public(entry)) from None
        return {"host": host, "bmc": inventory.public(entry), "power_state": state,
                "warnings": inventory.tls_warnings(entry, host), "changes": []}


# --- the host failure flow's fence -------------------------------------------------

#: the ``fencing`` input of the host failure flow
MODES = ("auto", "power", "nova_only", "workflow")

NOVA_ONLY_WARNING = (
    "fencing=nova_only: the host was not powered off, only forced down in Nova. If it is "
    "still running (a management-network, nova-compute or message-bus failure), its "
    "instances keep writing to shared storage (Ceph RBD, NFS, iSCSI) while their evacuated "
    "copies start: every instance would run twice on the same disk. Use it only after "
    "fencing the host by hand, or without shared storage.")
NO_INVENTORY_WARNING = (
    "no fencing inventory is configured on the Mistral executor, so the host was fenced in "
    "Nova only (as fencing=nova_only). " + NOVA_ONLY_WARNING.split(": ", 1)[1])


def resolve_mode(mode, host, context):
    """What fencing the flow does for ``host``.

    ``auto`` (the default) is ``power`` when the inventory has the host;
    with an inventory that lacks it, ``no_fencing_entry`` (a cloud that
    configured power fencing does not quietly skip a host); with no inventory
    at all, ``nova_only`` with a warning (as before power fencing existed).

    :returns: ``(mode, entry, warnings)``: ``entry`` is the resolved
        inventory entry (``power``; ``workflow`` when the host has one), else None.
    :raises ActionFailure: ``invalid_input``, ``no_fencing_entry``,
        ``configuration_error``, ``secret_unavailable``.
    """
    if mode not in MODES:
        raise ActionFailure("invalid_input", f"input 'fencing' must be one of {list(MODES)}, "
                            f"got {mode!r}")
    if mode == "nova_only":
        return mode, None, [NOVA_ONLY_WARNING]
    if mode == "power":
        entry = bmc_entry(host, context)
        return mode, entry, inventory.tls_warnings(entry, host)
    path, raw = inventory.lookup(host)
    if mode == "workflow":
        entry = inventory.entry_for(host, context) if raw else None
        return mode, entry, inventory.tls_warnings(entry, host) if entry else []
    if path is None:
        return "nova_only", None, [NO_INVENTORY_WARNING]
    entry = bmc_entry(host, context)
    return "power", entry, inventory.tls_warnings(entry, host)


def plan(entry, host):
    """The dry run's power plan: driver and address, never a credential."""
    return {"bmc": inventory.public(entry), "would": "power_off",
            "note": "a real run reads the power state (already Off: no change), sends a "
                    "hard power-off and forces the host down in Nova only once the BMC "
                    "reports Off"}


def fence_off(entry, host, options, sleep=None, clock=None):
    """Power ``host`` off and confirm it (the flow's fence).

    :param options: ``attempts``, ``timeout``, ``poll_interval``.
    :returns: the :func:`switch` report plus ``bmc``, ``sent_at`` and
        ``confirmed_at`` (UTC) and ``fence_seconds`` (sent to Off confirmed).
    :raises ActionFailure: the BMC reasons, with what to do.
    """
    from selfheal_actions.common import timeutil

    shown = inventory.public(entry)
    LOG.info("fencing %s: power off through %s BMC %s", host, shown["driver"],
             shown["address"])
    sent_at = timeutil.iso(timeutil.utcnow())
    try:
        report = switch(bmc.driver_for(entry), bmc.OFF, sleep=sleep, clock=clock, **options)
    except ActionFailure as failure:
        raise fail_with_advice(failure, host, entry, bmc.OFF) from None
    report.update(bmc=shown, sent_at=sent_at if report["switched"] else None,
                  confirmed_at=timeutil.iso(timeutil.utcnow()),
                  fence_seconds=report.pop("seconds"))
    LOG.info("fencing %s: power %s confirmed (%s)", host, report["power_state"],
             "switched off" if report["switched"] else "was already off")
    return report


def confirm_off(entry, host):
    """After the operator's fencing workflow: the BMC must report Off.

    :raises ActionFailure: ``power_off_not_confirmed`` when it reports On
        or unknown; the BMC reasons when it cannot be read.
    """
    shown = inventory.public(entry)
    try:
        state = bmc.driver_for(entry).power_state()
    except bmc.BmcError as error:
        raise fail_with_advice(_failure(error.reason, error.message), host, entry,
                               bmc.OFF) from None
    if state != bmc.OFF:
        raise ActionFailure(
            "power_off_not_confirmed",
            f"the fencing workflow succeeded, but the {shown['driver']} BMC {shown['address']} "
            f"of '{host}' reports power {state}: the host may still run its instances, so "
            "nothing was forced down or evacuated. " + ADVICE["power_off_not_confirmed"],
            host=host, bmc=shown, power_state=state)
    return {"bmc": shown, "power_state": state, "checked_after": "fencing_workflow"}
