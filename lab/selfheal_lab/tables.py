# SPDX-License-Identifier: Apache-2.0
"""Plain-text and Markdown tables for the demo and the benchmarks, and the
spread of repeated measurements they show."""

import statistics


def spread(values):
    """``{median, min, max, values}`` (rounded to 0.01) of the values that are
    not None, or None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "values": [round(v, 2) for v in values]}


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
