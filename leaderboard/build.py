"""Turn results.json runs into the leaderboard: ranked entries, per-run records, settings that differ.

One entry per (run, scope, name), scope being ``overall``, ``category`` or ``task``; the scopes are
kept apart (overall entries first) and entries are ranked within their (scope, name) by the global
speedup. Runs of the same (model, spec) with different settings are all kept; their ``variant``
names the settings that tell them apart (e.g. ``dtype=float16``) and ``label`` is
``model/spec (variant)``. The JSON schema is documented in README ("Leaderboard").
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmspec.leaderboard.collect import METRIC_KEYS, PathLike, RunResults, clean, is_number, load_results
from mmspec.leaderboard.flags import entry_flags, lossless, timing_meaningful, trained
from mmspec.leaderboard.records import acceptance_by_depth, first_divergences, load_turns
from mmspec.leaderboard.settings import run_variants, setting_differences

LEADERBOARD_SCHEMA_VERSION = 2
SCOPES = ("overall", "category", "task")
_SCOPE_RANK = {s: i for i, s in enumerate(SCOPES)}
# Fields the leaderboard derives for every entry (null where their inputs are missing).
DERIVED_KEYS = (
    "n_mismatches",
    "skip_share",
    "draft_share",
    "verify_share",
    "lossless",
    "trained",
    "timing_meaningful",
    "flags",
)
# Entry fields set by the leaderboard; metric-block fields of the same name do not override them.
RESERVED_KEYS = frozenset(
    {"rank", "label", "model", "spec", "variant", "scope", "name", "config", "environment", "source",
     "created", "mmspec_version", "results_schema_version", *DERIVED_KEYS}
)  # fmt: skip


def _ratio(num: Any, den: Any) -> float | None:
    return round(num / den, 6) if is_number(num) and is_number(den) and den > 0 else None


def _mismatch_count(block: dict[str, Any]) -> int | None:
    if isinstance(block.get("mismatches"), list):
        return len(block["mismatches"])
    rate, compared = block.get("exact_match_rate"), block.get("n_compared")
    return round((1 - rate) * compared) if is_number(rate) and is_number(compared) else None


def _entry(
    run: RunResults, variant: str | None, scope: str, name: str, block: dict[str, Any]
) -> dict[str, Any]:
    label = f"{run.model}/{run.spec}" + (f" ({variant})" if variant else "")
    entry: dict[str, Any] = {"label": label, "model": run.model, "spec": run.spec, "variant": variant,
                             "scope": scope, "name": str(name)}  # fmt: skip
    for key in METRIC_KEYS:
        entry[key] = clean(block.get(key))
    entry["n_mismatches"] = _mismatch_count(block)
    entry["skip_share"] = _ratio(block.get("skipped_rounds"), block.get("rounds"))
    entry["draft_share"] = _ratio(block.get("draft_time_s"), block.get("wall_time_s"))
    entry["verify_share"] = _ratio(block.get("verify_time_s"), block.get("wall_time_s"))
    for key, value in block.items():  # pass-through of further metrics (ttft, mismatches, ...)
        if key not in entry and key not in RESERVED_KEYS:
            entry[key] = clean(value)
    entry["config"] = clean(run.config)
    entry["environment"] = clean(run.environment)
    entry["lossless"] = lossless(entry)
    entry["trained"] = trained(run.config)
    entry["timing_meaningful"] = timing_meaningful(run.model, run.config, run.environment)
    entry["flags"] = entry_flags(entry)
    entry["source"] = run.source
    entry["created"] = clean(run.data.get("created"))
    entry["mmspec_version"] = clean(run.data.get("mmspec_version"))
    entry["results_schema_version"] = clean(run.data.get("schema_version"))
    return entry


def _descending(value: Any) -> tuple[int, float]:
    return (0, -float(value)) if is_number(value) else (1, 0.0)


def sort_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Scope (overall, category, task), then name, then speedup (global, then paired) and tokens/s,
    all descending with nulls last, then model, spec, variant and source."""
    return (
        _SCOPE_RANK.get(entry.get("scope"), len(SCOPES)),
        "" if entry.get("scope") == "overall" else str(entry.get("name")),
        _descending(entry.get("speedup_global")),
        _descending(entry.get("speedup_paired")),
        _descending(entry.get("tokens_per_s")),
        str(entry.get("model")),
        str(entry.get("spec")),
        entry.get("variant") or "",
        str(entry.get("source")),
    )


