"""``mmspec-leaderboard``: aggregate results.json files into a leaderboard (JSON, Markdown, HTML)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mmspec.leaderboard import plots
from mmspec.leaderboard.build import build_leaderboard
from mmspec.leaderboard.collect import LeaderboardError
from mmspec.leaderboard.markdown import render_markdown
from mmspec.leaderboard.page import render_html

PROG = "mmspec-leaderboard"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Aggregate the results.json files written by mmspec-harness into a leaderboard. "
        "The Markdown table is printed to stdout.",
    )
    p.add_argument("paths", nargs="+", metavar="RESULTS_DIR",
                   help="folder searched recursively for results.json, or a results.json file")  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="write the leaderboard JSON here")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown tables here")
    p.add_argument(
        "--html", metavar="FILE", help="also write the static HTML page here (figures need mmspec[plots])"
    )
    p.add_argument("--title", default="mmspec leaderboard", help="title of the HTML page")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    return p


def _write(path: str, text: str, sources: list[str]) -> None:
    target = Path(path)
    if target.exists() and any(target.resolve() == Path(s).resolve() for s in sources):
        raise LeaderboardError(f"{path}: refusing to overwrite an input results file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise LeaderboardError(f"{path}: cannot write: {e.strerror or e}") from None
    print(f"{PROG}: wrote {path}", file=sys.stderr)


def _print(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except UnicodeEncodeError:  # a terminal that cannot show e.g. the null mark
        enc = sys.stdout.encoding or "ascii"
        sys.stdout.buffer.write(text.encode(enc, errors="backslashreplace"))
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 bad input or unwritable output)."""
    args = build_parser().parse_args(argv)
    try:
        leaderboard = build_leaderboard(args.paths)
        table = render_markdown(leaderboard)
        if not args.quiet:
            _print(table)
        sources = leaderboard["sources"]
        if args.output:
            text = json.dumps(leaderboard, indent=2, ensure_ascii=False, allow_nan=False)
            _write(args.output, text + "\n", sources)
        if args.markdown:
            _write(args.markdown, table, sources)
        if args.html:
            _write(args.html, render_html(leaderboard, title=args.title), sources)
            if not plots.available():
                print(f"{PROG}: note: matplotlib is not installed, so the page has tables but no figures "
                      f"({plots.INSTALL_HINT})", file=sys.stderr)  # fmt: skip
    except LeaderboardError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
