# SPDX-License-Identifier: Apache-2.0
"""Where the shipped YAML is: workbooks, Vitrage templates and the example
Heat templates.

Installed from a wheel they live in ``<prefix>/share/selfheal/``; in a source
checkout, beside the package.
"""

import pathlib
import sys
import sysconfig

_SOURCE_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _find(kind):
    candidates = [pathlib.Path(sysconfig.get_path("data")) / "share" / "selfheal" / kind,
                  pathlib.Path(sys.prefix) / "share" / "selfheal" / kind,
                  _SOURCE_ROOT / kind]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise FileNotFoundError(f"no {kind} found in {[str(c) for c in candidates]}")


def workbooks_dir():
    return _find("workbooks")


def vitrage_templates_dir():
    return _find("vitrage_templates")


def heat_templates_dir():
    return _find("heat_templates")


def workbook_paths():
    """Every shipped workbook file, sorted."""
    return sorted(workbooks_dir().glob("*.yaml"))


def vitrage_template_paths():
    """Every shipped Vitrage template file, sorted."""
    return sorted(vitrage_templates_dir().glob("*.yaml"))
