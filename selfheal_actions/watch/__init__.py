# SPDX-License-Identifier: Apache-2.0
"""The host watch: notice failed compute hosts on its own (Nova's services
and, optionally, Prometheus), behind safety gates, and start the host
failure flow for each."""
