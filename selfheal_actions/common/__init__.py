# SPDX-License-Identifier: Apache-2.0
"""What every flow shares: clients, the result envelope, input checks, the
markers selfheal writes in Nova, the host claim, time helpers."""
