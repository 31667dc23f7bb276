# SPDX-License-Identifier: Apache-2.0
"""Plain-text and Markdown tables for the demo and the benchmark."""


def format_table(rows, markdown=False, indent=""):
    """Format ``rows`` (first row = header; every cell a string) as aligned text.

    :param markdown: pipe-separated Markdown instead of space-aligned text.
    """
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    if markdown:
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
                 for row in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    else:
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(indent + line for line in lines)
