# SPDX-License-Identifier: Apache-2.0
"""The host failure flow: fence a failed compute host, evacuate its
instances and verify where each one landed, put the host back after repair."""
