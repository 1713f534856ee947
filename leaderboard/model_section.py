"""One model's section of the page: ranking, plots, category and task views, acceptance by depth,
first divergences and the settings that differ between its runs.

Element ids come from the section index only (``m0-ranking``, ``m0-scatter``, ...), never from
result strings, so the tests and links can rely on them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmspec.leaderboard import cells, plots
from mmspec.leaderboard.collect import is_number
from mmspec.leaderboard.flags import FLAGS
from mmspec.leaderboard.html_tables import (
    acceptance_table,
    divergence_table,
    flag,
    metrics_table,
    pivot,
    settings_table,
)
from mmspec.leaderboard.page import esc

# The six MMSpec categories, in the benchmark's order; other categories follow by name.
MMSPEC_CATEGORIES = (
    "general vqa",
    "text vqa",
    "image captioning",
    "chart understanding",
    "complex reasoning pro",
    "multi-turn conversation",
)
# What a reader needs to know about how a section's runs were made: (label, section, key).
RUN_FACTS = (
    ("device", "environment", "device_name"),
    ("device type", "environment", "device"),
    ("dtype", "config", "dtype"),
    ("execution", "config", "execution"),
    ("attention", "config", "attn_implementation"),
    ("max new tokens", "config", "max_new_tokens"),
    ("torch", "environment", "torch"),
    ("transformers", "environment", "transformers"),
    ("mmspec", "environment", "mmspec"),
)
SCATTER_CAPTION = (
    "Global speedup against MAT, one point per method. The dotted line is the MAT bound; the dashed "
    "line, when an oracle run is present, joins the baseline and the oracle runs: the speedup a free, "
    "always-right draft reaches at that MAT."
)
ACCEPTANCE_CAPTION = (
    "Share of drafted rounds that accepted at least d draft tokens (bonus token excluded), from the "
    "per-round records (samples.jsonl)."
)

Entry = dict[str, Any]


@dataclass
class Section:
    """One model's entries split by scope, its methods (source, label) in ranking order, its runs."""

    index: int
    overall: list[Entry]
    categories: list[Entry]
    tasks: list[Entry]
    methods: list[tuple[str, str]]
    runs: dict[str, dict[str, Any]]  # by source
    draw: bool

    @property
    def prefix(self) -> str:
        return f"m{self.index}"

    def colours(self, sources: list[str]) -> list[Any]:
        order = [s for s, _ in self.methods]
        return [plots.colour(order.index(s)) for s in sources]

    def label(self, source: str) -> str:
        return dict(self.methods).get(source, source)


def _section(index: int, entries: list[Entry], runs: list[dict[str, Any]], draw: bool) -> Section:
    overall = [e for e in entries if e.get("scope") == "overall"]
    methods: dict[str, str] = {}
    for e in entries:  # overall first, so ranking order; a run without an overall block still counts
        methods.setdefault(str(e.get("source")), cells.method(e))
    return Section(
        index=index,
        overall=overall,
        categories=[e for e in entries if e.get("scope") == "category"],
        tasks=[e for e in entries if e.get("scope") == "task"],
        methods=list(methods.items()),
        runs={str(r.get("source")): r for r in runs},
        draw=draw,
    )


def _names(entries: list[Entry], first: tuple[str, ...] = ()) -> list[str]:
    names = {str(e.get("name")) for e in entries}
    return [n for n in first if n in names] + sorted(names - set(first))


def _figure(fig_id: str, caption: str, draw: Callable[..., str], *args: Any) -> str:
    """``draw(*args, fig_id)`` as a captioned figure; a failure becomes a notice, not a broken page."""
    try:
        svg = draw(*args, fig_id)
    except Exception as e:  # a figure must not take the tables down with it
        print(f"mmspec-leaderboard: warning: figure {fig_id} failed: {e!r}", file=sys.stderr)
        return f'<p class="notice warn">Figure {esc(fig_id)} could not be drawn: {esc(repr(e))}</p>'
    return f'<figure id="{fig_id}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _run_facts(overall: list[Entry]) -> str:
    """One line of shared settings; a setting whose value differs between runs says so."""
    facts = []
    for name, section, key in RUN_FACTS:
        values = {str(v) for e in overall if (v := (e.get(section) or {}).get(key)) is not None}
        if len(values) == 1:
            facts.append(f"{esc(name)} <code>{esc(values.pop())}</code>")
        elif values:
            facts.append(f'{esc(name)} <span class="flag">differs</span>')
    return f'<p class="muted">{" · ".join(facts)}</p>' if facts else ""


def _notices(s: Section, diffs: list[dict[str, Any]]) -> str:
    """A sentence per honesty flag raised in this section, naming the methods it concerns."""
    out = []
    for code, sentence in FLAGS.items():
        hit = [cells.method(e) for e in s.overall if code in (e.get("flags") or [])]
        if hit:
            out.append(f'<p class="notice warn">{flag(code)} {esc(", ".join(hit))}: {esc(sentence)}.</p>')
    if diffs:
        out.append(
            f'<p class="notice warn">⚠ {len(diffs)} setting(s) differ between these runs: see '
            f'<a href="#{s.prefix}-settings">settings that differ</a>.</p>'
        )
    return "".join(out)


