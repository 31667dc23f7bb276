# SPDX-License-Identifier: Apache-2.0
"""The lab's services: each module starts, stops and talks to one of them."""
