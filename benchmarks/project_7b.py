"""Projected 7B speedups from acceptance measured on the proxy targets.

A 20M proxy model is launch-bound, so its measured speedups say nothing about a 7B target. What
transfers is acceptance: a method that verifies MAT tokens per target forward on average, at a
per-round cost of (draft + verify) ms on the 7B architecture, decodes at about

    speedup ≈ MAT × baseline_ms_per_token / (draft_ms + verify_ms)

The per-round costs below are the measured 7B figures of RESULTS.md (H100 80GB, bf16, graph mode,
1k context, random weights): section 6 for the draft-model methods and the ViSkip variants, sections
2 and 5 (verify cost at the method's tree bucket + host time per round) for the training-free ones.
A ViSkip variant's cost per round mixes its skipped rounds (the ``skip`` row: gate + plain step)
and its drafted rounds (the ``noskip`` row) by the skip share measured on the proxy.

    python benchmarks/project_7b.py results/qwen25vl_summary.json results/llava15_summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: family -> method -> (draft ms, verify ms) per round on the 7B architecture (RESULTS.md, H100)
COSTS: dict[str, dict[str, tuple[float, float]]] = {
    "qwen25vl": {
        "baseline": (0.0, 7.81),
        "medusa": (1.01, 9.34), "eagle": (4.46, 9.39), "eagle2": (3.90, 9.36), "eagle3": (4.31, 9.63),
        "msd": (6.09, 10.10), "vispec": (4.02, 9.38),
        "vispec_vskip:skip": (0.79, 7.71), "vispec_vskip:noskip": (4.60, 9.55),
        "msd_vskip:skip": (0.97, 7.81), "msd_vskip:noskip": (6.77, 10.30),
        "sam_vskip:skip": (0.72, 7.49), "sam_vskip:noskip": (0.84, 7.95),
        # training-free: verify at the tree bucket (table 2) + host time per round (table 5)
        "pld": (0.07, 8.36 + 0.50), "sam": (0.07, 8.51 + 0.50),
        "lookahead": (0.10, 8.80 + 0.50), "recycling": (0.10, 8.80 + 0.50),
    },
    "llava15": {
        "baseline": (0.0, 8.09),
        "medusa": (0.83, 9.03), "eagle": (2.84, 8.81), "eagle2": (2.69, 9.05), "eagle3": (2.75, 8.73),
        "msd": (4.24, 10.07), "vispec": (2.85, 8.99),
        "vispec_vskip:skip": (0.93, 7.90), "vispec_vskip:noskip": (3.48, 9.10),
        "msd_vskip:skip": (1.06, 7.96), "msd_vskip:noskip": (5.01, 10.09),
        "sam_vskip:skip": (0.85, 8.02), "sam_vskip:noskip": (0.90, 8.24),
        "pld": (0.06, 8.01 + 0.37), "sam": (0.06, 8.04 + 0.37),
        "lookahead": (0.10, 8.66 + 0.37), "recycling": (0.10, 8.66 + 0.37),
    },
}  # fmt: skip


def round_cost(costs: dict[str, tuple[float, float]], method: str, skip_share: float) -> float:
    """Mean ms per round of ``method``; ViSkip variants mix skipped and drafted rounds."""
    if f"{method}:skip" in costs:
        skipped, drafted = sum(costs[f"{method}:skip"]), sum(costs[f"{method}:noskip"])
        return skip_share * skipped + (1 - skip_share) * drafted
    return sum(costs[method])


def project(summary: dict) -> list[dict]:
    """One row per method of a proxy pipeline summary: MAT and the projected 7B speedup."""
    family = summary["pipeline"]["family"]
    costs = COSTS[family]
    base = sum(costs["baseline"])
    rows = []
    for method, m in sorted(summary["methods"].items()):
        cost = round_cost(costs, method, m.get("skipped_share") or 0.0)
        rows.append({"family": family, "method": method, "mat": m["mat"], "ms_per_round": round(cost, 2),
                     "projected_speedup": round(m["mat"] * base / cost, 2)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", nargs="+", help="summary.json files written by the proxy pipeline")
    args = parser.parse_args()
    print("| family | method | proxy MAT | 7B ms/round | projected 7B speedup |")
    print("|---|---|---|---|---|")
    for path in args.summaries:
        for r in project(json.loads(Path(path).read_text(encoding="utf-8"))):
            print(f"| {r['family']} | {r['method']} | {r['mat']:.2f} | {r['ms_per_round']:.2f} | "
                  f"{r['projected_speedup']:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
