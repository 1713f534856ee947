"""The page's figures, drawn with matplotlib (the optional ``mmspec[plots]`` extra) as inline SVG.

Each function returns an ``<svg>`` element ready to paste into the page: no XML prolog, ids
prefixed with the figure's own id (several figures share one document), text kept as text.
matplotlib escapes the text it writes; labels from results files additionally lose control
characters and ``$`` (mathtext) before they reach it. Without matplotlib, :func:`available` is
False and the page shows its tables with :data:`INSTALL_HINT`.
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmspec.leaderboard.cells import CONTROL

INSTALL_HINT = 'pip install "mmspec[plots]"'
_LABEL_CHARS = 32
_SVG_ID = re.compile(r'(\bid="|url\(#|href="#)')


def available() -> bool:
    """True when matplotlib can be imported (the ``plots`` extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class Point:
    """One run in the speedup-vs-MAT scatter."""

    label: str
    mat: float
    speedup: float
    oracle: bool = False


def label(text: str, limit: int = _LABEL_CHARS) -> str:
    """An untrusted string made safe for matplotlib: one line, no mathtext, not too long."""
    text = CONTROL.sub("\ufffd", " ".join(str(text).split()))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def colour(i: int) -> Any:
    """The colour of the i-th method of a section (same in every figure of the section)."""
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10)


def _svg(fig: Any, uid: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": uid}), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a glyph missing from the font for an odd label
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    svg = _SVG_ID.sub(lambda m: f"{m.group(1)}{uid}-", svg)
    return svg.replace("<svg ", '<svg class="plot-svg" role="img" ', 1)  # drawn at its size, shrinks to fit


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.set_dpi(96)
    return fig


def scatter(points: Sequence[Point], colours: Sequence[Any], uid: str) -> str:
    """Speedup against MAT, one point per run; the MAT bound (speedup = MAT), and the oracle
    efficiency line through the oracle runs (from (1, 1), the baseline) when there are any."""
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    top_mat = max([p.mat for p in points] + [2.0])
    top_speedup = max([p.speedup for p in points] + [1.5])
    ax.plot(
        [1, top_mat * 1.05], [1, top_mat * 1.05], ls=":", c="0.45", lw=1, label="MAT bound (speedup = MAT)"
    )
    ax.axhline(1.0, c="0.75", lw=0.8, zorder=0)
    oracle = sorted((p.mat, p.speedup) for p in points if p.oracle)
    if oracle:
        xs, ys = zip(*([(1.0, 1.0)] + oracle))
        ax.plot(xs, ys, ls="--", c="0.2", lw=1.2, label="oracle efficiency (free, exact draft)")
    for p, c in zip(points, colours):
        ax.scatter(
            [p.mat],
            [p.speedup],
            s=46,
            color=c,
            marker="D" if p.oracle else "o",
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=label(p.label),
        )
    ax.set_xlim(0.9, top_mat * 1.12)
    ax.set_ylim(0, max(top_speedup, top_mat) * 1.12)
    ax.set_xlabel("MAT (new tokens per target forward)")
    ax.set_ylabel("speedup (global)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _svg(fig, uid)


def _cell_text_colour(rgba: Sequence[float]) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def heatmap(
    rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]], what: str, uid: str
) -> str:
    """A method × category grid of ``what`` (speedup: diverging around 1; MAT: sequential)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, TwoSlopeNorm

    data = np.array([[math.nan if v is None else float(v) for v in row] for row in values], dtype=float)
    known = data[~np.isnan(data)]
    lo, hi = (float(known.min()), float(known.max())) if known.size else (1.0, 1.0)
    if what == "speedup":
        name, norm = "RdYlGn", TwoSlopeNorm(vcenter=1.0, vmin=min(lo, 0.99), vmax=max(hi, 1.01))
    else:
        name, norm = "viridis", Normalize(vmin=min(lo, 1.0), vmax=max(hi, lo + 0.01, 1.01))
    cmap = colormaps[name].resampled(64)  # 64 shades: a small vector colour bar
    fig = _figure(0.95 * len(columns) + 2.4, 0.32 * len(rows) + 1.3)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(np.ma.masked_invalid(data), cmap=cmap, norm=norm, edgecolors="white", linewidth=1)
    ax.set_facecolor("0.92")  # cells without a value
    for i in range(len(rows)):
        for j in range(len(columns)):
            v = data[i, j]
            colour_ = _cell_text_colour(mesh.cmap(norm(v))) if not math.isnan(v) else "0.4"
            ax.text(
                j + 0.5,
                i + 0.5,
                "—" if math.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour_,
            )
    ax.set_xticks([j + 0.5 for j in range(len(columns))])
    ax.set_xticklabels([textwrap.fill(label(c, 40), 12, break_long_words=False) for c in columns], fontsize=8)
    ax.set_yticks([i + 0.5 for i in range(len(rows))])
    ax.set_yticklabels([label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()  # first method on top, as in the tables
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(mesh, ax=ax, shrink=0.9, label="speedup (global)" if what == "speedup" else "MAT")
    bar.solids.set_rasterized(False)  # vector, not an embedded PNG: the page allows no images
    bar.solids.set_edgecolor("face")  # no seams between the bar's shades
    return _svg(fig, uid)


def acceptance(curves: Sequence[tuple[str, Sequence[float]]], colours: Sequence[Any], uid: str) -> str:
    """P(accepted drafts ≥ d) against tree depth d, one line per method."""
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    depth = 1
    for (name, probs), c in zip(curves, colours):
        xs = list(range(1, len(probs) + 1))
        depth = max(depth, len(probs))
        ax.plot(xs, probs, marker="o", ms=3.5, lw=1.4, color=c, label=label(name))
    ax.set_xlim(0.5, depth + 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(1, depth + 1, max(1, depth // 12)))
    ax.set_xlabel("tree depth d")
    ax.set_ylabel("P(accepted drafts ≥ d) per round")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _svg(fig, uid)
