"""The leaderboard as one self-contained HTML page: opens from disk, works offline, no CDN.

Every string from results files or records is untrusted and passes through :func:`esc`
(``html.escape`` after replacing control characters). The only script is the constant
:data:`SORT_SCRIPT`, which reads nothing but the table cells' text and ``data-v`` attributes; the
page's Content-Security-Policy allows that script by its hash and nothing else (no other scripts,
no network, no external resources), so a string that slipped through escaping still could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections import defaultdict
from typing import Any

from mmspec.leaderboard import plots
from mmspec.leaderboard.cells import CONTROL
from mmspec.leaderboard.flags import FLAGS, NOISE_MARGIN


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute value."""
    return html.escape(CONTROL.sub("\ufffd", str(value)), quote=True)


# Sorts a table.sortable by the clicked column: numbers by data-v (nulls last), else by text; the
# first click sorts numbers from the largest. ``#sort=<table id>:<column>`` in the URL sorts on load.
SORT_SCRIPT = """
"use strict";
(function () {
  function key(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) { return null; }
    if (numeric) {
      var v = cell.getAttribute("data-v");
      return v === null || v === "" ? null : Number(v);
    }
    return cell.textContent.trim().toLowerCase();
  }
  function sortBy(table, heads, col) {
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var now = th.getAttribute("aria-sort");
    var next = now === "descending" ? "ascending" : now === "ascending" ? "descending"
      : (numeric ? "descending" : "ascending");
    var sign = next === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      if (x === null || y === null) { return (x === null ? 1 : 0) - (y === null ? 1 : 0); }
      return x < y ? -sign : x > y ? sign : 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", next);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(table, heads, col); }); }
    });
    table.setAttribute("data-sortable", "ready");
  });
  // a link may ask for a sorted view: page.html#sort=m0-ranking:4 (table id, column index)
  var wanted = /^#sort=([A-Za-z0-9-]+):([0-9]+)$/.exec(window.location.hash);
  var table = wanted && document.getElementById(wanted[1]);
  var th = table && table.tHead && table.tHead.rows[0].cells[Number(wanted[2])];
  var button = th && th.querySelector("button");
  if (button) { button.click(); }
})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)

CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --head: #f6f8fa; --warn: #9a6700;
        --warn-bg: #fff8c5; --bad: #cf222e; --bad-bg: #ffebe9; --ok: #1a7f37; --ok-bg: #dafbe1; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem 2rem; color: var(--fg);
       max-width: 1400px; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid var(--line); }
h3 { margin-top: 1.8rem; } .muted { color: var(--muted); }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: var(--head); } td.num { text-align: right; font-variant-numeric: tabular-nums; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; }
th[aria-sort="descending"] button::after { content: " ▼"; } th[aria-sort="ascending"] button::after { content: " ▲"; }
tbody tr:nth-child(even) { background: #fbfcfd; }
.badge, .flag { display: inline-block; border-radius: 1em; padding: 0 0.5em; font-size: 0.75rem;
                font-weight: 600; white-space: nowrap; margin: 0 0.15em 0.1em 0; }
.badge.ok { background: var(--ok-bg); color: var(--ok); } .badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.unchecked { background: var(--head); color: var(--muted); }
.flag { background: var(--warn-bg); color: var(--warn); } .flag.not_lossless { background: var(--bad-bg); color: var(--bad); }
.notice { border-left: 4px solid var(--line); background: var(--head); padding: 0.4rem 0.8rem; }
.notice.warn { border-color: var(--warn); background: var(--warn-bg); }
.split { display: inline-block; width: 5rem; height: 0.6rem; background: #eaeef2; vertical-align: middle; }
.split span { display: inline-block; height: 100%; } .split .draft { background: #8250df; } .split .verify { background: #0969da; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; border: 1px solid var(--line); padding: 0.5rem; background: white; }
figcaption { font-size: 0.8rem; color: var(--muted); max-width: 36rem; }
.plot-svg { max-width: 100%; height: auto; display: block; }
code, .text { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.8rem; }
.text { white-space: pre-wrap; word-break: break-all; max-width: 28rem; }
mark.base { background: var(--ok-bg); } mark.diff { background: var(--bad-bg); }
tr.flagged th { color: var(--warn); }
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; font-size: 0.9rem; }
dl.legend dt { font-weight: 600; } dl.legend dd { margin: 0; }
nav a { margin-right: 1rem; }
.scroll { overflow-x: auto; } .label { min-width: 8rem; max-width: 18rem; overflow-wrap: anywhere; }
h2, h4, .notice, nav { overflow-wrap: anywhere; }
""".strip()


