"""Markdown and HTML views of a leaderboard.

Every string taken from results files is untrusted: Markdown cells escape ``|``, ``\\``, HTML and
link/emphasis characters and turn newlines into ``<br>``; the HTML view passes every string through
``html.escape`` and carries no scripts (its Content-Security-Policy forbids them).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from typing import Any

from mmspec.leaderboard.collect import is_number

NULL = "—"
# (header, right-aligned)
COLUMNS: tuple[tuple[str, bool], ...] = (
    ("rank", True),
    ("model", False),
    ("spec", False),
    ("scope/name", False),
    ("speedup (paired)", True),
    ("speedup (global)", True),
    ("MAT", True),
    ("tokens/s", True),
    ("exact match", True),
    ("n turns", True),
    ("dtype", False),
    ("device", False),
)

_NEWLINES = re.compile(r"\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&])")


def _fixed(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if is_number(value) else NULL


def _count(value: Any) -> str:
    if not is_number(value):
        return NULL
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _percent(value: Any) -> str:
    """A rate as a percentage, rounded down so that anything below 1 never shows as 100%."""
    if not is_number(value):
        return NULL
    return f"{math.floor(value * 1000 + 1e-9) / 10:.1f}%"


def _text(value: Any) -> str:
    return NULL if value is None or value == "" else str(value)


def row_cells(entry: dict[str, Any], index: int) -> list[str]:
    """The plain (unescaped) cell texts of one entry, in :data:`COLUMNS` order."""
    config = entry.get("config") or {}
    env = entry.get("environment") or {}
    model_args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
    dtype = config.get("dtype") or model_args.get("dtype")
    device = env.get("device_name") or env.get("device") or config.get("device")
    spec = _text(entry.get("spec")) + (f" ({entry['variant']})" if entry.get("variant") else "")
    scope = entry.get("scope")
    where = "overall" if scope == "overall" else f"{_text(scope)}: {_text(entry.get('name'))}"
    return [
        str(entry.get("rank") or index),
        _text(entry.get("model")),
        spec,
        where,
        _fixed(entry.get("speedup_paired"), 2),
        _fixed(entry.get("speedup_global"), 2),
        _fixed(entry.get("mat"), 2),
        _fixed(entry.get("tokens_per_s"), 1),
        _percent(entry.get("exact_match_rate")),
        _count(entry.get("n_turns")),
        _text(dtype),
        _text(device),
    ]


def escape_markdown(text: str) -> str:
    """One table cell: no raw ``|``, newlines, HTML or control characters survive."""
    text = _MD_SPECIAL.sub(r"\\\1", text.replace("\t", " "))
    text = _CONTROL.sub("\ufffd", text)
    return _NEWLINES.sub("<br>", text)


def _rows(leaderboard: dict[str, Any], escape: Callable[[str], str]) -> list[list[str]]:
    return [[escape(c) for c in row_cells(e, i)] for i, e in enumerate(leaderboard.get("entries", []), 1)]


def render_markdown(leaderboard: dict[str, Any]) -> str:
    """A GitHub-flavoured Markdown table of the leaderboard's entries (in their order)."""
    header = [escape_markdown(h) for h, _ in COLUMNS]
    rows = _rows(leaderboard, escape_markdown)
    widths = [max([len(header[i]), 3, *(len(r[i]) for r in rows)]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, (_, right) in zip(cells, widths, COLUMNS)]
        return "| " + " | ".join(padded) + " |"

    sep = "|" + "|".join(
        ("-" * (w + 1) + ":") if right else "-" * (w + 2) for w, (_, right) in zip(widths, COLUMNS)
    )
    return "\n".join([line(header), sep + "|", *(line(r) for r in rows)]) + "\n"


def _html_text(value: Any) -> str:
    return html.escape(_CONTROL.sub("\ufffd", str(value)), quote=True)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.scope-overall td { font-weight: 600; }
tr.no-speedup td { color: #656d76; }
code { font-size: 0.85rem; }
""".strip()


def render_html(leaderboard: dict[str, Any], title: str = "mmspec leaderboard") -> str:
    """A self-contained static HTML page (no scripts, no external resources) of the leaderboard."""
    head = "".join(f'<th scope="col">{_html_text(h)}</th>' for h, _ in COLUMNS)
    body = []
    for i, entry in enumerate(leaderboard.get("entries", []), 1):
        classes = ["scope-" + re.sub(r"[^a-z]", "", str(entry.get("scope")))]
        if not is_number(entry.get("speedup_paired")):
            classes.append("no-speedup")
        cells = "".join(
            f'<td class="num">{_html_text(c)}</td>' if right else f"<td>{_html_text(c)}</td>"
            for c, (_, right) in zip(row_cells(entry, i), COLUMNS)
        )
        body.append(
            f'<tr class="{" ".join(classes)}" title="{_html_text(entry.get("source", ""))}">{cells}</tr>'
        )
    sources = "".join(f"<li><code>{_html_text(s)}</code></li>" for s in leaderboard.get("sources", []))
    n_sources = len(leaderboard.get("sources", []))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_html_text(title)}</title>
<style>
{_CSS}
</style>
</head>
<body>
<h1>{_html_text(title)}</h1>
<p>Generated {_html_text(leaderboard.get("generated", ""))} from {n_sources} results file{"" if n_sources == 1 else "s"}.
Sorted by paired speedup, then global speedup, then tokens/s; runs without a baseline come last.</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<details><summary>Sources</summary><ul>{sources}</ul></details>
</body>
</html>
"""
