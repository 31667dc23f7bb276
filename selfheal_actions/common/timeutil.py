# SPDX-License-Identifier: Apache-2.0
"""UTC time helpers shared by the actions (Nova speaks naive UTC)."""

import datetime


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """Parse a Nova timestamp (UTC, with or without zone or microseconds)."""
    if not text:
        return None
    text = text.replace("Z", "").split("+")[0]
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    return None
