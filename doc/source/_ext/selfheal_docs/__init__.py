# SPDX-License-Identifier: Apache-2.0
"""Sphinx extension: the selfheal reference pages, generated at build time.

Before Sphinx reads the sources, it writes ``generated/`` under the source
folder (not kept in git): one page per workbook in ``workbooks/`` with an
SVG diagram of each workflow's task graph (:mod:`selfheal_docs.graph`), the
actions' parameters and failure reasons (:mod:`selfheal_docs.actions`), the
Vitrage and Heat template pages, the failure reasons for troubleshooting,
and the benchmark results. Files are rewritten only when their text changes,
and files no longer generated are removed, so the docs never drift from the
YAML and the code.

Configuration (``conf.py``): ``selfheal_root``, the project checkout
(default: two levels above the source folder); ``selfheal_advice``, a YAML
file of hand-written advice per failure reason.
"""

import pathlib

import yaml
from sphinx.util import logging

from selfheal_docs import pages

GENERATED = "generated"
logger = logging.getLogger(__name__)


def _write_tree(out_dir, files):
    out_dir.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_text() == text:
            continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    for path in sorted(out_dir.rglob("*"), reverse=True):
        rel = path.relative_to(out_dir).as_posix()
        if path.is_file() and rel not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def generate(app):
    srcdir = pathlib.Path(app.srcdir)
    root = pathlib.Path(app.config.selfheal_root or srcdir.parent.parent).resolve()
    advice = {}
    if app.config.selfheal_advice:
        advice_path = srcdir / app.config.selfheal_advice
        advice = yaml.safe_load(advice_path.read_text()) or {}
    files = pages.generate(root, srcdir / GENERATED, advice,
                           warn=lambda message: logger.warning(message))
    _write_tree(srcdir / GENERATED, files)
    logger.info(f"selfheal_docs: {len(files)} generated files from {root}")


def setup(app):
    app.add_config_value("selfheal_root", None, "env")
    app.add_config_value("selfheal_advice", None, "env")
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
