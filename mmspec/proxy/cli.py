"""``mmspec-proxy``: build a trained proxy target, or export generator prompts for draft training."""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    # cuBLAS reads this when it starts: set before anything touches CUDA (deterministic GEMMs).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    from mmspec.proxy.presets import FAMILIES, PRESETS

    parser = argparse.ArgumentParser(prog="mmspec-proxy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train a proxy target from scratch and write it with its manifest")
    b.add_argument("--family", required=True, choices=FAMILIES)
    b.add_argument("--size", default="M", choices=list(PRESETS))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True, help="output folder (save_pretrained layout + manifest.json)")
    b.add_argument(
        "--max_steps", type=int, default=None, help="exact step count (reproducible; wins over time)"
    )
    b.add_argument("--time_budget", type=float, default=None, help="training seconds (sets the step count)")
    b.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    b.add_argument(
        "--workers", type=int, default=None, help="data worker processes (default: CPUs-2 on CUDA, 0 on CPU)"
    )
    b.add_argument("--no_eval", action="store_true", help="skip the greedy quality gates")
    e = sub.add_parser("export", help="write generator prompts (JSONL + images) for draft training")
    e.add_argument("--out", required=True)
    e.add_argument("--n", type=int, required=True)
    e.add_argument(
        "--seed_start", type=int, default=None, help="first seed of the range (default: draft seeds)"
    )
    e.add_argument("--seeds", type=int, default=1, help="number of seeds in the range")
    e.add_argument("--size", type=int, default=448, help="image side in pixels")
    args = parser.parse_args(argv)
    if args.command == "build":
        from mmspec.proxy.build import build

        manifest = build(
            args.family,
            args.size,
            args.seed,
            args.out,
            max_steps=args.max_steps,
            time_budget=args.time_budget,
            device=args.device,
            workers=args.workers,
            evaluate=not args.no_eval,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        summary = {
            k: manifest[k] for k in ("family", "size", "seed", "weights_sha256", "heldout", "build_seconds")
        }
        summary["steps"] = manifest["training"]["steps"]
        summary["gates"] = {k: v["passed"] for k, v in manifest.get("gates", {}).items()}
        print(json.dumps(summary, indent=2))
        return 0
    from mmspec.proxy.export import export_prompts
    from mmspec.proxy.splits import DRAFT_SEEDS

    start = DRAFT_SEEDS.start if args.seed_start is None else args.seed_start
    path = export_prompts(args.out, range(start, start + args.seeds), args.n, size=args.size)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
