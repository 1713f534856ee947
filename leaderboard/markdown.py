"""The Markdown view of a leaderboard: one table per scope (overall first), printed by the CLI.

Every string taken from results files is untrusted: cells escape ``|``, ``\\``, HTML and
link/emphasis characters and turn newlines into ``<br>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mmspec.leaderboard import cells

# (header, right-aligned, cell)
Column = tuple[str, bool, Callable[[dict[str, Any]], str]]
COLUMNS: tuple[Column, ...] = (
    ("rank", True, lambda e: cells.count(e.get("rank"))),
    ("model", False, lambda e: cells.text(e.get("model"))),
    ("spec", False, cells.method),
    ("speedup (global)", True, lambda e: cells.fixed(e.get("speedup_global"), 2)),
    ("speedup (paired)", True, lambda e: cells.fixed(e.get("speedup_paired"), 2)),
    ("MAT", True, lambda e: cells.fixed(e.get("mat"), 2)),
    ("tokens/s", True, lambda e: cells.fixed(e.get("tokens_per_s"), 1)),
    ("TTFT ms", True, lambda e: cells.millis(e.get("ttft_mean_s"))),
    ("exact match", False, cells.exact_match),
    ("failed", True, lambda e: cells.count(e.get("n_failed"))),
    ("mismatches", True, lambda e: cells.count(e.get("n_mismatches"))),
    ("turns", True, lambda e: cells.count(e.get("n_turns"))),
    ("dtype", False, cells.dtype),
    ("device", False, cells.device),
    ("flags", False, cells.flags),
)
SECTIONS = (
    ("overall", "Overall (ranked by global speedup)", None),
    ("category", "By category", "category"),
    ("task", "By task", "task"),
)

_NEWLINES = re.compile(r"\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&])")


def escape_markdown(text: str) -> str:
    """One table cell: no raw ``|``, newlines, HTML or control characters survive."""
    text = _MD_SPECIAL.sub(r"\\\1", text.replace("\t", " "))
    text = cells.CONTROL.sub("\ufffd", text)
    return _NEWLINES.sub("<br>", text)


def _columns(name_header: str | None) -> list[Column]:
    cols = list(COLUMNS)
    if name_header:  # categories and tasks: which one, right after the rank
        cols.insert(1, (name_header, False, lambda e: cells.text(e.get("name"))))
    return cols


def _table(entries: list[dict[str, Any]], columns: list[Column]) -> list[str]:
    header = [escape_markdown(h) for h, _, _ in columns]
    rows = [[escape_markdown(cell(e)) for _, _, cell in columns] for e in entries]
    widths = [max([len(header[i]), 3, *(len(r[i]) for r in rows)]) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, (_, right, _) in zip(row, widths, columns)]
        return "| " + " | ".join(padded) + " |"

    sep = "|" + "|".join(
        ("-" * (w + 1) + ":") if right else "-" * (w + 2) for w, (_, right, _) in zip(widths, columns)
    )
    return [line(header), sep + "|", *(line(r) for r in rows)]


def render_markdown(leaderboard: dict[str, Any]) -> str:
    """GitHub-flavoured Markdown: a heading and a table per scope present, overall first.

    Within a table the leaderboard's order is kept (by name, then global speedup).
    """
    entries = leaderboard.get("entries", [])
    blocks = []
    for scope, heading, name_header in SECTIONS:
        rows = [e for e in entries if e.get("scope") == scope]
        if rows:
            blocks.append("\n".join([f"## {heading}", "", *_table(rows, _columns(name_header))]) + "\n")
    return "\n".join(blocks)
