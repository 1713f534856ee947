"""The page's HTML tables: metrics, method × category/task pivots, acceptance, divergences, settings.

Every string from results or records goes through :func:`mmspec.leaderboard.page.esc`; numbers
also sit in ``data-v`` attributes, which the sorting script reads (columns marked ``data-type="num"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmspec.leaderboard import cells
from mmspec.leaderboard.collect import is_number
from mmspec.leaderboard.flags import FLAGS
from mmspec.leaderboard.page import esc

ACCEPTANCE_TABLE_DEPTH = 12  # deeper acceptance is in the figure

Entry = dict[str, Any]
Column = tuple[str, str, Callable[[Entry], str]]  # (header, "num" | "text", cell HTML)


def th(header: str, kind: str) -> str:
    """A sortable column header (a button, so the keyboard can sort too)."""
    return f'<th scope="col" data-type="{kind}"><button type="button">{esc(header)}</button></th>'


def num(value: Any, text: str) -> str:
    """A right-aligned cell showing ``text`` and sorting by ``value`` (nulls sort last)."""
    v = f' data-v="{esc(value)}"' if is_number(value) else ""
    return f'<td class="num"{v}>{esc(text)}</td>'


def _table(table_id: str, heads: str, rows: list[str], cls: str = "sortable", caption: str = "") -> str:
    cap = f'<caption class="muted">{esc(caption)}</caption>' if caption else ""
    ident = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="scroll"><table class="{cls}"{ident}>{cap}<thead><tr>{heads}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _badge(entry: Entry) -> str:
    state = entry.get("lossless")
    cls, word = {True: ("ok", "lossless"), False: ("bad", "NOT lossless")}.get(
        state, ("unchecked", "unchecked")
    )
    rate = cells.percent(entry.get("exact_match_rate"))
    n = cells.count(entry.get("n_compared"))
    title = f"{rate} of {n} compared turns equal the baseline" if rate != cells.NULL else "not compared"
    v = entry.get("exact_match_rate")
    dv = f' data-v="{esc(v)}"' if is_number(v) else ""
    shown = "" if rate == cells.NULL else f" {esc(rate)}"
    return f'<td{dv} title="{esc(title)}"><span class="badge {cls}">{word}</span>{shown}</td>'


def _split(entry: Entry) -> str:
    d, v = entry.get("draft_share"), entry.get("verify_share")
    if not is_number(d) and not is_number(v):
        return f"<td>{cells.NULL}</td>"
    dw, vw = (min(max(x, 0.0), 1.0) * 100 if is_number(x) else 0.0 for x in (d, v))
    bar = (
        f'<span class="split" aria-hidden="true"><span class="draft" style="width:{dw:.1f}%"></span>'
        f'<span class="verify" style="width:{min(vw, 100 - dw):.1f}%"></span></span>'
    )
    dv = f' data-v="{esc(d)}"' if is_number(d) else ""
    text = f"{cells.percent(d)} / {cells.percent(v)}"
    return f'<td class="num"{dv} title="draft / verify share of wall time">{bar} {esc(text)}</td>'


def _flags(entry: Entry) -> str:
    codes = entry.get("flags") if isinstance(entry.get("flags"), list) else []
    return "<td>" + "".join(flag(c) for c in codes) + "</td>"


def flag(code: str) -> str:
    """A flag's pill, its full sentence as the tooltip."""
    short = cells.FLAG_SHORT.get(code, code)
    return f'<span class="flag {esc(code)}" title="{esc(FLAGS.get(code, code))}">{esc(short)}</span>'


def _metric(key: str, fmt: Callable[[Any], str]) -> Callable[[Entry], str]:
    return lambda e: num(e.get(key), fmt(e.get(key)))


METRIC_COLUMNS: tuple[Column, ...] = (
    ("speedup (global)", "num", _metric("speedup_global", lambda v: cells.fixed(v, 2))),
    ("speedup (paired)", "num", _metric("speedup_paired", lambda v: cells.fixed(v, 2))),
    ("MAT", "num", _metric("mat", lambda v: cells.fixed(v, 2))),
    ("tokens/s", "num", _metric("tokens_per_s", lambda v: cells.fixed(v, 1))),
    ("TTFT (ms)", "num", _metric("ttft_mean_s", cells.millis)),
    ("exact match", "num", _badge),
    ("failed samples", "num", _metric("n_failed", cells.count)),
    ("mismatches", "num", _metric("n_mismatches", cells.count)),
    ("ViSkip skip share", "num", _metric("skip_share", cells.percent)),
    ("draft / verify time", "num", _split),
    ("flags", "text", _flags),
)


def metrics_table(table_id: str, entries: list[Entry], name_header: str | None = None) -> str:
    """Every metric, one row per entry in the given order; ``#`` = place within its name."""
    cols: list[Column] = [
        (
            "method",
            "text",
            lambda e: f'<td class="label" title="{esc(e.get("source", ""))}">{esc(cells.method(e))}</td>',
        )
    ]
    if name_header:
        cols.insert(0, (name_header, "text", lambda e: f"<td>{esc(e.get('name', ''))}</td>"))
    cols += METRIC_COLUMNS
    rows, place, last = [], 0, None
    for e in entries:
        place = place + 1 if e.get("name") == last else 1
        last = e.get("name")
        rows.append("<tr>" + num(place, str(place)) + "".join(cell(e) for _, _, cell in cols) + "</tr>")
    return _table(table_id, th("#", "num") + "".join(th(h, k) for h, k, _ in cols), rows, "sortable metrics")


