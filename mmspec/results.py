"""Aggregate per-sample records into results.json: throughput, MAT, speedups, lossless check.

Definitions (also in README):
- ``mat`` = new tokens / target forwards, where target forwards = prefill + verification rounds,
  so plain decoding has MAT exactly 1.
- ``speedup_paired`` = mean over turns of (tokens/s of this run) / (tokens/s of the baseline run),
  pairing turns by (task, sample id, turn index).
- ``speedup_global`` = ratio of total tokens / total time, over the turns both runs have.
- ``exact_match_rate`` = share of paired turns whose token ids equal the baseline's (greedy only);
  mismatches list the first differing position.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from mmspec.records import RunRecords, SampleRecord, TurnKey, TurnRecord


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (or the shorter length), None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def summarize(
    samples: list[tuple[str, SampleRecord]],
    baseline: dict[TurnKey, TurnRecord] | None,
    compare_tokens: bool | Collection[str],
) -> dict[str, Any]:
    """Metrics over ``(task, record)`` pairs, against an optional baseline turn table.

    ``compare_tokens``: compare token ids with the baseline (greedy runs), for every task or for
    the tasks named."""
    ok = [(t, r) for t, r in samples if r.status == "ok"]
    turns = [((t, r.id, i), turn) for t, r in ok for i, turn in enumerate(r.turns)]
    new_tokens = sum(x.new_tokens for _, x in turns)
    wall = sum(x.wall_time_s for _, x in turns)
    prefill = sum(x.prefill_time_s for _, x in turns)
    forwards = sum(x.target_forwards for _, x in turns)
    rounds = sum(x.rounds for _, x in turns)
    accepted = sum(sum(x.accepted_per_round) for _, x in turns)
    decode_time = wall - prefill
    out: dict[str, Any] = {
        "n_samples": len(ok),
        "n_failed": len(samples) - len(ok),
        "n_turns": len(turns),
        "new_tokens": new_tokens,
        "wall_time_s": round(wall, 6),
        "prefill_time_s": round(prefill, 6),
        "ttft_mean_s": round(prefill / len(turns), 6) if turns else None,
        "tokens_per_s": round(new_tokens / wall, 4) if wall > 0 else None,
        "decode_tokens_per_s": round((new_tokens - len(turns)) / decode_time, 4) if decode_time > 0 else None,
        "mat": round(new_tokens / forwards, 4) if forwards else None,
        "rounds": rounds,
        "mean_accepted_per_round": round(accepted / rounds, 4) if rounds else None,
        "skipped_rounds": sum(x.skipped_rounds for _, x in turns),
        "draft_time_s": round(sum(x.draft_time_s for _, x in turns), 6),
        "verify_time_s": round(sum(x.verify_time_s for _, x in turns), 6),
        "speedup_paired": None,
        "speedup_global": None,
        "exact_match_rate": None,
        "n_compared": 0,
        "mismatches": [],
    }
    if baseline is None:
        return out
    compared_tasks = {t for (t, _, _), _ in turns} if compare_tokens is True else set(compare_tokens or ())
    ratios, mt, mw, bt, bw = [], 0, 0.0, 0, 0.0
    matches, mismatches = 0, []
    for key, turn in turns:
        base = baseline.get(key)
        if base is None:
            continue
        if turn.wall_time_s > 0 and base.wall_time_s > 0 and base.new_tokens > 0:
            ratios.append((turn.new_tokens / turn.wall_time_s) / (base.new_tokens / base.wall_time_s))
            mt += turn.new_tokens
            mw += turn.wall_time_s
            bt += base.new_tokens
            bw += base.wall_time_s
        if key[0] in compared_tasks:
            diff = first_difference(turn.token_ids, base.token_ids)
            if diff is None:
                matches += 1
            else:
                mismatches.append({"task": key[0], "id": key[1], "turn": key[2], "first_diff": diff})
    compared = matches + len(mismatches)
    out["speedup_paired"] = round(sum(ratios) / len(ratios), 4) if ratios else None
    out["speedup_global"] = round((mt / mw) / (bt / bw), 4) if ratios and mw > 0 and bw > 0 else None
    if compared_tasks & {t for (t, _, _), _ in turns}:
        out["n_compared"] = compared
        out["exact_match_rate"] = round(matches / compared, 6) if compared else None
        out["mismatches"] = mismatches
    return out


def build_results(
    run: RunRecords,
    baseline: RunRecords | None,
    compare_tokens: bool | Collection[str],
    task_fingerprints: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The metric sections of results.json: per task, per category, overall."""
    base_turns = baseline.turns() if baseline is not None else None
    tasks: dict[str, Any] = {}
    by_cat: dict[str, list[tuple[str, SampleRecord]]] = {}
    everything: list[tuple[str, SampleRecord]] = []
    for task, recs in sorted(run.by_task.items()):
        pairs = [(task, r) for r in recs]
        tasks[task] = summarize(pairs, base_turns, compare_tokens)
        tasks[task]["first_error"] = next((r.error for r in recs if r.status != "ok"), None)
        tasks[task]["runs"] = dict(sorted(Counter(r.run for r in recs if r.run).items()))
        if task_fingerprints and task in task_fingerprints:
            tasks[task]["task_fingerprint"] = task_fingerprints[task]
        for p in pairs:
            by_cat.setdefault(p[1].category, []).append(p)
        everything.extend(pairs)
    return {
        "tasks": tasks,
        "categories": {c: summarize(v, base_turns, compare_tokens) for c, v in sorted(by_cat.items())},
        "overall": summarize(everything, base_turns, compare_tokens),
    }


def drafted_rounds(accepted_per_round: Sequence[int], tree_size_per_round: Sequence[int] | None) -> list[int]:
    """Accepted drafts of the rounds that verified a draft: ViSkip's skipped rounds and plain steps
    (a one-node tree) say nothing about acceptance."""
    if tree_size_per_round is None or len(tree_size_per_round) != len(accepted_per_round):
        return [a for a in accepted_per_round if a >= 0]
    return [a for a, size in zip(accepted_per_round, tree_size_per_round) if size > 1 and a >= 0]


def acceptance_by_depth(accepted: Sequence[int], max_depth: int | None = None) -> list[float]:
    """Entry ``d - 1``: the share of rounds that accepted at least ``d`` drafts, ``d = 1 .. max_depth``
    (default: the most any round accepted, at least 1); empty without rounds."""
    rounds = len(accepted)
    if not rounds:
        return []
    depth = max_depth if max_depth is not None else max(1, max(accepted))
    counts = Counter(accepted)
    at_least, out = rounds, []
    for d in range(1, depth + 1):
        at_least -= counts.get(d - 1, 0)
        out.append(round(at_least / rounds, 6))
    return out
