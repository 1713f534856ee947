"""Logging for the command-line tools: one format everywhere, and ``[rank/size]`` on every line in a
launch of several processes (so interleaved logs say which process wrote them)."""

from __future__ import annotations

import logging
import sys

from mmspec.errors import UsageError


def rank_prefix() -> str:
    """``[rank/size] `` in a launch of several processes, else empty (a bad launcher variable is
    reported later, where the launch is planned)."""
    from mmspec.distributed import launch_position

    try:
        rank, size = launch_position()
    except UsageError:
        return ""
    return f"[{rank}/{size}] " if size > 1 else ""


def configure_logging(verbose: bool) -> None:
    """INFO (DEBUG with ``-v``) to stderr with a time stamp and the process's rank prefix."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s " + rank_prefix() + "%(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
