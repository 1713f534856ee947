"""Turning scored draft candidates into the tree the target verifies.

Draft-model methods expand candidates level by level on the device (top-k per node, cumulative
log-probabilities) and copy the candidate table to the host once per round; ``select_tree`` then
keeps the best ``budget`` nodes whose ancestors are kept too. Because log-probabilities are <= 0, a
child never outscores its parent, so taking candidates in score order (ties: earlier first)
naturally keeps every chosen node's parent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class RankTree:
    """A fixed tree of rank slots: node ``i`` takes the ``ranks[i]``-th best candidate below its
    parent (EAGLE-1's and Medusa's choice lists, Token Recycling's templates).

    Node 0 is the root; nodes are in breadth-first order (by depth, then by rank path), so
    parents precede children and each level is a contiguous slice ``level_ends[d-1]:level_ends[d]``.
    """

    parents: tuple[int, ...]
    ranks: tuple[int, ...]  # the root's is 0 (unused)
    level_ends: tuple[int, ...]  # level_ends[d]: one past the last node of depth d (level_ends[0] = 1)

    @classmethod
    def from_paths(cls, paths: Sequence[Sequence[int]]) -> RankTree:
        """From rank paths (root excluded), e.g. EAGLE's ``mc_sim_7b_63``; every prefix must be a path."""
        ordered = sorted({tuple(int(r) for r in p) for p in paths}, key=lambda p: (len(p), p))
        if not ordered or any(len(p) == 0 or min(p) < 0 for p in ordered):
            raise ValueError("a static tree needs non-empty rank paths of non-negative ranks")
        index = {p: i + 1 for i, p in enumerate(ordered)}
        for p in ordered:
            if len(p) > 1 and p[:-1] not in index:
                raise ValueError(f"static tree path {list(p)} has no parent path {list(p[:-1])}")
        depth = len(ordered[-1])
        ends = [1] + [1 + sum(len(p) <= d for p in ordered) for d in range(1, depth + 1)]
        return cls(
            parents=(-1, *(index.get(p[:-1], 0) for p in ordered)),
            ranks=(0, *(p[-1] for p in ordered)),
            level_ends=tuple(ends),
        )

    @classmethod
    def from_children(cls, n_children: Callable[[tuple[int, ...]], int], max_nodes: int) -> RankTree:
        """Expand ``n_children(rank_path)`` (children take ranks ``0..n-1``) breadth-first."""
        paths: list[tuple[int, ...]] = []
        frontier: list[tuple[int, ...]] = [()]
        while frontier:
            frontier = [(*p, r) for p in frontier for r in range(n_children(p))]
            paths.extend(frontier)
            if len(paths) > max_nodes:
                raise ValueError(f"tree template has more than {max_nodes} nodes")
        return cls.from_paths(paths)

    def __len__(self) -> int:
        return len(self.parents)

    @property
    def size(self) -> int:
        """Draft nodes (the root excluded)."""
        return len(self.parents) - 1

    @property
    def depth(self) -> int:
        return len(self.level_ends) - 1

    @property
    def max_rank(self) -> int:
        """How many candidates per node the tree reads (the widest rank + 1)."""
        return max(self.ranks) + 1

    def level(self, d: int) -> range:
        """Node indices of depth ``d`` (1-based)."""
        return range(self.level_ends[d - 1], self.level_ends[d])

    def level_sizes(self) -> list[int]:
        return [len(self.level(d)) for d in range(1, self.depth + 1)]
