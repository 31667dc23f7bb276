# SPDX-License-Identifier: Apache-2.0
"""Markers that selfheal writes in a nova-compute service's disabled reason.

The disabled reason is the one place in Nova that every operator sees
(``openstack compute service list --long``) and that survives restarts of the
healing system, so it records who took a host out and why::

    selfheal:fenced 2026-11-22T03:04:05Z by <execution id>: NIC down
    selfheal:maintenance 2026-11-22T03:04:05Z by <execution id>: disk swap

The host failure flow refuses a host carrying the maintenance marker unless
forced; re-enabling refuses a host disabled by someone else.
"""

import re

from selfheal_actions.common import timeutil

FENCED = "fenced"
MAINTENANCE = "maintenance"

_PATTERN = re.compile(
    r"^selfheal:(?P<kind>[a-z_]+) (?P<at>\S+) by (?P<by>\S+)(?:: (?P<note>.*))?$", re.S)


def make(kind, by, note=None, at=None):
    """Return a marker string of ``kind`` written by ``by`` (an execution id)."""
    at = (at or timeutil.utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"selfheal:{kind} {at} by {by or 'manual'}"
    # Nova keeps at most 255 characters of disabled_reason.
    return (f"{text}: {note}" if note else text)[:255]


def parse(disabled_reason):
    """Return ``{"kind", "at" (datetime or None), "by", "note"}`` or None."""
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
