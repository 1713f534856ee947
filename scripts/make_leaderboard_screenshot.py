"""Make ``docs/leaderboard.png``, the README's picture of the leaderboard page.

Runs the tiny Qwen2.5-VL model (random weights, CPU) with several specs on the built-in demo task
through ``mmspec-harness``, builds the page with ``mmspec-leaderboard --html`` and photographs it
in headless Chromium. Tiny-model timings are not meaningful, and the page says so: the picture
shows the layout, not results.

    python scripts/make_leaderboard_screenshot.py [--out docs/leaderboard.png] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mmspec.cli import main as harness
from mmspec.leaderboard.browser import open_page
from mmspec.leaderboard.cli import main as leaderboard

MODEL = "tiny-qwen25vl"
SPECS = (
    ("baseline", None),
    ("pld", None),
    ("oracle", None),
    ("sam_vskip", "visual_attn_threshold=0.2"),
    ("eagle2", "checkpoint=random"),
)
SIZE = (1280, 2200)  # the top of the page: ranking and plots
MAX_BYTES = 200_000


def make_runs(out: Path) -> None:
    for spec, args in SPECS:
        cmd = ["--tasks", "mmspec_demo", "--model", MODEL, "--spec", spec, "--output_path", str(out),
               "--max_new_tokens", "24", "--warmup", "1"]  # fmt: skip
        if args:
            cmd += ["--spec_args", args]
        if harness(cmd) != 0:
            raise SystemExit(f"mmspec-harness failed for --spec {spec}")


def shrink(png: Path, out: Path) -> None:
    """A palette PNG (the page has few colours) so the README's picture stays small."""
    from PIL import Image

    with Image.open(png) as im:
        im.convert("RGB").quantize(colors=256).save(out, optimize=True)
    if out.stat().st_size > MAX_BYTES:
        print(f"warning: {out} is {out.stat().st_size} bytes (> {MAX_BYTES})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/leaderboard.png"))
    p.add_argument("--keep", type=Path, help="keep the runs and the page in this folder")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmspec-screenshot-") as tmp:
        work = args.keep or Path(tmp)
        results, page = work / "results", work / "leaderboard.html"
        make_runs(results)
        if leaderboard([str(results), "--html", str(page), "-q"]) != 0:
            return 1
        view = open_page(page, screenshot=work / "raw.png", size=SIZE)
        if view.console:
            print("browser console:", *view.console, sep="\n  ", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shrink(work / "raw.png", args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
