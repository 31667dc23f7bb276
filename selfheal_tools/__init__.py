# SPDX-License-Identifier: Apache-2.0
"""The ``selfheal`` command for operators: validate workbooks and templates,
install the pack into a Mistral (and Vitrage). Never imported by the actions."""