def _collect(inputs: RunResults | PathLike | Iterable[RunResults | PathLike]) -> list[RunResults]:
    items = [inputs] if isinstance(inputs, (RunResults, str, os.PathLike)) else list(inputs)
    paths = [i for i in items if not isinstance(i, RunResults)]
    loaded = iter(load_results(paths)) if paths else iter(())
    runs: list[RunResults] = []
    pending_paths = True
    for item in items:  # keep RunResults where given, loaded files where their paths were
        if isinstance(item, RunResults):
            runs.append(item)
        elif pending_paths:
            runs.extend(loaded)
            pending_paths = False
    unique: list[RunResults] = []
    sources: set[str] = set()
    for run in runs:
        if run.source not in sources:
            sources.add(run.source)
            unique.append(run)
    return unique


def _ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted entries numbered from 1 within each (scope, name): rank 1 = fastest there."""
    entries = sorted(entries, key=sort_key)
    out, group, rank = [], None, 0
    for e in entries:
        key = (e["scope"], e["name"])
        rank = rank + 1 if key == group else 1
        group = key
        out.append({"rank": rank, **e})
    return out


def _run_summary(run: RunResults, overall: dict[str, Any] | None) -> dict[str, Any]:
    """What the page shows per run beyond its entries, read from the records beside results.json."""
    run_dir = Path(run.source).parent
    turns = load_turns(run_dir, [str(t) for t in run.data["tasks"]])
    block = run.data.get("overall") if isinstance(run.data.get("overall"), dict) else {}
    not_lossless = overall is not None and overall["lossless"] is False
    return {
        "label": overall["label"] if overall else f"{run.model}/{run.spec}",
        "model": run.model,
        "spec": run.spec,
        "source": run.source,
        "records_found": turns is not None,
        "acceptance_by_depth": acceptance_by_depth(turns) if turns else None,
        "n_divergences": (overall or {}).get("n_mismatches") if not_lossless else 0,
        "divergences": first_divergences(run_dir, block.get("mismatches")) if not_lossless else [],
    }


def build_leaderboard(
    inputs: RunResults | PathLike | Iterable[RunResults | PathLike], *, generated: str | None = None
) -> dict[str, Any]:
    """The leaderboard of results folders/files (or already loaded :class:`RunResults`).

    Returns ``{"schema_version", "generated", "sources", "entries", "runs", "models"}`` (see
    README); entries are sorted by :func:`sort_key` and ranked within their (scope, name).
    ``generated`` defaults to now (UTC). Raises LeaderboardError for missing folders or bad files.
    """
    runs = _collect(inputs)
    variants = run_variants(runs)
    entries = _ranked(
        [
            _entry(run, variant, scope, name, block)
            for run, variant in zip(runs, variants)
            for scope, name, block in run.metric_blocks()
        ]
    )
    overall = {e["source"]: e for e in entries if e["scope"] == "overall"}
    summaries = [_run_summary(run, overall.get(run.source)) for run in runs]
    for summary, variant in zip(summaries, variants):
        summary["variant"] = variant
    order = {s: i for i, s in enumerate(e["source"] for e in entries if e["scope"] == "overall")}
    by_rank = sorted(range(len(runs)), key=lambda i: (order.get(runs[i].source, len(order)), i))
    models: list[dict[str, Any]] = []
    for model in dict.fromkeys(runs[i].model for i in by_rank):  # fastest model first
        idxs = [i for i in by_rank if runs[i].model == model]
        labels = [summaries[i]["label"] for i in idxs]
        models.append(
            {
                "model": model,
                "runs": labels,
                "setting_differences": setting_differences([runs[i] for i in idxs], labels),
            }
        )
    return {
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "generated": generated or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": [run.source for run in runs],
        "entries": entries,
        "runs": [summaries[i] for i in by_rank],
        "models": models,
    }
