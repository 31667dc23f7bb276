# SPDX-License-Identifier: Apache-2.0
"""Alarm names that the actions and the Vitrage templates share.

Defined once here; a test checks that every shipped template uses them.
"""

#: raised on a host under planned maintenance; templates stay silent for it
MAINTENANCE_ALARM = "selfheal.maintenance"
#: the Vitrage datasource that carries it (Vitrage's event API posts to it)
MAINTENANCE_ALARM_TYPE = "doctor"
