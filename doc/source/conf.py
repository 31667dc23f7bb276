# SPDX-License-Identifier: Apache-2.0
"""Sphinx configuration of the selfheal docs (``tox -e docs``)."""

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "selfheal"
author = "selfheal developers"
copyright = "selfheal developers, Apache License 2.0"

extensions = ["selfheal_docs"]

# The project checkout the pages are generated from (workbooks/, templates,
# the actions' source); the tests point it at the tree they build.
selfheal_root = os.environ.get("SELFHEAL_DOCS_ROOT") or str(HERE.parent.parent)
selfheal_advice = "troubleshooting_advice.yaml"

root_doc = "index"
exclude_patterns = ["_build", "**/*.tmp"]
templates_path = []
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["selfheal.css"]
html_title = "selfheal"
html_theme_options = {"page_width": "1100px", "sidebar_width": "230px"}
pygments_style = "sphinx"
highlight_language = "none"
nitpicky = True
