# SPDX-License-Identifier: Apache-2.0
"""Markers that selfheal writes in a nova-compute service's disabled reason.

The disabled reason is the one place in Nova that every operator sees
(``openstack compute service list --long``) and that survives restarts of the
healing system, so it records who took a host out and why::

    selfheal:fenced 2026-11-22T03:04:05Z by <execution id>: NIC down
    selfheal:maintenance 2026-11-22T03:04:05Z by <execution id>: disk swap

The host failure flow refuses a host carrying the maintenance marker unless
forced; re-enabling refuses a host disabled by someone else. When selfheal
takes over a service an operator had disabled ("RMA 4711, do not enable"),
the operator's reason is kept whole at the end of the marker::

    selfheal:fenced 2026-11-22T03:04:05Z by <execution id>: NIC down || before: RMA 4711

so that re-enabling after the repair puts it back instead of enabling.
"""

import re

from selfheal_actions.common import timeutil

FENCED = "fenced"
MAINTENANCE = "maintenance"

#: Nova keeps at most this many characters of a disabled reason
MAX_REASON = 255
BEFORE = " || before: "

_PATTERN = re.compile(
    r"^selfheal:(?P<kind>[a-z_]+) (?P<at>\S+) by (?P<by>\S+)(?:: (?P<note>.*?))?"
    r"(?: \|\| before: (?P<before>.*))?$", re.S)


def make(kind, by, note=None, at=None, before=None):
    """Return a marker string of ``kind`` written by ``by`` (an execution id).

    :param note: why (cut first when the marker would exceed Nova's 255).
    :param before: the disabled reason an operator had set, kept whole.
    """
    at = (at or timeutil.utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"selfheal:{kind} {at} by {by or 'manual'}"
    tail = f"{BEFORE}{before}" if before else ""
    room = MAX_REASON - len(text) - len(tail) - 2
    if note and room > 0:
        text = f"{text}: {note[:room]}"
    return (text + tail)[:MAX_REASON]


def parse(disabled_reason):
    """Return ``{"kind", "at" (datetime or None), "by", "note", "before"}`` or
    None for a reason selfheal did not write."""
    match = _PATTERN.match(disabled_reason or "")
    if not match:
        return None
    found = match.groupdict()
    found["at"] = timeutil.parse_time(found["at"])
    return found


def kind_of(disabled_reason):
    """``fenced``, ``maintenance``, or None for a reason not written by us."""
    found = parse(disabled_reason)
    return found["kind"] if found else None
