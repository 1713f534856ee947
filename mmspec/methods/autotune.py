"""``total_token=-1``: pick the draft tree size by timing the target, as EAGLE's reference code does.

MMSpec ran MSD on LLaVA this way. The choice depends on the machine (it times real forwards), so
it is made once when the drafter is built, before anything is timed, and recorded in the results.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from mmspec.timing import synchronize
from mmspec.tree import DraftTree

#: the tree sizes the reference tries, and the acceptance gain it credits each with
CANDIDATES = (40, 48, 50, 56, 60)
GAINS = (1.0, 1.05, 1.07, 1.1, 1.13)


def autotune_total_tokens(adapter: Any, repeats: int = 20, seed: int = 0) -> int:
    """The candidate ``n`` with the least (time of ``repeats`` target forwards of ``n`` random
    tokens) / gain. The forwards start from an empty cache and leave it empty."""
    gen = torch.Generator().manual_seed(seed)
    adapter.reserve(max(CANDIDATES) + 1)
    costs = []
    for n, gain in zip(CANDIDATES, GAINS):
        ids = torch.randint(0, max(adapter.vocab_size - 200, 1), (n,), generator=gen).tolist()
        tree = DraftTree.chain(ids[0], ids[1:])
        adapter.cache.reset()
        adapter.forward_tree(tree)  # warm-up (and graph capture for this bucket)
        synchronize(adapter.device)
        start = time.perf_counter()
        for _ in range(repeats):
            adapter.forward_tree(tree)
            synchronize(adapter.device)
        costs.append((time.perf_counter() - start) / gain)
    adapter.cache.reset()
    return CANDIDATES[costs.index(min(costs))]
