# SPDX-License-Identifier: Apache-2.0
"""A fake BMC driver and a fencing inventory on disk, for unit tests."""

import json
import os

from selfheal_actions.hosts import bmc

SECRET = "s3cr3t-Bmc-Pa55"


class FakeDriver:
    """Power that switches ``delay_reads`` reads after the request (the
    emulator applies a reset only when read, some seconds later).

    :param state: the power state at start (``on`` / ``off``).
    :param never: the state never changes (a stuck BMC).
    :param errors: BmcError reasons to raise, one per call, in order.
    """

    name = "fake"

    def __init__(self, state="on", delay_reads=2, never=False, errors=()):
        self.state = state
        self.delay_reads = delay_reads
        self.never = never
        self.errors = list(errors)
        self.pending = None
        self.calls = []

    def _maybe_fail(self):
        if self.errors:
            reason = self.errors.pop(0)
            if reason:
                raise bmc.BmcError(reason, f"{reason} (password {SECRET} redacted?)"
                                   .replace(SECRET, "***"))

    def power_state(self):
        self.calls.append("state")
        self._maybe_fail()
        if self.pending:
            target, reads = self.pending
            if reads <= 1:
                self.state, self.pending = target, None
            else:
                self.pending = (target, reads - 1)
        return self.state

    def _request(self, target):
        self.calls.append(target)
        self._maybe_fail()
        if not self.never:
            self.pending = (target, self.delay_reads)

    def power_off(self):
        self._request("off")

    def power_on(self):
        self._request("on")


class Clock:
    """A clock that sleep() moves: tests of timeouts take no time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def write_inventory(tmp_path, monkeypatch, hosts, mode=0o600, defaults=None, inline=False):
    """Write a cloud config naming an inventory (or holding it inline), point
    $SELFHEAL_CLOUD_CONFIG at it; return the inventory's path."""
    inventory = {"hosts": hosts}
    if defaults:
        inventory["defaults"] = defaults
    config = tmp_path / "cloud.yaml"
    if inline:
        config.write_text(json.dumps({"endpoints": {"compute": "http://nova"},
                                      "fencing": inventory}))
        os.chmod(config, mode)
        path = config
    else:
        path = tmp_path / "fencing.yaml"
        path.write_text(json.dumps(inventory))
        os.chmod(path, mode)
        config.write_text(json.dumps({"endpoints": {"compute": "http://nova"},
                                      "fencing_inventory": str(path)}))
    monkeypatch.setenv("SELFHEAL_CLOUD_CONFIG", str(config))
    return path
