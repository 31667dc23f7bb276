# SPDX-License-Identifier: Apache-2.0
"""Checks of action inputs: a clear error before anything is touched.

Mistral passes workflow values through JSON, so an input may arrive as a
string where a number was meant (``"10"``), or as ``null``. These helpers accept
what a person would mean and reject the rest with a message naming the input.
"""

from selfheal_actions.common.results import InvalidInput


def text(name, value, required=True):
    """A non-empty string (stripped); None when optional and absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"input '{name}' is required and must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"input '{name}' must be a string, got {type(value).__name__} {value!r}")
    return value.strip()


def boolean(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput(f"input '{name}' must be true or false, got {value!r}")


def number(name, value, minimum=None, maximum=None, integer=False):
    """An int/float (or a numeric string) within [minimum, maximum]."""
    if isinstance(value, bool):
        raise InvalidInput(f"input '{name}' must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput(f"input '{name}' must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise InvalidInput(f"input '{name}' must be a number, got {type(value).__name__} {value!r}")
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
        raise InvalidInput(f"input '{name}' must be a list of non-empty strings, got {value!r}")
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
                       f"got {value!r}")