def _legend() -> str:
    flags = "".join(
        f'<dt><span class="flag {esc(code)}">{esc(code.replace("_", " "))}</span></dt><dd>{esc(text)}</dd>'
        for code, text in FLAGS.items()
    )
    return f"""<details open><summary>How to read this page</summary>
<dl class="legend">
<dt>speedup (global)</dt><dd>Σ new tokens ÷ Σ time of the method over the turns it shares with the baseline run,
divided by the baseline's; the ranking uses it. <strong>speedup (paired)</strong> is the mean of per-turn ratios (noisier).</dd>
<dt>MAT</dt><dd>new tokens per target forward (prefill included): plain decoding is exactly 1. Each round costs at
least one plain forward, so MAT bounds the speedup; a speedup above {NOISE_MARGIN}× its MAT is flagged as noise.</dd>
<dt>exact match</dt><dd><span class="badge ok">lossless</span> every compared turn's token ids equal plain greedy
decoding's; <span class="badge bad">NOT lossless</span> some differ (first divergences below);
<span class="badge unchecked">unchecked</span> no baseline to compare with, or sampling.</dd>
<dt>ViSkip skip share</dt><dd>rounds whose drafting the ViSkip gate skipped ÷ all rounds.</dd>
<dt>draft / verify</dt><dd>time in the drafter and in verification, as shares of the wall time.</dd>
{flags}
</dl></details>"""


def _group(leaderboard: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(model, its entries, its ``models`` item) in the leaderboard's model order."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in leaderboard.get("entries", []):
        by_model[str(e.get("model"))].append(e)
    listed = {str(m.get("model")): m for m in leaderboard.get("models", []) if isinstance(m, dict)}
    order = list(listed) + [m for m in by_model if m not in listed]
    return [(m, by_model.get(m, []), listed.get(m, {})) for m in order if by_model.get(m)]


def render_html(
    leaderboard: dict[str, Any], title: str = "mmspec leaderboard", with_plots: bool | None = None
) -> str:
    """The page: per model, the ranking, plots, category and task views, acceptance by depth, first
    divergences and the settings that differ. ``with_plots=None`` draws the figures when matplotlib is
    installed; without it the page says how to get them."""
    from mmspec.leaderboard.model_section import render_model_section

    draw = plots.available() if with_plots is None else with_plots
    groups = _group(leaderboard)
    runs = [r for r in leaderboard.get("runs", []) if isinstance(r, dict)]
    sections = [
        render_model_section(i, model, entries, [r for r in runs if str(r.get("model")) == model], info, draw)
        for i, (model, entries, info) in enumerate(groups)
    ]
    nav = "".join(f'<a href="#m{i}">{esc(model)}</a>' for i, (model, _, _) in enumerate(groups))
    sources = "".join(f"<li><code>{esc(s)}</code></li>" for s in leaderboard.get("sources", []))
    n = len(leaderboard.get("sources", []))
    no_plots = (
        ""
        if draw
        else f'<p class="notice warn" id="plots-missing">Plots need matplotlib: <code>{esc(plots.INSTALL_HINT)}</code>, '
        "then run <code>mmspec-leaderboard</code> again. The tables below are complete without it.</p>"
    )
    body = "\n".join(sections) or '<p class="notice">No results.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
{CSS}
</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
<p class="muted">Generated {esc(leaderboard.get("generated", ""))} from {n} results file{"" if n == 1 else "s"}
(leaderboard schema {esc(leaderboard.get("schema_version", ""))}). One section per model; within it, one row per
method, ranked by global speedup.</p>
<nav>{nav}</nav>
{no_plots}
{_legend()}
</header>
<main>
{body}
</main>
<footer><details><summary>Sources</summary><ul>{sources}</ul></details></footer>
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""
