"""Run settings and environment: what tells runs apart, and what differs between compared runs.

Two uses: ``variant`` names for runs of one (model, spec) read from several places, and the list
of settings that differ between the runs shown side by side for one model (flagged on the page,
since a speedup measured under other settings is not comparable).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from mmspec.leaderboard.collect import RunResults, clean

# Settings tried first when telling runs of one (model, spec) apart, most telling first.
_CONFIG_FIRST = ("dtype", "execution", "attn_implementation", "device", "pretrained", "temperature",
                 "max_new_tokens", "seed", "limit", "warmup")  # fmt: skip
_CONFIG_LAST = ("tasks", "baseline")
_ENV_FIRST = ("device_name", "cuda", "torch", "transformers", "mmspec", "git_revision", "python", "platform")
_MAX_VALUE_CHARS = 40
# Settings that differ between methods by design: not flagged when runs of one model are compared.
_PER_METHOD = ("spec", "spec_args", "method")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``a.b.c`` keys; the harness's task list becomes a comma list of names."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        elif key == "tasks" and isinstance(v, list) and all(isinstance(t, dict) for t in v):
            out[key] = ",".join(str(t.get("task", "?")) for t in v)  # the harness's task identities
        else:
            out[key] = v
    return out


def show(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """A setting's value as short text (JSON for non-strings, cut with an ellipsis)."""
    text = value if isinstance(value, str) else json.dumps(clean(value), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _settings(run: RunResults, limit: int = _MAX_VALUE_CHARS) -> dict[tuple[str, str], str]:
    flat = {("config", k): show(v, limit) for k, v in flatten(run.config).items()}
    flat.update({("environment", k): show(v, limit) for k, v in flatten(run.environment).items()})
    return flat


def _distinguish(runs: list[RunResults]) -> list[str]:
    """Qualifiers (``key=value, ...``) that tell apart runs of one (model, spec)."""
    flats = [_settings(run) for run in runs]
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


def _per_method(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in _PER_METHOD)


def setting_differences(runs: list[RunResults], labels: list[str]) -> list[dict[str, Any]]:
    """Settings and environment fields whose values differ between ``runs`` (one model's runs).

    Per-method settings (``spec``, ``spec_args.*``, ``method.*``) differ by design and are left
    out. Each item: ``{"key": "config.dtype", "values": [{"label", "source", "value"}, ...]}``, values as
    short text (``unset`` where a run lacks the field); config keys first, then environment.
    """
    if len(runs) < 2:
        return []
    flats = [_settings(run, limit=80) for run in runs]
    keys = {k for f in flats for k in f if not (k[0] == "config" and _per_method(k[1]))}
    differing = {k for k in keys if len({f.get(k, "unset") for f in flats}) > 1}
    config_keys = _ordered_keys({k for s, k in differing if s == "config"}, _CONFIG_FIRST, _CONFIG_LAST)
    env_keys = _ordered_keys({k for s, k in differing if s == "environment"}, _ENV_FIRST)
    ordered = [("config", k) for k in config_keys] + [("environment", k) for k in env_keys]
    return [
        {
            "key": f"{section}.{key}",
            "values": [
                {"label": label, "source": run.source, "value": f.get((section, key), "unset")}
                for label, run, f in zip(labels, runs, flats)
            ],
        }
        for section, key in ordered
    ]
