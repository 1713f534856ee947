"""Build a trained proxy target, train every draft on it, benchmark every method (issue 12).

    python benchmarks/proxy_pipeline.py --family qwen25vl --size S --out /tmp/proxy_q [--stages ...]

Each stage writes into ``--out`` and is skipped when done, so the pipeline can be split over
several commands (the GPU machine runs one command for at most 10 minutes). ``--copy_to DIR``
copies the small outputs (summary, leaderboard, manifests, loss curves) there at the end.
See ``mmspec.proxy.pipeline`` for the stages.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path


def main() -> int:
    from mmspec.proxy.pipeline import METHODS, PipelineConfig, run_pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=["qwen25vl", "llava15"])
    ap.add_argument("--size", default="S", choices=["micro", "S", "M"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stages", default="build,regen,fit,harness,summary")
    ap.add_argument("--build_steps", type=int, default=None)
    ap.add_argument("--build_time_budget", type=float, default=None)
    ap.add_argument("--no_build_eval", action="store_true")
    ap.add_argument("--build_eval_seconds", type=float, default=None)
    ap.add_argument("--n_train", type=int, default=400)
    ap.add_argument("--regen_max_new_tokens", type=int, default=512)
    ap.add_argument("--fit_steps", type=int, default=4000)
    ap.add_argument("--fit_seconds", type=float, default=60.0)
    ap.add_argument("--fit_lr", type=float, default=1e-3)
    ap.add_argument("--fit_grad_accum", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit", type=int, default=None, help="samples per proxy_test task")
    ap.add_argument("--max_new_tokens", type=int, default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default=None)
    ap.add_argument("--copy_to", default=None, help="copy summary/leaderboard/manifests here at the end")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)  # fmt: skip
    cfg = PipelineConfig(
        family=args.family, out=args.out, size=args.size, seed=args.seed, build_steps=args.build_steps,
        build_time_budget=args.build_time_budget, build_eval=not args.no_build_eval,
        build_eval_seconds=args.build_eval_seconds, n_train=args.n_train,
        regen_max_new_tokens=args.regen_max_new_tokens, fit_steps=args.fit_steps, fit_seconds=args.fit_seconds,
        fit_lr=args.fit_lr, fit_grad_accum=args.fit_grad_accum, methods=tuple(args.methods.split(",")),
        limit=args.limit, max_new_tokens=args.max_new_tokens, dtype=args.dtype, device=args.device,
    )  # fmt: skip
    t0 = time.perf_counter()
    summary = run_pipeline(
        cfg, tuple(args.stages.split(",")), say=lambda m: print(m, file=sys.stderr, flush=True)
    )
    print(f"pipeline: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if summary:
        for name, m in sorted(summary.get("methods", {}).items()):
            print(
                f"{name:14s} MAT {m['mat']}  exact {m['exact_match_rate']}  depth {m['acceptance_by_depth'][:5]}"
            )
    if args.copy_to:
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        out = Path(args.out)
        stem = args.family if args.seed == 0 else f"{args.family}_seed{args.seed}"
        for name in (
            "summary.json",
            "leaderboard.json",
            "leaderboard.md",
            "leaderboard.html",
            "timings.json",
        ):
            if (out / name).exists():
                shutil.copy(out / name, dest / f"{stem}_{name}")
        extra = {p.parent.name: json.loads(p.read_text()) for p in (out / "drafts").glob("*/loss_curve.json")}
        (dest / f"{stem}_loss_curves.json").write_text(json.dumps(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