def pivot(
    table_id: str, methods: list[tuple[str, str]], entries: list[Entry], names: list[str], what: str
) -> str:
    """Methods × categories (or tasks): global speedup with the MAT below it; sortable by column."""
    by_cell = {(e.get("source"), str(e.get("name"))): e for e in entries}
    rows = []
    for source, label in methods:
        tds = [f'<td class="label" title="{esc(source)}">{esc(label)}</td>']
        for name in names:
            e = by_cell.get((source, name))
            if e is None:
                tds.append(f"<td>{cells.NULL}</td>")
                continue
            s = e.get("speedup_global")
            dv = f' data-v="{esc(s)}"' if is_number(s) else ""
            speedup = f"{cells.fixed(s, 2)}×" if is_number(s) else cells.NULL
            mat = f'<span class="muted">MAT {esc(cells.fixed(e.get("mat"), 2))}</span>'
            tds.append(f'<td class="num"{dv}>{esc(speedup)}<br>{mat}</td>')
        rows.append(f"<tr>{''.join(tds)}</tr>")
    heads = th("method", "text") + "".join(th(n, "num") for n in names)
    caption = f"Global speedup and MAT of each method by {what}; click a {what} to sort."
    return _table(table_id, heads, rows, "sortable pivot", caption)


def acceptance_table(table_id: str, curves: list[tuple[str, dict[str, Any]]]) -> str:
    """Drafted rounds and P(accepted ≥ d) per method, up to :data:`ACCEPTANCE_TABLE_DEPTH`."""
    depth = min(max(len(a["p_at_least"]) for _, a in curves), ACCEPTANCE_TABLE_DEPTH)
    rows = []
    for label, acc in curves:
        p = acc["p_at_least"]
        tds = [f'<td class="label">{esc(label)}</td>', num(acc.get("rounds"), cells.count(acc.get("rounds")))]
        tds += [num(p[d], cells.percent(p[d])) if d < len(p) else num(0.0, "0.0%") for d in range(depth)]
        rows.append(f"<tr>{''.join(tds)}</tr>")
    heads = th("method", "text") + th("drafted rounds", "num")
    heads += "".join(th(f"P(≥{d})", "num") for d in range(1, depth + 1))
    return _table(table_id, heads, rows)


def _texts(item: dict[str, Any]) -> str:
    t = item.get("text")
    if not isinstance(t, dict):
        return f'<td class="muted">{cells.NULL}</td>' * 2
    before = esc("…" + str(t.get("before", "")))
    base = f'<mark class="base">{esc(t.get("baseline", ""))}</mark>'
    mine = f'<mark class="diff">{esc(t.get("run", ""))}</mark>'
    return f'<td class="text">{before}{base}…</td><td class="text">{before}{mine}…</td>'


def _tokens(item: dict[str, Any]) -> str:
    t = item.get("tokens")
    if not isinstance(t, dict):
        return f'<td class="muted">{cells.NULL}</td>'
    at = esc(t.get("start"))
    return (
        f"<td><code>@{at} baseline {esc(t.get('baseline'))}<br>@{at} method {esc(t.get('run'))}</code></td>"
    )


def divergence_table(items: list[dict[str, Any]]) -> str:
    """Task, sample, turn, token position and the two texts from the first differing character."""
    rows = [
        f"<tr><td>{esc(i.get('task'))}</td><td>{esc(i.get('id'))}</td>"
        + num(i.get("turn"), cells.count(i.get("turn")))
        + num(i.get("position"), cells.count(i.get("position")))
        + _texts(i)
        + _tokens(i)
        + "</tr>"
        for i in items
    ]
    heads = "".join(
        f'<th scope="col">{h}</th>'
        for h in (
            "task",
            "sample",
            "turn",
            "token position",
            "baseline text from the divergence",
            "method text from the divergence",
            "token ids around it",
        )
    )
    return _table("", heads, rows, "divergences")


def settings_table(table_id: str, diffs: list[dict[str, Any]], methods: list[tuple[str, str]]) -> str:
    """One flagged row per setting that differs, one column per run (by its source)."""
    rows = []
    for d in diffs:
        values = {str(v.get("source")): v.get("value") for v in d.get("values", []) if isinstance(v, dict)}
        tds = "".join(
            f'<td class="label"><code>{esc(values.get(s, "unset"))}</code></td>' for s, _ in methods
        )
        key = f'<th scope="row" title="differs between compared runs">⚠ {esc(d.get("key"))}</th>'
        rows.append(f'<tr class="flagged">{key}{tds}</tr>')
    heads = '<th scope="col">setting</th>' + "".join(
        f'<th scope="col" class="label">{esc(label)}</th>' for _, label in methods
    )
    return _table(table_id, heads, rows, "settings")
