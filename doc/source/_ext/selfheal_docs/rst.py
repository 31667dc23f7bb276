# SPDX-License-Identifier: Apache-2.0
"""Small helpers that write reStructuredText safely."""

import re

_SPECIAL = re.compile(r"([\\`*|_\[\]<>])")


def text(value):
    """Plain text with every markup character escaped."""
    escaped = _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    if escaped[:1] in "-+#:.(0123456789" and escaped:
        escaped = "\\" + escaped   # never a list, an enumeration or a comment
    return escaped


def literal(value):
    """Inline literal; falls back to escaped text if it holds double backquotes."""
    value = " ".join(str(value).split())
    if not value:
        return ""
    if "``" in value or value.startswith(" ") or value.endswith(" "):
        return text(value)
    return f"``{value}``"


def title(value, char, overline=False):
    line = char * max(len(value), 4)
    return ([line] if overline else []) + [value, line, ""]


def paragraphs(value):
    """Paragraphs of plain text (blank lines separate them), escaped."""
    out = []
    for block in re.split(r"\n\s*\n", str(value or "").strip()):
        if block.strip():
            out += [text(block), ""]
    return out


def list_table(header, rows, widths=None, title_text=None):
    """A ``list-table``; each cell is a string of inline reST (may be empty)."""
    if not rows:
        return []
    out = [f".. list-table:: {title_text or ''}".rstrip(), "   :header-rows: 1"]
    if widths:
        out.append(f"   :widths: {' '.join(str(w) for w in widths)}")
    out.append("")
    for row in [header] + rows:
        for i, cell in enumerate(row):
            lines = str(cell).splitlines() or [""]
            first = "   * - " if i == 0 else "     - "
            out.append((first + lines[0]).rstrip())
            for extra in lines[1:]:
                out.append(("       " + extra).rstrip())
    out.append("")
    return out


def indent(lines, prefix="   "):
    return [(prefix + line).rstrip() if line.strip() else "" for line in lines]


def label(name):
    """A reST label name from free text."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
