"""Aggregate ``results.json`` files written by the harness into a leaderboard.

>>> from mmspec.leaderboard import build_leaderboard, render_markdown
>>> print(render_markdown(build_leaderboard(["results/"])))  # doctest: +SKIP

The JSON (``build_leaderboard``) is the canonical output; ``render_markdown`` and ``render_html``
are views of it.
"""

from mmspec.leaderboard.build import LEADERBOARD_SCHEMA_VERSION, build_leaderboard, sort_key
from mmspec.leaderboard.collect import (
    METRIC_KEYS,
    LeaderboardError,
    RunResults,
    find_results_files,
    load_results,
    read_results_file,
)
from mmspec.leaderboard.flags import FLAGS
from mmspec.leaderboard.markdown import render_markdown
from mmspec.leaderboard.page import render_html

__all__ = [
    "FLAGS",
    "LEADERBOARD_SCHEMA_VERSION",
    "METRIC_KEYS",
    "LeaderboardError",
    "RunResults",
    "build_leaderboard",
    "find_results_files",
    "load_results",
    "read_results_file",
    "render_html",
    "render_markdown",
    "sort_key",
]
