"""Draft token trees: the one shape every drafter hands to the engine (a chain is a tree).

Node 0 is the *root*: the last committed token, whose KV is not in the cache yet. Every other
node is a draft token whose parent index is smaller than its own, so a node's ancestors always
precede it. The target verifies all nodes in one forward with an ancestor-only attention mask and
positions ``cache_len + depth``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class DraftTree:
    """Tokens and parent links of a draft tree (host-side lists; small by construction)."""

    tokens: list[int]
    parents: list[int]
    # Optional per-node draft probabilities (unused by point-mass acceptance; kept for stats).
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.parents) or not self.tokens:
            raise ValueError("a draft tree needs as many parents as tokens, and a root")
        if self.parents[0] != -1:
            raise ValueError("node 0 must be the root (parent -1)")
        for i, p in enumerate(self.parents[1:], start=1):
            if not 0 <= p < i:
                raise ValueError(f"node {i} has parent {p}; parents must precede their children")

    # ------------------------------------------------------------ builders
    @classmethod
    def root_only(cls, root: int) -> DraftTree:
        return cls([root], [-1])

    @classmethod
    def chain(cls, root: int, draft: Sequence[int]) -> DraftTree:
        tokens = [root, *draft]
        return cls(tokens, [-1, *range(len(tokens) - 1)])

    @classmethod
    def from_paths(cls, root: int, paths: Sequence[Sequence[int]]) -> DraftTree:
        """Merge token paths below one root into a trie (shared prefixes become one node)."""
        tokens, parents = [root], [-1]
        children: dict[tuple[int, int], int] = {}
        for path in paths:
            node = 0
            for tok in path:
                key = (node, int(tok))
                nxt = children.get(key)
                if nxt is None:
                    nxt = len(tokens)
                    tokens.append(int(tok))
                    parents.append(node)
                    children[key] = nxt
                node = nxt
        return cls(tokens, parents)

    # ------------------------------------------------------------- views
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def depths(self) -> list[int]:
        d = [0] * len(self.tokens)
        for i in range(1, len(self.tokens)):
            d[i] = d[self.parents[i]] + 1
        return d

    def children(self) -> list[list[int]]:
        ch: list[list[int]] = [[] for _ in self.tokens]
        for i in range(1, len(self.tokens)):
            ch[self.parents[i]].append(i)
        return ch

    def is_chain(self) -> bool:
        return all(p == i - 1 for i, p in enumerate(self.parents[1:], start=1))

    def ancestor_mask(self) -> torch.Tensor:
        """``[n, n]`` bool: ``m[i, j]`` is True when node j is node i or one of its ancestors."""
        n = len(self.tokens)
        m = torch.zeros((n, n), dtype=torch.bool)
        for i in range(n):
            m[i, i] = True
            p = self.parents[i]
            if p >= 0:
                m[i] |= m[p]
        return m

    def path_to(self, node: int) -> list[int]:
        out = []
        while node >= 0:
            out.append(node)
            node = self.parents[node]
        return out[::-1]


def dedupe_siblings(tree: DraftTree) -> DraftTree:
    """Merge sibling nodes that carry the same token (their subtrees merge as a trie)."""
    ch = tree.children()
    paths: list[list[int]] = []

    def walk(node: int, prefix: list[int]) -> None:
        kids = ch[node]
        if not kids:
            if prefix:
                paths.append(prefix)
            return
        for k in kids:
            walk(k, [*prefix, tree.tokens[k]])

    walk(0, [])
    return DraftTree.from_paths(tree.tokens[0], paths)
