# SPDX-License-Identifier: Apache-2.0
"""The autohealing flow of Heat-managed groups: read the alarm, mark the
dead member unhealthy, update the stack and verify the replacement."""
