# SPDX-License-Identifier: Apache-2.0
"""The planned maintenance flow: take a host out of monitoring, drain it,
and put both back."""
