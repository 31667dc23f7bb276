# SPDX-License-Identifier: Apache-2.0
"""The selfheal lab: genuine OpenStack services run locally for tests and demos.

Nothing in :mod:`selfheal_actions` imports this package: the lab is a
development and test tool, not part of what Mistral loads. Every module here
uses only the standard library, because it runs in the operator's or the test
runner's Python; each service runs in its own virtual environment.
"""
