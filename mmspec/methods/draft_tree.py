"""Turning scored draft candidates into the tree the target verifies.

Draft-model methods expand candidates level by level on the device (top-k per node, cumulative
log-probabilities) and copy the candidate table to the host once per round; ``select_tree`` then
keeps the best ``budget`` nodes whose ancestors are kept too. Because log-probabilities are <= 0, a
child never outscores its parent, so taking candidates in score order (ties: earlier first)
naturally keeps every chosen node's parent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mmspec.tree import DraftTree

#: EAGLE's published tree for 7B models (``mc_sim_7b_63`` in EAGLE's ``choices.py``): each path is
#: the top-k ranks taken at each depth. 25 draft nodes, depth 5.
EAGLE_7B_CHOICES: tuple[tuple[int, ...], ...] = (
    (0,), (1,), (2,), (3,), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0),
    (0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0), (0, 1, 1), (0, 2, 0), (0, 2, 1), (1, 0, 0),
    (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 0, 0), (0, 0, 0, 0, 1),
)  # fmt: skip


def select_tree(
    root: int, tokens: Sequence[int], parents: Sequence[int], scores: Sequence[float], budget: int
) -> DraftTree:
    """Best ``budget`` candidates (parent index -1 = the root) as a tree, parents kept."""
    order = sorted(range(len(tokens)), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    chosen: set[int] = set()
    for i in order:
        if len(picked) >= budget:
            break
        if parents[i] == -1 or parents[i] in chosen:
            picked.append(i)
            chosen.add(i)
    picked.sort()
    node = {c: j + 1 for j, c in enumerate(picked)}
    return DraftTree(
        [root, *(int(tokens[c]) for c in picked)],
        [-1, *(0 if parents[c] == -1 else node[parents[c]] for c in picked)],
    )


def eagle2_threshold_cut(
    scores: Sequence[float], top_k: int, threshold: float, budget: int
) -> tuple[int, int]:
    """EAGLE-2's confidence rule (as its reference code applies it): how many candidates survive
    and how many nodes the tree may take.

    Candidates come level by level (``top_k`` at the first level, ``top_k ** 2`` at each later one).
    Expansion stops after the first later level whose best cumulative probability is below
    ``threshold``, so deeper levels never exist; the tree then keeps the candidates strictly above
    the threshold, but at least ``top_k`` and at most ``budget``. ``threshold <= 0`` disables it.
    """
    n = len(scores)
    if threshold <= 0:
        return n, min(budget, n)
    log_t = math.log(threshold)
    end = min(top_k, n)
    while end < n:
        level = scores[end : end + top_k * top_k]
        end += len(level)
        if max(level) < log_t:
            break
    above = sum(x > log_t for x in scores[:end])
    return end, min(budget, max(above, top_k), end)


class StaticTree:
    """A fixed tree of top-k ranks (EAGLE-1 / Medusa choice lists), precomputed per level."""

    def __init__(self, choices: Sequence[Sequence[int]]) -> None:
        paths = sorted({tuple(c) for c in choices}, key=lambda c: (len(c), c))
        if not paths or any(len(p) == 0 for p in paths):
            raise ValueError("a static tree needs non-empty rank paths")
        index = {p: i + 1 for i, p in enumerate(paths)}  # node 0 = root
        for p in paths:
            if len(p) > 1 and p[:-1] not in index:
                raise ValueError(f"static tree path {list(p)} has no parent path {list(p[:-1])}")
        self.paths = paths
        self.parent = [-1] + [index.get(p[:-1], 0) for p in paths]
        self.rank = [0] + [p[-1] for p in paths]
        self.depth = max(len(p) for p in paths)
        self.levels = [[index[p] for p in paths if len(p) == d] for d in range(1, self.depth + 1)]
        self.max_rank = max(self.rank) + 1

    def __len__(self) -> int:
        return len(self.paths) + 1
