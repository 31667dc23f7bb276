# SPDX-License-Identifier: Apache-2.0
"""Mistral's environments API in memory: the store of the stack claim
(``selfheal_actions.heat.stack_claim``). Names are unique, as Mistral's
database makes them (a second create is HTTP 409, here False)."""

import threading

from selfheal_actions.heat import stack_claim


class FakeEnvironments:
    """Mistral's environments: create is atomic on the name (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.envs = {}
        self.calls = []

    def create_environment(self, name, variables, description=""):
        with self.lock:
            self.calls.append(("create", name))
            if name in self.envs:
                return False
            self.envs[name] = {"name": name, "variables": dict(variables),
                               "description": description}
            return True

    def get_environment(self, name):
        with self.lock:
            found = self.envs.get(name)
            return None if found is None else {"name": name,
                                               "variables": dict(found["variables"])}

    def update_environment(self, name, variables):
        with self.lock:
            self.calls.append(("update", name))
            if name not in self.envs:
                raise stack_claim.ClaimGone(name)
            self.envs[name]["variables"] = dict(variables)

    def delete_environment(self, name):
        with self.lock:
            self.calls.append(("delete", name))
            return self.envs.pop(name, None) is not None
