# SPDX-License-Identifier: Apache-2.0
import pytest

from selfheal_actions.common import clients
from selfheal_actions.common import compute


@pytest.fixture
def use_fake(monkeypatch):
    """Make the actions talk to a FakeNova instead of a real client."""

    def install(fake):
        monkeypatch.setattr(clients, "nova", lambda context, microversion=None: fake)
        monkeypatch.setattr(compute, "NovaApi", lambda client: client)
        return fake

    return install
