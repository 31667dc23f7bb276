# SPDX-License-Identifier: Apache-2.0
"""Checks of action inputs: a clear error before anything is touched.

Mistral passes workflow values through JSON, so an input may arrive as a
string where a number was meant (``"10"``), or as ``null``. These helpers accept
what a person would mean and reject the rest with a message naming the input,
echoing at most a short part of the value. The accepted forms, on purpose:

* booleans: ``true`` / ``false``, or those words as strings (any case);
  nothing else (``"yes"``, ``1``, ``"nope"`` are refused, never read as false);
* numbers: a number or a numeric string, finite (NaN and infinities are
  refused: NaN passes every bound check and would switch a guard off),
  within the input's bounds;
* text: a non-empty string of at most 255 characters (Nova's limit for host
  and service names).
"""

import math

from selfheal_actions.common.results import InvalidInput
from selfheal_actions.common.results import shown

#: the longest text input accepted (Nova's host and service names)
MAX_TEXT = 255


def text(name, value, required=True, max_length=MAX_TEXT):
    """A non-empty string (stripped); None when optional and absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"input '{name}' is required and must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"input '{name}' must be a string, got {type(value).__name__} "
                           f"{shown(value)}")
    if len(value.strip()) > max_length:
        raise InvalidInput(f"input '{name}' must be at most {max_length} characters, got "
                           f"{shown(value, 40)}")
    return value.strip()


def boolean(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"input '{name}' must be true or false, got {shown(value)}")


def number(name, value, minimum=None, maximum=None, integer=False):
    """A finite int/float (or a numeric string) within [minimum, maximum]."""
    if isinstance(value, bool):
        raise InvalidInput(f"input '{name}' must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput(f"input '{name}' must be a number, got {shown(value)}") from None
    if not isinstance(value, (int, float)):
        raise InvalidInput(f"input '{name}' must be a number, got {type(value).__name__} "
                           f"{shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"input '{name}' must be a finite number, got {value!r}")
    if integer:
        if value != int(value):
            raise InvalidInput(f"input '{name}' must be a whole number, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidInput(f"input '{name}' must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"input '{name}' must be at most {maximum}, got {value!r}")
    return value


def text_list(name, value):
    """A list of non-empty strings; None or "" mean an empty list."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"input '{name}' must be a list of non-empty strings, got "
                           f"{shown(value)}")
    return [v.strip() for v in value]


def microversion(name, value):
    """None (negotiate with the server) or a '2.N' string."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        major, dot, minor = value.partition(".")
        if major == "2" and dot and minor.isdigit():
            return value
    raise InvalidInput(f"input '{name}' must look like '2.60' (or be empty to negotiate), "
                       f"got {shown(value)}")
