"""Quality gates measured on held-out samples, through the harness's own engine.

The saved folder is loaded with :func:`mmspec.adapters.load_model` (the path every benchmark run
takes) and decoded greedily by :class:`mmspec.engine.Engine` with the ``baseline`` drafter, turn by
turn with the model's own earlier answers, as the harness does. Reported: accuracy per quality
family (exact facts from the generator), image dependence (first answers that change when the image
is swapped for another scene of the same kind), degenerate outputs (a block repeated back to back
or no stop token), and the target's confidence along its own greedy output (top-1 probability and
near-ties, from one teacher-forced forward per answer).
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch

from mmspec.proxy.generator import CATEGORIES, SYSTEM_PROMPT, ProxySample, sample
from mmspec.tasks.messages import mmspec_chat

NEAR_TIE = 0.05
SWAP_TOKENS = 64  # enough to see whether an answer follows the image


def eval_samples(seed: int, per_category: int, size: int, limit: int = 100000) -> list[ProxySample]:
    """The first ``per_category`` samples of each category of stream ``seed``, categories interleaved
    (so an evaluation cut short by its time limit still covers every category)."""
    got: dict[str, list[ProxySample]] = {c: [] for c in CATEGORIES}
    for i in range(limit):
        s = sample(seed, i, size=None)
        if len(got[s.category]) < per_category:
            got[s.category].append(sample(seed, i, size=size))
        if all(len(v) >= per_category for v in got.values()):
            break
    return [got[c][k] for k in range(per_category) for c in CATEGORIES if k < len(got[c])]


def facts_ok(answer: str, facts) -> bool:
    """Every slot has an alternative in ``answer`` as a whole word or phrase; text read from a sign
    (quoted, or in capitals) must match its case, other words need not."""
    return all(any(_mentions(answer, a) for a in alternatives) for alternatives in facts)


def _mentions(answer: str, fact: str) -> bool:
    flags = 0 if ('"' in fact or fact.isupper()) else re.IGNORECASE
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(fact)}(?![A-Za-z0-9])", answer, flags) is not None


def has_loop(ids: list[int], max_period: int = 32) -> bool:
    """A block of 1-32 tokens repeated back to back, covering at least max(3 periods, 12 tokens)."""
    n = len(ids)
    for p in range(1, max_period + 1):
        need = max(3 * p, 12)
        run = 0
        for i in range(p, n):
            run = run + 1 if ids[i] == ids[i - p] else 0
            if run + p >= need:
                return True
    return False


@torch.no_grad()
def _confidence(adapter, prompt, out_ids: list[int]) -> list[tuple[float, float]]:
    """(top-1 prob, top-1 minus top-2) at each generated position, teacher-forced over the output."""
    inputs = {k: v.to(adapter.device) if torch.is_tensor(v) else v for k, v in prompt.model_inputs.items()}
    ids = prompt.input_ids.to(adapter.device)
    extra = torch.tensor([out_ids[:-1]], dtype=ids.dtype, device=adapter.device)
    n = extra.shape[1]
    inputs["input_ids"] = torch.cat([ids, extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(ids)
    for key in ("attention_mask", "mm_token_type_ids", "token_type_ids"):
        if key in inputs and torch.is_tensor(inputs[key]):
            pad = torch.ones if key == "attention_mask" else torch.zeros
            inputs[key] = torch.cat(
                [inputs[key], pad((1, n), dtype=inputs[key].dtype, device=adapter.device)], 1
            )
    if hasattr(adapter.model.model, "rope_deltas"):
        adapter.model.model.rope_deltas = None
    logits = adapter.model(**inputs, use_cache=False).logits[0, -len(out_ids) :].float()
    top = logits.softmax(-1).topk(2, dim=-1).values
    return [(float(a), float(a - b)) for a, b in top.tolist()]


def _generate(engine, adapter, prompts: list[str], image, max_new: int):
    """Turn by turn, each turn's prompt replaying the model's own earlier answers (the harness protocol)."""
    history, outs = [], []
    for k in range(len(prompts)):
        msgs = mmspec_chat(SYSTEM_PROMPT, prompts[: k + 1], history, 1 if image is not None else 0)
        prompt = adapter.encode(msgs, [image] if image is not None else [])
        res = engine.generate(prompt, max_new)
        text = adapter.tokenizer.decode(res.token_ids, skip_special_tokens=True).strip()
        history.append(text)
        outs.append((prompt, res, text))
    return outs


def evaluate(
    adapter, samples: list[ProxySample], max_new_tokens: int, time_limit: float | None = None
) -> dict:
    """Greedy gates over ``samples``; past ``time_limit`` seconds the remaining samples are skipped
    (``n_samples`` says how many were evaluated), so a degenerate target cannot stall a build."""
    import time

    from mmspec.engine import Engine
    from mmspec.methods.baseline import Baseline

    engine = Engine(adapter, Baseline(adapter))
    acc: dict[str, list[bool]] = defaultdict(list)
    caption_recall: list[float] = []
    turns = loops = no_eos = 0
    conf: list[tuple[float, float]] = []
    first: dict[str, list[int]] = {}
    per_cat_tokens: dict[str, list[int]] = defaultdict(list)
    examples = []
    t0 = time.perf_counter()
    done: list[ProxySample] = []
    for s in samples:
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
        done.append(s)
        outs = _generate(engine, adapter, s.prompts, s.image, max_new_tokens)
        first[s.id] = outs[0][1].token_ids
        for (prompt, res, text), ref in zip(outs, s.turns):
            turns += 1
            loops += has_loop(res.token_ids)
            no_eos += res.stop_reason != "stop"
            per_cat_tokens[s.category].append(res.new_tokens)
            if ref.check == "caption":
                caption_recall.append(sum(facts_ok(text, [f]) for f in ref.facts) / max(1, len(ref.facts)))
            elif ref.check:
                acc[ref.check].append(facts_ok(text, ref.facts))
            conf += _confidence(adapter, prompt, res.token_ids)
        if len(examples) < 14:
            examples.append(
                {
                    "category": s.category,
                    "prompt": s.prompts[0][:200],
                    "reference": s.answers[0][:300],
                    "output": outs[0][2][:300],
                }
            )
    # image dependence: swap each first-turn image for the next sample's of the same scene kind
    changed: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[ProxySample]] = defaultdict(list)
    for s in done:
        if s.image is not None:
            by_kind[s.scene_kind].append(s)
    for group in by_kind.values():
        if len(group) < 2:
            continue
        for k, s in enumerate(group):
            other = group[(k + 1) % len(group)]
            res = _generate(engine, adapter, s.prompts[:1], other.image, SWAP_TOKENS)[0][1]
            changed[s.category].append(res.token_ids != first[s.id][:SWAP_TOKENS])
    top1 = [c[0] for c in conf]
    return {
        "n_samples": len(done),
        "n_planned": len(samples),
        "n_turns": turns,
        "accuracy": {k: round(sum(v) / len(v), 4) for k, v in sorted(acc.items())},
        "accuracy_n": {k: len(v) for k, v in sorted(acc.items())},
        "caption_recall": round(sum(caption_recall) / len(caption_recall), 4) if caption_recall else None,
        "image_dependence": {k: round(sum(v) / len(v), 4) for k, v in sorted(changed.items())},
        "image_dependence_all": round(
            sum(sum(v) for v in changed.values()) / max(1, sum(len(v) for v in changed.values())), 4
        ),
        "loop_share": round(loops / max(1, turns), 4),
        "missing_eos_share": round(no_eos / max(1, turns), 4),
        "mean_top1_prob": round(sum(top1) / max(1, len(top1)), 4),
        "near_tie_share": round(sum(c[1] < NEAR_TIE for c in conf) / max(1, len(conf)), 4),
        "mean_new_tokens": {k: round(sum(v) / len(v), 1) for k, v in sorted(per_cat_tokens.items())},
        "examples": examples,
    }