def _plots(s: Section) -> str:
    if not s.draw:
        return (
            '<p class="notice">Plots (speedup vs MAT, category heatmaps, acceptance by depth) need '
            f"matplotlib: <code>{esc(plots.INSTALL_HINT)}</code>.</p>"
        )
    figs = []
    plotted = [e for e in s.overall if is_number(e.get("mat")) and is_number(e.get("speedup_global"))]
    if plotted:
        points = [
            plots.Point(cells.method(e), e["mat"], e["speedup_global"], e.get("spec") == "oracle")
            for e in plotted
        ]
        colours = s.colours([str(e.get("source")) for e in plotted])
        fig_id = f"{s.prefix}-scatter"
        figs.append(_figure(fig_id, SCATTER_CAPTION, plots.scatter, points, colours))
    names = _names(s.categories, MMSPEC_CATEGORIES)
    cell = {(str(e.get("source")), str(e.get("name"))): e for e in s.categories}
    for what, key in (("speedup", "speedup_global"), ("mat", "mat")):
        if not names:
            break
        grid = [[(cell.get((src, n)) or {}).get(key) for n in names] for src, _ in s.methods]
        grid = [[v if is_number(v) else None for v in row] for row in grid]
        rows = [label for _, label in s.methods]
        fig_id = f"{s.prefix}-heatmap-{what}"
        caption = f"{'Global speedup' if what == 'speedup' else 'MAT'} of each method by MMSpec category."
        figs.append(_figure(fig_id, caption, plots.heatmap, rows, names, grid, what))
    if not figs:
        return '<p class="muted">No run here has both a speedup and a MAT to plot.</p>'
    return f'<div class="plots">{"".join(figs)}</div>'


def _by_scope(s: Section, entries: list[Entry], what: str, first: tuple[str, ...] = ()) -> str:
    if not entries:
        return f'<p class="muted">These results have no per-{what} metrics.</p>'
    names = _names(entries, first)
    return (
        pivot(f"{s.prefix}-{what}-pivot", s.methods, entries, names, what)
        + f"<details><summary>Every metric by {what}</summary>"
        + metrics_table(f"{s.prefix}-{what}-metrics", entries, what)
        + "</details>"
    )


def _acceptance(s: Section) -> str:
    sources = [
        src for src, _ in s.methods if isinstance(s.runs.get(src, {}).get("acceptance_by_depth"), dict)
    ]
    if not sources:
        return '<p class="muted">No per-round records of a drafting method were found beside these results.json files.</p>'
    curves = [(s.label(src), s.runs[src]["acceptance_by_depth"]) for src in sources]
    html = acceptance_table(f"{s.prefix}-acceptance-table", curves)
    if not s.draw:
        return html
    colours = s.colours(sources)
    fig_id = f"{s.prefix}-acceptance"
    lines = [(label, acc["p_at_least"]) for label, acc in curves]
    return _figure(fig_id, ACCEPTANCE_CAPTION, plots.acceptance, lines, colours) + html


def _divergences(s: Section) -> str:
    blocks = []
    for src, label in s.methods:
        run = s.runs.get(src, {})
        items = run.get("divergences") if isinstance(run.get("divergences"), list) else []
        total = run.get("n_divergences")
        if not items and not (is_number(total) and total > 0):
            continue
        note = "" if run.get("records_found") else " (no samples.jsonl beside its results.json: no texts)"
        blocks.append(
            f"<h4>{esc(label)}: {esc(cells.count(total))} turn(s) differ from the baseline; "
            f"the first {len(items)}{esc(note)}</h4>" + divergence_table(items)
        )
    body = "".join(blocks) or '<p class="muted">No compared turn differs from the baseline here.</p>'
    return f'<div id="{s.prefix}-divergences">{body}</div>'


def _settings(s: Section, diffs: list[dict[str, Any]]) -> str:
    if not diffs:
        return (
            f'<p id="{s.prefix}-settings" class="muted">The compared runs share every setting and '
            "environment field (apart from each method's own parameters).</p>"
        )
    return settings_table(f"{s.prefix}-settings", diffs, s.methods)


def render_model_section(
    index: int, model: str, entries: list[Entry], runs: list[dict[str, Any]], info: dict[str, Any], draw: bool
) -> str:
    """The HTML ``<section id="m{index}">`` of one model (its entries in leaderboard order)."""
    s = _section(index, entries, runs, draw)
    diffs = info.get("setting_differences") if isinstance(info.get("setting_differences"), list) else []
    parts = [
        f'<section class="model" id="{s.prefix}"><h2>{esc(model)}</h2>',
        _run_facts(s.overall),
        _notices(s, diffs),
        "<h3>Ranking</h3>",
        metrics_table(f"{s.prefix}-ranking", s.overall),
        "<h3>Plots</h3>",
        _plots(s),
        "<h3>By category</h3>",
        _by_scope(s, s.categories, "category", MMSPEC_CATEGORIES),
        "<h3>By task</h3>",
        _by_scope(s, s.tasks, "task"),
        "<h3>Acceptance by tree depth</h3>",
        _acceptance(s),
        "<h3>First divergences from the baseline</h3>",
        _divergences(s),
        "<h3>Settings that differ</h3>",
        _settings(s, diffs),
        "</section>",
    ]
    return "\n".join(p for p in parts if p)
