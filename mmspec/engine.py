"""The one draft -> verify -> accept loop that every method (baseline included) runs through.

Per round: the drafter proposes a tree rooted at the last committed token; the target verifies
every node in one forward; the acceptance walk keeps the longest valid path plus a bonus token;
the adapter compacts the accepted KV; the drafter observes the result. Output ends at the first
stop token (even inside an accepted block) or exactly at ``max_new_tokens``; nothing past that
point is counted, decoded or carried into the next turn.
"""

from __future__ import annotations

import random
import time
from contextlib import closing
from dataclasses import dataclass, field

import torch

from mmspec.acceptance import greedy_walk, sample_token, sampling_inputs, sampling_walk
from mmspec.adapters.base import VLMAdapter
from mmspec.contract import DecodeContext, PromptInputs, RoundResult
from mmspec.methods.base import Drafter
from mmspec.timing import PhaseTimer, synchronize
from mmspec.tree import DraftTree


@dataclass
class TurnResult:
    """Everything measured for one generated turn."""

    token_ids: list[int]
    prompt_tokens: int
    wall_time_s: float
    prefill_time_s: float
    rounds: int  # target forwards after prefill
    accepted_per_round: list[int] = field(default_factory=list)  # accepted draft tokens (bonus excluded)
    tree_size_per_round: list[int] = field(default_factory=list)
    skipped_rounds: int = 0  # rounds where a gate (ViSkip) chose a plain target step
    draft_time_s: float = 0.0
    verify_time_s: float = 0.0
    stop_reason: str = "length"  # "stop" (a stop token) or "length" (max_new_tokens)

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def target_forwards(self) -> int:
        return self.rounds + 1  # + prefill, which produces the first token


def emit(new: list[int], stop_ids: frozenset[int], remaining: int) -> tuple[list[int], str | None]:
    """Cut a round's new tokens at the first stop token (kept) or at the length budget."""
    kept: list[int] = []
    for tok in new:
        if len(kept) >= remaining:
            return kept, "length"
        kept.append(tok)
        if tok in stop_ids:
            return kept, "stop"
    return kept, ("length" if len(kept) >= remaining else None)


class Engine:
    """Runs turns of one adapter with one drafter."""

    def __init__(self, adapter: VLMAdapter, drafter: Drafter) -> None:
        self.adapter = adapter
        self.drafter = drafter
        self.device = adapter.device

    @torch.no_grad()
    def generate(
        self,
        prompt: PromptInputs,
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        key: tuple[str, str, int] | None = None,
    ) -> TurnResult:
        """One turn: prefill, then rounds until a stop token or ``max_new_tokens``."""
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        adapter, drafter, temp = self.adapter, self.drafter, float(temperature)
        generator = torch.Generator(device=self.device).manual_seed(seed) if temp > 0 else None
        rng = random.Random(seed)
        draft_timer, verify_timer = PhaseTimer(self.device), PhaseTimer(self.device)
        capture_prefill = drafter.capture_prefill
        adapter.reserve(prompt.length + max_new_tokens + drafter.max_tree_size() + 1)

        synchronize(self.device)
        t0 = time.perf_counter()
        pre = adapter.prefill(prompt, capture_prefill)
        first = sample_token(pre.logits[-1], temp, generator)  # host int: the first sync point
        prefill_time = time.perf_counter() - t0

        ctx = DecodeContext(
            tokens=[*prompt.ids, first],
            prompt_len=prompt.length,
            image_spans=adapter.image_spans(prompt.ids),
            image_token_ids=adapter.image_token_ids,
            stop_token_ids=adapter.stop_token_ids,
            temperature=temp,
            max_new_tokens=max_new_tokens,
            prompt_embeds=pre.inputs_embeds,
            key=key,
        )
        result = TurnResult(token_ids=[first], prompt_tokens=prompt.length, wall_time_s=0.0,
                            prefill_time_s=prefill_time, rounds=0)  # fmt: skip
        stop = "stop" if first in adapter.stop_token_ids else ("length" if max_new_tokens == 1 else None)
        if stop is None:
            draft_timer.start()
            drafter.begin(ctx, pre)
            draft_timer.stop()
        if stop is None and temp == 0 and drafter.plain_decoding and getattr(adapter, "chained", None):
            verify_timer.start()
            stop = self._decode_chained(ctx, result)
            verify_timer.stop()
        while stop is None:
            draft_timer.start()
            if drafter.skip_drafting(ctx):
                tree = DraftTree.root_only(ctx.last_token)
                result.skipped_rounds += 1
            else:
                tree = drafter.propose(ctx)
            draft_timer.stop()
            if tree.tokens[0] != ctx.last_token:
                raise RuntimeError(f"{drafter.name}: tree root {tree.tokens[0]} is not the last token")

            verify_timer.start()
            out = adapter.forward_tree(tree, drafter.capture_verify)
            if temp > 0:
                path, bonus = sampling_walk(tree, sampling_inputs(out.logits, tree, temp, generator), rng)
            else:
                argmax = out.argmax if out.argmax is not None else out.logits.argmax(-1)
                path, bonus = greedy_walk(tree, argmax.tolist())
            adapter.commit(len(tree), path)
            verify_timer.stop()

            new = [tree.tokens[i] for i in path[1:]] + [bonus]
            stop = self._record_round(ctx, result, new, len(tree))
            if stop is None:
                draft_timer.start()
                drafter.observe(ctx, RoundResult(tree=tree, path=path, bonus=bonus, verify=out))
                draft_timer.stop()

        synchronize(self.device)
        result.wall_time_s = time.perf_counter() - t0
        result.stop_reason = stop
        result.draft_time_s = draft_timer.total_s()
        result.verify_time_s = verify_timer.total_s()
        return result

    def _decode_chained(self, ctx: DecodeContext, result: TurnResult) -> str:
        """Greedy rounds of a drafter that proposes nothing, each forward queued before the host
        reads the previous token (:mod:`mmspec.adapters.chained_decode`); same tokens and rounds."""
        stop = None
        with closing(self.adapter.chained.tokens(ctx.last_token, ctx.remaining)) as tokens:
            for tok in tokens:
                stop = self._record_round(ctx, result, [tok], 1)
                if stop is not None:
                    break
        return stop or "length"

    def _record_round(
        self, ctx: DecodeContext, result: TurnResult, new: list[int], tree_size: int
    ) -> str | None:
        """Count one verified round (``new``: its accepted drafts + the bonus token) and emit its
        tokens up to the first stop token or the length budget; returns why the turn ends, if it does."""
        result.rounds += 1
        result.accepted_per_round.append(len(new) - 1)
        result.tree_size_per_round.append(tree_size)
        kept, stop = emit(new, self.adapter.stop_token_ids, ctx.remaining)
        ctx.tokens.extend(kept)
        result.token_ids.extend(kept)
        return stop
