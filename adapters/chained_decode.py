"""Plain decoding with each forward queued before the host has read the previous token.

One round per forward means the host reads the token, checks it and stages the next step while the
GPU waits: on an H200 about 0.6 ms of a ~6 ms 7B decode step. Here each step reads its input token
from a device buffer that the previous step's argmax is copied into, so step ``k + 1`` is queued
before token ``k`` reaches the host and the host's work overlaps the GPU's. The steps are the plain
one-node verification steps (:class:`~mmspec.adapters.verify_steps.VerifySteps`, same function,
shapes and cache slots), so the tokens are the ones the round-by-round loop produces.

When token ``k`` ends the output (a stop token), forward ``k + 1`` has already been queued: it runs,
writes one KV entry past the committed length, and is discarded like a rejected draft node (never
committed, counted or shown; its time is in the turn's wall time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mmspec.adapters.verify_steps import VerifySteps

#: tokens in flight to the host (one is being read while the next is queued; a spare for safety)
RING = 3


class ChainedDecode:
    """Greedy one-token forwards of one adapter, queued one ahead of the host."""

    def __init__(self, steps: VerifySteps) -> None:
        self.steps = steps
        cuda = steps.adapter.device.type == "cuda"
        self.host = torch.zeros(RING, dtype=torch.long, pin_memory=cuda)
        self.ready = [torch.cuda.Event() for _ in range(RING)] if cuda else None

    def tokens(self, first: int, count: int) -> Iterator[int]:
        """Yield the ``count`` greedy tokens that follow ``first`` (the last token emitted, not yet in
        the cache), committing each forward's input entry as its token is yielded. Closing the
        iterator early (a stop token) leaves at most one queued forward, uncommitted."""
        cache = self.steps.adapter.cache
        base = cache.length
        self.steps.chain_token.fill_(first)
        self._issue(0, base)
        for k in range(count):
            if k + 1 < count:
                self._issue(k + 1, base + k + 1)
            slot = k % RING
            if self.ready is not None:
                self.ready[slot].synchronize()
            cache.commit(1)  # the entry of this forward's input token is now part of the prefix
            yield int(self.host[slot])

    def _issue(self, k: int, start: int) -> None:
        step = self.steps.chain_step(start)
        argmax = self.steps.steps.run(step)["argmax"]  # graph memory: copied out before the next replay
        self.steps.chain_token.copy_(argmax)
        slot = k % RING
        self.host[slot : slot + 1].copy_(argmax, non_blocking=True)
        if self.ready is not None:
            self.ready[slot].record()
