"""Per-round records beside a results.json: acceptance by tree depth and the first divergences.

The harness writes ``<run>/<task>/samples.jsonl`` next to ``<run>/results.json``; the leaderboard
reads them, when present, for what results.json does not hold. Records are untrusted input like the
results: unreadable lines and fields of the wrong type are skipped (never fatal), and a task name
is only used as a path when it is one plain path component.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmspec.leaderboard.collect import is_number
from mmspec.results import acceptance_by_depth as by_depth
from mmspec.results import drafted_rounds

SAMPLES_FILENAME = "samples.jsonl"
BASELINE_SPEC = "baseline"
MAX_DEPTH = 32  # acceptance curves stop here (drafts are rarely deeper)
MAX_DIVERGENCES = 5  # per method: the first few tell what goes wrong
CONTEXT_CHARS = 48
CONTEXT_TOKENS = 4

TurnKey = tuple[str, str, int]  # (task, sample id, turn index)


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The sample records of one samples.jsonl (last line wins per id); bad lines are skipped."""
    by_id: dict[str, dict[str, Any]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    continue  # e.g. the torn last line of a killed run
                if isinstance(rec, dict) and isinstance(rec.get("id"), (str, int)):
                    by_id[str(rec["id"])] = rec
    except OSError:
        return []
    return list(by_id.values())


def load_turns(run_dir: Path, tasks: Iterable[str]) -> dict[TurnKey, dict[str, Any]] | None:
    """Every turn of the finished samples of ``tasks`` under ``run_dir``; None when no task has records."""
    turns: dict[TurnKey, dict[str, Any]] = {}
    found = False
    for task in tasks:
        path = run_dir / task / SAMPLES_FILENAME
        if not _plain_name(task) or not path.is_file():
            continue
        found = True
        for rec in read_samples(path):
            if rec.get("status", "ok") != "ok" or not isinstance(rec.get("turns"), list):
                continue
            for i, turn in enumerate(rec["turns"]):
                if isinstance(turn, dict):
                    turns[(task, str(rec["id"]), i)] = turn
    return turns if found else None


def _drafted_rounds(turn: dict[str, Any]) -> list[int]:
    """Accepted counts of the rounds that verified a draft (:func:`mmspec.results.drafted_rounds`)."""
    return drafted_rounds(
        _int_list(turn.get("accepted_per_round")) or [], _int_list(turn.get("tree_size_per_round"))
    )


def acceptance_by_depth(turns: dict[TurnKey, dict[str, Any]]) -> dict[str, Any] | None:
    """``{"rounds", "p_at_least"}``: over drafted rounds, P(accepted drafts ≥ d) for d = 1, 2, ….

    None when no round verified a draft (the baseline). The curve ends at the deepest acceptance
    seen (at least depth 1, at most :data:`MAX_DEPTH`).
    """
    accepted = [a for turn in turns.values() for a in _drafted_rounds(turn)]
    if not accepted:
        return None
    return {"rounds": len(accepted), "p_at_least": by_depth(accepted, min(max(max(accepted), 1), MAX_DEPTH))}


def _mismatch_keys(mismatches: Any) -> list[tuple[TurnKey, int]]:
    out = []
    for m in mismatches if isinstance(mismatches, list) else []:
        if not isinstance(m, dict):
            continue
        task, sid, turn, pos = m.get("task"), m.get("id"), m.get("turn"), m.get("first_diff")
        if isinstance(task, str) and isinstance(sid, (str, int)) and is_number(turn) and is_number(pos):
            out.append(((task, str(sid), int(turn)), int(pos)))
    return out


def _text_context(run_text: Any, base_text: Any) -> dict[str, str] | None:
    if not isinstance(run_text, str) or not isinstance(base_text, str):
        return None
    c = next((i for i, (a, b) in enumerate(zip(run_text, base_text)) if a != b), None)
    if c is None:
        c = min(len(run_text), len(base_text))
    return {
        "before": run_text[max(0, c - CONTEXT_CHARS) : c],
        "run": run_text[c : c + CONTEXT_CHARS],
        "baseline": base_text[c : c + CONTEXT_CHARS],
    }


def first_divergences(run_dir: Path, mismatches: Any, limit: int = MAX_DIVERGENCES) -> list[dict[str, Any]]:
    """The first ``limit`` turns that differ from the baseline, with the texts around the difference.

    ``mismatches`` is the run's results.json list (task, id, turn, first_diff). The texts come from
    this run's records and the baseline's, ``<run_dir>/../baseline`` (where the harness found it);
    where records are missing the item has ``"text": null`` and ``"tokens": null``.
    """
    keys = _mismatch_keys(mismatches)[:limit]
    tasks = sorted({k[0] for k, _ in keys})
    run_turns = load_turns(run_dir, tasks) or {}
    base_turns = load_turns(run_dir.parent / BASELINE_SPEC, tasks) or {}
    out = []
    for key, pos in keys:
        mine, base = run_turns.get(key, {}), base_turns.get(key, {})
        ids, base_ids = _int_list(mine.get("token_ids")), _int_list(base.get("token_ids"))
        start = max(0, pos - CONTEXT_TOKENS)
        tokens = None
        if ids is not None and base_ids is not None:
            tokens = {
                "start": start,
                "run": ids[start : pos + CONTEXT_TOKENS],
                "baseline": base_ids[start : pos + CONTEXT_TOKENS],
            }
        out.append(
            {
                "task": key[0],
                "id": key[1],
                "turn": key[2],
                "position": pos,
                "tokens": tokens,
                "text": _text_context(mine.get("text"), base.get("text")),
            }
        )
    return out
