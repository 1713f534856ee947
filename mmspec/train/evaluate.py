"""A draft's acceptance on held-out prompts (``mmspec-train eval``; also called by ``fit``).

Every turn runs twice through :class:`~mmspec.engine.Engine` on the same adapter: the baseline
(plain decoding) and the method, each with its own earlier answers as history, seeds from
:func:`~mmspec.harness.turn_seed` — exactly what two ``mmspec-harness`` runs would do. The turns
become the harness's records (:func:`~mmspec.harness.turn_record`) and the metrics are the
harness's (:func:`~mmspec.results.summarize`: MAT, accepted per round, exact match against the
baseline's token ids), plus what a draft's trainer wants to see: acceptance by depth.

At temperature > 0 the two runs sample differently by design, so the baseline is skipped and the
exact-match rate is null.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mmspec.engine import Engine
from mmspec.errors import UsageError
from mmspec.harness import prepare_execution, target_identity, turn_record, turn_seed
from mmspec.methods.baseline import Baseline
from mmspec.progress import Progress
from mmspec.records import SampleRecord
from mmspec.results import acceptance_by_depth, drafted_rounds, summarize
from mmspec.train.data import Conversation
from mmspec.train.examples import VICUNA_SYSTEM, load_images, turn_prompt

#: the task part of every turn's seed and of the records' keys
SEED_TASK = "eval"


def accepted_histogram(accepted_per_round: list[int]) -> list[int]:
    """Entry ``n``: how many rounds accepted exactly ``n`` draft tokens."""
    counts = Counter(accepted_per_round)
    return [counts.get(n, 0) for n in range(max(accepted_per_round, default=-1) + 1)]


def run_conversation(
    engine: Engine,
    conv: Conversation,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    system_prompt: str | None,
    images: list[Any] | None = None,
) -> SampleRecord:
    """Every turn of ``conv`` through ``engine``, history = this engine's own answers (the harness's
    turn loop), as a harness record."""
    adapter = engine.adapter
    images = load_images(conv) if images is None else images
    engine.drafter.reset()
    history: list[str] = []
    turns = []
    for k in range(len(conv.turns)):
        prompt = turn_prompt(adapter, conv, k, history, images, system_prompt)
        res = engine.generate(prompt, max_new_tokens, temperature, turn_seed(seed, SEED_TASK, conv.id, k),
                              key=(SEED_TASK, conv.id, k))  # fmt: skip
        text = adapter.decode(res.token_ids)
        history.append(text)
        turns.append(turn_record(res, text))
    return SampleRecord(id=conv.id, task=SEED_TASK, category=conv.category or "", subcategory=None,
                        status="ok", turns=turns)  # fmt: skip


def evaluate_draft(
    adapter: Any,
    drafter: Any,
    conversations: list[Conversation],
    *,
    max_new_tokens: int = 1024,
    temperature: float = 0.0,
    seed: int = 0,
    system_prompt: str | None = VICUNA_SYSTEM,
    max_depth: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The acceptance report of ``drafter`` on ``conversations`` (only their user turns are used).

    Returns ``{"settings", "overall", "categories"}``; ``overall`` and each category hold the
    harness's metrics (``mat``, ``mean_accepted_per_round``, ``rounds``, ``new_tokens``,
    ``exact_match_rate``, ``mismatches`` ...) plus ``acceptance_by_depth`` and ``accepted_histogram``.
    """
    if max_new_tokens < 1:
        raise UsageError(f"--max_new_tokens must be at least 1, got {max_new_tokens}")
    greedy = float(temperature) == 0.0
    engine = Engine(adapter, drafter)
    base_engine = Engine(adapter, Baseline(adapter)) if greedy else None
    if base_engine is not None:
        prepare_execution(adapter, base_engine.drafter)
    prepare_execution(adapter, drafter)
    gen = dict(max_new_tokens=max_new_tokens, temperature=float(temperature), seed=seed,
               system_prompt=system_prompt)  # fmt: skip

    records: list[SampleRecord] = []
    base: list[SampleRecord] = []
    label = f"eval {getattr(drafter, 'name', 'draft')}"
    with Progress(label, total=len(conversations)) if progress else _NoProgress() as bar:
        for conv in conversations:
            images = load_images(conv)
            if base_engine is not None:
                base.append(run_conversation(base_engine, conv, images=images, **gen))
            records.append(run_conversation(engine, conv, images=images, **gen))
            bar.update(records[-1])

    base_turns = {(SEED_TASK, r.id, i): t for r in base for i, t in enumerate(r.turns)} if greedy else None

    def metrics(recs: list[SampleRecord]) -> dict[str, Any]:
        out = summarize([(SEED_TASK, r) for r in recs], base_turns, compare_tokens=greedy)
        accepted = [
            a
            for r in recs
            for t in r.turns
            for a in drafted_rounds(t.accepted_per_round, t.tree_size_per_round)
        ]
        out["target_forwards"] = sum(t.target_forwards for r in recs for t in r.turns)
        out["acceptance_by_depth"] = acceptance_by_depth(accepted, max_depth)
        out["accepted_histogram"] = accepted_histogram(accepted)
        return out

    by_cat: dict[str, list[SampleRecord]] = {}
    for r in records:
        if r.category:
            by_cat.setdefault(r.category, []).append(r)
    return {
        "settings": {
            "model": getattr(adapter, "registry_name", None),
            **target_identity(adapter),
            "spec": getattr(drafter, "name", None),
            "spec_args": drafter.describe(),
            **gen,
            "n_conversations": len(conversations),
        },
        "overall": metrics(records),
        "categories": {c: metrics(v) for c, v in sorted(by_cat.items())},
    }


def format_report(report: dict[str, Any]) -> str:
    """A short table: one row overall and one per category, then acceptance by depth."""
    s = report["settings"]
    head = (
        f"{s['model']} / {s['spec']}  (temperature {s['temperature']}, max_new_tokens {s['max_new_tokens']})"
    )
    cols = ["scope", "conversations", "turns", "tokens", "rounds", "MAT", "acc/round", "exact"]
    scopes = [("overall", report["overall"]), *report["categories"].items()]
    rows = [[name, str(m["n_samples"]), str(m["n_turns"]), str(m["new_tokens"]), str(m["rounds"]),
             _fmt(m["mat"], ".3f"), _fmt(m["mean_accepted_per_round"], ".3f"),
             _fmt(m["exact_match_rate"], ".3f")] for name, m in scopes]  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    depth = report["overall"]["acceptance_by_depth"]
    by_depth = "  ".join(f">={d}: {v:.3f}" for d, v in enumerate(depth, 1)) or "no rounds"
    return "\n".join([head, line(cols), sep, *(line(r) for r in rows), f"acceptance by depth  {by_depth}"])


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, record: Any) -> None:
        pass
