"""Shared helpers for the leaderboard page tests: what they need installed, and when to skip.

A missing Chromium or matplotlib skips the page tests with a one-line reason on a developer's
machine, and fails them where ``MMSPEC_REQUIRE_BROWSER`` is set (``.ci/run`` sets it), so CI can
never pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def _missing(what: str) -> None:
    if os.environ.get("MMSPEC_REQUIRE_BROWSER"):
        pytest.fail(f"{what} (required: MMSPEC_REQUIRE_BROWSER is set)", pytrace=False)
    pytest.skip(what)


def require_plots() -> None:
    """matplotlib, the ``plots`` extra, is installed."""
    from mmspec.leaderboard import plots

    if not plots.available():
        _missing('matplotlib missing: pip install -e ".[plots]"')


def require_chromium() -> str:
    """The path of headless-capable Chromium (Debian's ``chromium`` package)."""
    from mmspec.leaderboard.browser import find_chromium

    exe = find_chromium()
    if exe is None:
        _missing("chromium missing: apt-get install chromium (or set MMSPEC_CHROMIUM)")
    return exe
