"""The adapter's static-shape verification (``static`` and ``graph`` execution).

A tree is padded to the next size in :data:`~mmspec.graphs.TREE_BUCKETS` and the KV cache is viewed
through a length that is a multiple of :data:`~mmspec.graphs.LEN_STEP`; everything that changes per
round (tokens, depths, start, ancestor mask) travels in one packed int32 buffer and the attention
mask is built on the device. One step per (tree bucket, KV view, capture request); in ``graph``
mode each is a CUDA graph captured before anything is timed and replayed every round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mmspec.contract import Capture, ForwardOutput
from mmspec.graphs import (
    LEN_STEP,
    TREE_BUCKETS,
    StagedBuffer,
    Step,
    StepCache,
    additive_mask,
    bucket,
    round_up,
    visible_keys,
)
from mmspec.tree import DraftTree

if TYPE_CHECKING:
    from mmspec.adapters.base import VLMAdapter


class VerifySteps:
    """Bucketed verification steps of one adapter."""

    def __init__(self, adapter: VLMAdapter, mode: str) -> None:
        self.adapter = adapter
        self.steps = StepCache(adapter.device, mode)
        #: the input token of a chained decode step (:mod:`mmspec.adapters.chained_decode`)
        self.chain_token = torch.zeros(1, dtype=torch.long, device=adapter.device)

    @property
    def mode(self) -> str:
        return self.steps.mode

    @property
    def capture_time_s(self) -> float:
        return self.steps.capture_time_s

    def clear(self) -> None:
        """Forget every step (the cache was reallocated, or a query tap was added)."""
        self.steps.clear()

    def prepare(self, max_tree_size: int, capture: Capture, chain: bool = False) -> int:
        """Graph mode: capture one graph per (tree bucket up to ``max_tree_size``, KV view up to the
        cache capacity), and with ``chain`` the chained decode steps too, before anything is timed;
        returns how many were captured."""
        if self.mode != "graph":
            return 0
        cache = self.adapter.cache
        top = bucket(max_tree_size, TREE_BUCKETS)
        keys = [(nb, False) for nb in TREE_BUCKETS if nb <= top] + ([(1, True)] if chain else [])
        count = 0
        for nb, chained in keys:
            for lb in range(round_up(nb, LEN_STEP), cache.capacity + 1, LEN_STEP):
                step = self._get(nb, lb, capture, chained)
                host = step.staged.writable()
                host.zero_()
                host[2 * nb + 1 :].view(nb, nb).diagonal()[:] = 1
                step.staged.upload()
                if step.graph is None:
                    self.steps.capture(step)
                    count += 1
        cache.reset()  # captures wrote scratch entries; nothing is committed
        return count

    def forward(self, tree: DraftTree, capture: Capture) -> ForwardOutput:
        """Verify ``tree`` after the cache (KV written, not committed) through its bucketed step."""
        n = len(tree)
        step, host, nb = self._staged(n, self.adapter.cache.length, capture)
        host[:n] = torch.tensor(tree.tokens, dtype=torch.int32)
        host[nb : nb + n] = torch.tensor(tree.depths(), dtype=torch.int32)
        host[2 * nb + 1 :].view(nb, nb)[:n, :n] = tree.ancestor_mask()
        step.staged.upload()
        out = self.steps.run(step)
        return ForwardOutput(
            logits=out["logits"][:n],
            hidden={k: v[:n] for k, v in out["hidden"].items()},
            argmax=out["argmax"][:n],
        )

    def chain_step(self, start: int) -> Step:
        """The one-token step that reads its input from :attr:`chain_token`, staged for a forward at
        cache slot ``start`` (its inputs uploaded; run it with ``steps.run``)."""
        step, _, _ = self._staged(1, start, Capture(), chained=True)
        step.staged.upload()
        return step

    def _staged(
        self, n: int, start: int, capture: Capture, chained: bool = False
    ) -> tuple[Step, torch.Tensor, int]:
        """The bucketed step for ``n`` nodes written from cache slot ``start``, and its host buffer
        filled with what every step needs (the start; each row sees itself, so padding rows see the
        prefix and themselves only); the caller adds the tree's rows and uploads. Returns the step,
        the host buffer and the tree bucket."""
        cache = self.adapter.cache
        nb = bucket(n, TREE_BUCKETS)
        lb = round_up(start + nb, LEN_STEP)
        if lb > cache.capacity:
            raise RuntimeError(f"KV view {lb} exceeds capacity {cache.capacity}; call reserve()")
        step = self._get(nb, lb, capture, chained)
        host = step.staged.writable()
        host.zero_()
        host[2 * nb] = start
        host[2 * nb + 1 :].view(nb, nb).diagonal()[:] = 1
        return step, host, nb

    def _get(self, nb: int, lb: int, capture: Capture, chained: bool = False) -> Step:
        return self.steps.get((nb, lb, capture, chained), lambda: self._make(nb, lb, capture, chained))

    def _make(self, nb: int, len_bucket: int, capture: Capture, chained: bool = False) -> Step:
        """A fixed-shape verification step: all per-round data arrives in one packed int32 buffer.

        ``chained`` (one node): the token comes from :attr:`chain_token` instead, so the step can be
        queued before the host knows it; everything else is the plain one-node step."""
        a = self.adapter
        dev = a.device
        staged = StagedBuffer.zeros(2 * nb + 1 + nb * nb, torch.int32, dev)
        packed = staged.device
        arange_n = torch.arange(nb, device=dev)
        arange_l = torch.arange(len_bucket, device=dev)

        chain_token = self.chain_token

        def fn() -> dict[str, Any]:
            ids = chain_token if chained else packed[:nb].long()
            depth = packed[nb : 2 * nb].long()
            start = packed[2 * nb].long()
            anc = packed[2 * nb + 1 :].view(nb, nb).bool()
            a.cache.set_write_index(start + arange_n, len_bucket)
            out = a.language_model(
                inputs_embeds=a.embed(ids)[None],
                position_ids=a.position_ids(start + depth),
                attention_mask=additive_mask(visible_keys(arange_l, start, anc), a.dtype),
                past_key_values=a.cache,
                use_cache=True,
                output_hidden_states=bool(capture.hidden),
            )
            logits = a.lm_head(out.last_hidden_state[0])
            return {"logits": logits, "argmax": logits.argmax(-1), "hidden": a.select_hidden(out, capture)}

        return Step(fn, staged)
