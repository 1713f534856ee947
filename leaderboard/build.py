"""Turn results.json runs into sorted leaderboard entries.

One entry per (run, scope, name), scope being ``overall``, ``category`` or ``task``. Runs of the same
(model, spec) with different settings are all kept; their ``variant`` names the settings that tell
them apart (e.g. ``dtype=float16``) and ``label`` is ``model/spec (variant)``.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmspec.leaderboard.collect import METRIC_KEYS, PathLike, RunResults, clean, is_number, load_results

LEADERBOARD_SCHEMA_VERSION = 1
SCOPES = ("overall", "category", "task")
_SCOPE_RANK = {s: i for i, s in enumerate(SCOPES)}
# Entry fields set by the leaderboard; metric-block fields of the same name do not override them.
RESERVED_KEYS = frozenset(
    {"rank", "label", "model", "spec", "variant", "scope", "name", "config", "environment", "source",
     "created", "mmspec_version", "results_schema_version"}
)  # fmt: skip

# Settings tried first when telling runs of one (model, spec) apart, most telling first.
_CONFIG_FIRST = ("dtype", "execution", "attn_implementation", "device", "pretrained", "temperature",
                 "max_new_tokens", "seed", "limit", "warmup")  # fmt: skip
_CONFIG_LAST = ("tasks", "baseline")
_ENV_FIRST = ("device_name", "cuda", "torch", "transformers", "mmspec", "git_revision", "python", "platform")
_MAX_VALUE_CHARS = 40


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        elif key == "tasks" and isinstance(v, list) and all(isinstance(t, dict) for t in v):
            out[key] = ",".join(str(t.get("task", "?")) for t in v)  # the harness's task identities
        else:
            out[key] = v
    return out


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _ordered_keys(keys: set[str], first: tuple[str, ...], last: tuple[str, ...] = ()) -> list[str]:
    head = [k for k in first if k in keys]
    tail = [k for k in last if k in keys]
    spec_args = sorted(k for k in keys if k.startswith("spec_args.") and k not in head)
    rest = sorted(keys - set(head) - set(tail) - set(spec_args))
    return head + spec_args + rest + tail


def _path_tags(sources: list[str]) -> list[str]:
    """Short names for results files: their paths less the leading and trailing parts all share."""
    parts = [Path(s).parts for s in sources]
    lo = 0
    while all(len(p) > lo for p in parts) and len({p[lo] for p in parts}) == 1:
        lo += 1
    hi = 0
    while all(len(p) - hi > lo for p in parts) and len({p[len(p) - 1 - hi] for p in parts}) == 1:
        hi += 1
    return ["/".join(p[lo : len(p) - hi]) or "." for p in parts]


def _distinguish(runs: list[RunResults]) -> list[str]:
    """Qualifiers (``key=value, ...``) that tell apart runs of one (model, spec)."""
    flats: list[dict[tuple[str, str], str]] = []
    for run in runs:
        flat = {("config", k): _show(v) for k, v in _flatten(run.config).items()}
        flat.update({("environment", k): _show(v) for k, v in _flatten(run.environment).items()})
        flats.append(flat)
    keys = {k for f in flats for k in f}
    differing = {k for k in keys if len({f.get(k, "unset") for f in flats}) > 1}
    config_keys = _ordered_keys({k for s, k in differing if s == "config"}, _CONFIG_FIRST, _CONFIG_LAST)
    env_keys = _ordered_keys({k for s, k in differing if s == "environment"}, _ENV_FIRST)
    candidates = [("config", k) for k in config_keys] + [("environment", k) for k in env_keys]

    quals: list[list[str]] = [[] for _ in runs]
    distinct = 1
    for key in candidates:  # greedily add settings while they separate more runs
        if distinct == len(runs):
            break
        trial = [q + [f"{key[1]}={f.get(key, 'unset')}"] for q, f in zip(quals, flats)]
        n = len({tuple(q) for q in trial})
        if n > distinct:
            quals, distinct = trial, n
    if distinct < len(runs):  # same settings read from several places: name the places
        same = Counter(tuple(q) for q in quals)
        tags = _path_tags([r.source for r in runs])
        quals = [q + [f"from={t}"] if same[tuple(q)] > 1 else q for q, t in zip(quals, tags)]
    texts = [", ".join(q) for q in quals]
    counts = Counter(texts)
    seen: dict[str, int] = defaultdict(int)
    out = []
    for text in texts:  # last resort, e.g. one path spelled two ways: number them
        if counts[text] > 1:
            seen[text] += 1
            text = f"{text}, #{seen[text]}" if text else f"#{seen[text]}"
        out.append(text)
    return out


def run_variants(runs: list[RunResults]) -> list[str | None]:
    """For each run, None when it is the only run of its (model, spec), else its qualifier."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, run in enumerate(runs):
        groups[(run.model, run.spec)].append(i)
    out: list[str | None] = [None] * len(runs)
    for idxs in groups.values():
        if len(idxs) > 1:
            for i, qual in zip(idxs, _distinguish([runs[i] for i in idxs])):
                out[i] = qual
    return out


def _entry(
    run: RunResults, variant: str | None, scope: str, name: str, block: dict[str, Any]
) -> dict[str, Any]:
    label = f"{run.model}/{run.spec}" + (f" ({variant})" if variant else "")
    entry: dict[str, Any] = {"label": label, "model": run.model, "spec": run.spec, "variant": variant,
                             "scope": scope, "name": str(name)}  # fmt: skip
    for key in METRIC_KEYS:
        entry[key] = clean(block.get(key))
    for key, value in block.items():  # pass-through of further metrics (ttft, mismatches, ...)
        if key not in entry and key not in RESERVED_KEYS:
            entry[key] = clean(value)
    entry["config"] = clean(run.config)
    entry["environment"] = clean(run.environment)
    entry["source"] = run.source
    entry["created"] = clean(run.data.get("created"))
    entry["mmspec_version"] = clean(run.data.get("mmspec_version"))
    entry["results_schema_version"] = clean(run.data.get("schema_version"))
    return entry


def _descending(value: Any) -> tuple[int, float]:
    return (0, -float(value)) if is_number(value) else (1, 0.0)


def sort_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Speedup (paired, then global) then tokens/s, all descending, nulls last; then by name."""
    return (
        _descending(entry.get("speedup_paired")),
        _descending(entry.get("speedup_global")),
        _descending(entry.get("tokens_per_s")),
        str(entry.get("model")),
        str(entry.get("spec")),
        _SCOPE_RANK.get(entry.get("scope"), len(SCOPES)),
        str(entry.get("name")),
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


def build_leaderboard(
    inputs: RunResults | PathLike | Iterable[RunResults | PathLike], *, generated: str | None = None
) -> dict[str, Any]:
    """The leaderboard of results folders/files (or already loaded :class:`RunResults`).

    Returns ``{"schema_version", "generated", "sources", "entries"}``; entries are sorted by
    :func:`sort_key` and numbered by ``rank`` (1 = fastest). ``generated`` defaults to now (UTC).
    Raises LeaderboardError for missing folders or bad files.
    """
    runs = _collect(inputs)
    entries = [
        _entry(run, variant, scope, name, block)
        for run, variant in zip(runs, run_variants(runs))
        for scope, name, block in run.metric_blocks()
    ]
    entries.sort(key=sort_key)
    return {
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "generated": generated or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": [run.source for run in runs],
        "entries": [{"rank": i, **e} for i, e in enumerate(entries, 1)],
    }
