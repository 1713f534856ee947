"""A short human-readable summary of results.json, printed at the end of a run."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_summary(results: dict[str, Any]) -> str:
    head = f"{results['model']} / {results['spec']}"
    cols = ["scope", "name", "samples", "turns", "tokens", "tok/s", "MAT", "speedup", "speedup(g)", "exact"]
    rows = []
    for scope in ("tasks", "categories"):
        for name, m in results.get(scope, {}).items():
            rows.append([scope[:-1] if scope == "tasks" else "category", name, str(m["n_samples"]),
                         str(m["n_turns"]), str(m["new_tokens"]), _fmt(m["tokens_per_s"], ".1f"),
                         _fmt(m["mat"], ".2f"), _fmt(m["speedup_paired"], ".2f"),
                         _fmt(m["speedup_global"], ".2f"), _fmt(m["exact_match_rate"], ".3f")])  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([head, line(cols), sep, *(line(r) for r in rows)])
