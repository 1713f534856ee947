"""RESULTS.md's proxy tables (section 8) from the proxy pipeline's ``summary.json`` files.

    python benchmarks/proxy_tables.py benchmarks/proxy_2026-12-02/{qwen25vl,llava15}_summary.json \
        --spread benchmarks/proxy_2026-12-02/*_seed*_summary.json

Per family: MAT overall and per category, acceptance by depth, ViSkip skip share, exact match and
the (launch-bound) speedup; the targets' quality figures; with ``--spread``, each method's MAT per
seed with its range. Projected 7B speedups come from ``project_7b.py``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

CATEGORIES = (
    ("chart understanding", "chart"),
    ("complex reasoning pro", "reasoning"),
    ("general vqa", "general VQA"),
    ("image captioning", "captioning"),
    ("multi-turn conversation", "multi-turn"),
    ("text vqa", "text VQA"),
)
ORDER = ("baseline", "pld", "lookahead", "recycling", "sam", "medusa", "eagle", "eagle2", "eagle3", "msd",
         "vispec", "vispec_vskip", "msd_vskip", "sam_vskip")  # fmt: skip


def _f(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _methods(summary: dict) -> list[str]:
    found = summary["methods"]
    return [m for m in ORDER if m in found] + sorted(set(found) - set(ORDER))


def method_table(summary: dict) -> str:
    head = ["method", "MAT", *(short for _, short in CATEGORIES),
            "accept ≥1 / ≥2 / ≥3 / ≥4", "skipped rounds", "exact match", "speedup (launch-bound)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in _methods(summary):
        m = summary["methods"][name]
        cats = [_f((m["categories"].get(c) or {}).get("mat")) for c, _ in CATEGORIES]
        depth = m.get("acceptance_by_depth") or []
        depth_s = " / ".join(_f(d) for d in depth[:4]) if depth else "—"
        skip = m.get("skipped_share")
        skip_s = f"{skip:.0%}" if skip else "—"
        exact = f"{_f(m['exact_match_rate'], 3)} ({m['n_compared']})" if m.get("n_compared") else "—"
        lines.append("| " + " | ".join([name, f"**{_f(m['mat'])}**", *cats, depth_s, skip_s, exact,
                                        _f(m.get("speedup_global"))]) + " |")  # fmt: skip
    return "\n".join(lines)


def target_table(summaries: list[dict]) -> str:
    head = ["target", "seed", "build steps", "excess loss", "accuracy count / chart / position / attribute",
            "image dependence", "degenerate", "mean top-1", "gates passed"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        t = s["target"]
        q, gates = t.get("quality") or {}, t.get("gates") or {}
        acc = q.get("accuracy", {})
        lines.append("| " + " | ".join([
            f"{t['family']} {t['size']}", str(t["seed"]), str(t["training"]["steps"]),
            _f(t["heldout"]["excess_loss"]),
            " / ".join(_f(acc.get(k)) for k in ("count", "chart", "position", "attribute")),
            _f(q.get("image_dependence_all")), _f((gates.get("degenerate") or {}).get("value")),
            _f(q.get("mean_top1_prob")), f"{sum(g['passed'] for g in gates.values())} / {len(gates)}",
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def spread_table(summaries: list[dict]) -> str:
    by: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for s in summaries:
        fam, seed = s["pipeline"]["family"], s["pipeline"]["seed"]
        for name, m in s["methods"].items():
            by[(fam, name)][seed] = m["mat"]
    lines = ["| family | method | MAT per seed | range (max − min) |", "|---|---|---|---|"]
    for (fam, name), mats in sorted(by.items(), key=lambda kv: (kv[0][0], ORDER.index(kv[0][1])
                                                                 if kv[0][1] in ORDER else 99)):  # fmt: skip
        if len(mats) < 2 or name == "baseline":
            continue
        per_seed = " / ".join(f"{mats[k]:.2f}" for k in sorted(mats))
        lines.append(f"| {fam} | {name} | {per_seed} (seeds {', '.join(map(str, sorted(mats)))}) | "
                     f"{max(mats.values()) - min(mats.values()):.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summaries", nargs="+", help="one summary.json per family (the headline run)")
    ap.add_argument("--spread", nargs="*", default=[], help="summaries of the same recipe at other seeds")
    args = ap.parse_args()
    main_runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.summaries]
    others = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.spread]
    for s in main_runs:
        p = s["pipeline"]
        print(f"\n**{p['family']} proxy ({p['size']}, seed {p['seed']})**\n\n{method_table(s)}")
    print(f"\n**Targets**\n\n{target_table(main_runs + others)}")
    if others:
        print(f"\n**Seed spread**\n\n{spread_table(main_runs + others)}")


if __name__ == "__main__":
    main()
