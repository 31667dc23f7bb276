# SPDX-License-Identifier: Apache-2.0
"""The lab's own command: ``selfheal-lab up|down|status|demo``."""

import sys
import types

import pytest

import selfheal_lab
from selfheal_lab import cli
from selfheal_lab import lab


def test_demo_runs_the_chosen_scenario(monkeypatch):
    ran = []
    for module in ("demo", "demo_autoheal"):
        fake = types.ModuleType(f"selfheal_lab.{module}")
        fake.run = lambda keep_lab, module=module: ran.append((module, keep_lab)) or 0
        monkeypatch.setitem(sys.modules, f"selfheal_lab.{module}", fake)
        monkeypatch.setattr(selfheal_lab, module, fake, raising=False)
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "autoheal", "--keep-lab"]) == 0
    assert ran == [("demo", False), ("demo_autoheal", True)]


def test_up_starts_each_service_named(monkeypatch, capsys):
    calls = []

    def fake(name):
        def start(*args, **kwargs):
            calls.append(name)
            return {"url": f"http://{name}", "orchestration_url": "h", "messaging_url": "z"}
        return start

    for name in ("heat", "zaqar", "vitrage"):
        monkeypatch.setattr(getattr(lab, name), "up", fake(name))
    monkeypatch.setattr(lab, "up", lambda **kw: calls.append("core") or {
        "nova": {"compute_url": "n"}, "mistral": {"url": "m"}, "cloud_config": "c"})
    monkeypatch.setattr(lab, "write_cloud_config", lambda nova: calls.append("config"))
    assert cli.main(["up", "--with", "heat", "vitrage"]) == 0
    assert calls == ["heat", "zaqar", "core", "vitrage", "config"]
    assert '"vitrage": "http://vitrage"' in capsys.readouterr().out


def test_an_unknown_service_is_refused_before_anything_starts(monkeypatch):
    monkeypatch.setattr(lab, "up", lambda **kw: pytest.fail("started"))
    with pytest.raises(ValueError, match="unknown lab service"):
        lab.up_with(["nova-network"])
    with pytest.raises(SystemExit):
        cli.main(["up", "--with", "nova-network"])


def test_up_with_bmc_tls_asks_for_https_and_shows_the_ca(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(lab, "up", lambda **kw: {
        "nova": {"compute_url": "n"}, "mistral": {"url": "m"}, "cloud_config": "c"})
    monkeypatch.setattr(lab, "up_bmc", lambda nova, tls=None: seen.update(tls=tls) or {
        "redfish_url": "https://127.0.0.1:1", "inventory": "i", "ca_bundle": "/lab/ca.pem"})
    assert cli.main(["up", "--with", "bmc", "--bmc-tls"]) == 0
    assert seen == {"tls": True}
    assert '"redfish_ca_bundle": "/lab/ca.pem"' in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs --with bmc"):
        cli.main(["up", "--bmc-tls"])
