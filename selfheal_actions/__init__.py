# SPDX-License-Identifier: Apache-2.0
"""selfheal: Mistral actions that heal an OpenStack cloud by themselves.

Every action here is a mistral-lib action registered under the
``mistral.actions`` entry point group as ``selfheal.<verb_object>``; they are
loaded by Mistral's executors. One subpackage per flow, and what the flows
share in one place:

* :mod:`selfheal_actions.hosts`: host failure (fence, evacuate and verify,
  enable the host again);
* :mod:`selfheal_actions.maintenance`: planned maintenance (monitoring off and
  on, drain);
* :mod:`selfheal_actions.heat`: Heat autohealing (mark unhealthy, the YAQL
  functions that read alarms);
* :mod:`selfheal_actions.moves`: the move engine evacuation and drain share;
* :mod:`selfheal_actions.common`: clients, result envelope, inputs, markers.

Nothing here imports the lab or the operator tools (a test keeps it so).
"""
