"""``lookahead``: trie-based retrieval drafting (Ant Group's Lookahead, KDD 2024; alipay PIA).

Every n-gram (length <= ``branch_length + 1``) of the prompt and of the committed output is
counted in a token trie. Each round the drafter finds the suffixes of the current sequence that
occurred before and proposes what followed them, as a multi-branch tree of at most
``decoding_length`` nodes ranked by how often each continuation was seen.

What differs from MMSpec's port, on purpose (protocol §8 item 14):

* The engine verifies the draft as a real tree (ancestor-only mask, per-node positions, proper
  walk), so a sibling can never be accepted with KV computed under another branch.
* Generated tokens are *streamed* in: each committed token only adds the n-grams that end at it,
  found from a frontier of the current suffix nodes (``O(branch_length)`` per token). Nothing
  rescans the sequence per round (MMSpec's ``hier_get`` did).
* The trie is per sample by default. ``shared_trie=true`` keeps one trie for the whole run, as
  MMSpec did; that leaks n-grams of earlier samples (and warm-up samples) into later ones and makes
  a sample's speed depend on the run order, so use it only to reproduce that setting.
* Image-placeholder tokens are never inserted: n-grams break at them, so they are never drafted.
* Memory is bounded: past ``max_nodes`` trie nodes, counts are halved and nodes seen once dropped.

The trie keeps exact occurrence counts: the node for the token path ``g`` holds the number of
times ``g`` occurred (as an n-gram that does not cross an image block) and the position of its
latest occurrence (a recency stamp, used to break count ties).

Cost (all on the host; nothing touches the model's device): a turn's prompt costs
``O(prompt * branch_length)`` once; each round streams the accepted tokens in
``O((accepted + 1) * branch_length)`` and drafts in ``O(decoding_length * log decoding_length)``
heap operations plus the fan-out of the expanded trie nodes. Memory: at most ``branch_length + 1``
new nodes per inserted token (about 300 bytes each in CPython: a 1k-token sample takes a few MB;
the default ``max_nodes`` cap of 1M nodes is about 300 MB, reachable only with ``shared_trie``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mmspec.methods.base import DecodeContext, Drafter, RoundResult, SpecArgError
from mmspec.tree import DraftTree


class _Node:
    """One trie node: the n-gram spelled by the path from the root to it."""

    __slots__ = ("children", "count", "stamp")

    def __init__(self) -> None:
        self.children: dict[int, _Node] | None = None  # created on the first child (leaves are common)
        self.count = 0  # occurrences of this n-gram
        self.stamp = -1  # position (run clock) where its latest occurrence ended


class NgramTrie:
    """Counts of all n-grams of length ``1..max_len``, with streaming and batch insertion.

    A *frontier* is the list of nodes of the current suffixes, indexed by length - 1 (the node of
    the last token, of the last two tokens, ...; at most ``max_len - 1`` of them). Streaming a
    token extends each of them by one child, so the n-grams ending at that token are counted in
    ``O(max_len)`` dictionary operations, and the new frontier is read off the same nodes.
    """

    def __init__(self, max_len: int, max_nodes: int = 1_000_000) -> None:
        if max_len < 2:
            raise ValueError("NgramTrie: max_len must be >= 2")
        self.max_len = max_len
        self.max_nodes = max_nodes
        self.root = _Node()
        self.root.children = {}
        self.n_nodes = 0  # excluding the root
        self.clock = 0  # 1 + the largest stamp seen (so a shared trie's samples get later stamps)
        self.prunes = 0

    # ------------------------------------------------------------ insertion
    def _bump(self, node: _Node, tok: int, stamp: int) -> _Node:
        children = node.children
        if children is None:
            children = node.children = {}
        child = children.get(tok)
        if child is None:
            child = children[tok] = _Node()
            self.n_nodes += 1
        child.count += 1
        if stamp > child.stamp:
            child.stamp = stamp
        return child

    def step(self, frontier: list[_Node], tok: int, stamp: int) -> list[_Node]:
        """Stream one token: count the n-grams ending at it; return the new frontier."""
        new = [self._bump(self.root, tok, stamp)]
        new.extend(self._bump(node, tok, stamp) for node in frontier[: self.max_len - 1])
        if stamp >= self.clock:
            self.clock = stamp + 1
        del new[self.max_len - 1 :]  # full-length n-grams are leaves: they never get extended
        return new

    def insert(self, seq: Sequence[int], start: int = 0, stamp0: int = 0, breaks: Iterable[int] = ()) -> None:
        """Batch insert: count every n-gram of ``seq`` that ends at a position ``>= start``.

        N-grams never contain a token of ``breaks`` (image placeholders). The n-grams ending
        before ``start`` are assumed counted already (an earlier turn of the same conversation),
        so a turn's prompt only adds what is new. Streaming ``seq`` token by token gives the
        same trie (counts and stamps); this form is used for prompts.
        """
        breaks = frozenset(breaks)
        n, length = len(seq), self.max_len
        for i in range(max(0, start - length + 1), n):
            if seq[i] in breaks:
                continue
            node: _Node | None = self.root
            for j in range(i, min(i + length, n)):
                tok = seq[j]
                if tok in breaks:
                    break
                if j < start:  # already counted: walk it
                    node = node.children.get(tok) if node.children else None
                    if node is None:  # pruned meanwhile
                        break
                else:
                    node = self._bump(node, tok, stamp0 + j)
        if n > start and stamp0 + n > self.clock:
            self.clock = stamp0 + n

    def frontier(self, seq: Sequence[int], breaks: Iterable[int] = ()) -> list[_Node]:
        """The suffix nodes at the end of ``seq`` (``O(max_len^2)``; used after a prompt or a prune)."""
        breaks = frozenset(breaks)
        n = len(seq)
        lo = max(0, n - (self.max_len - 1))
        for j in range(n - 1, lo - 1, -1):
            if seq[j] in breaks:
                lo = j + 1
                break
        out: list[_Node] = []
        for length in range(1, n - lo + 1):
            node: _Node | None = self.root
            for tok in seq[n - length :]:
                node = node.children.get(tok) if node.children else None
                if node is None:
                    return out
            out.append(node)
        return out

    # ------------------------------------------------------------ memory
    def prune(self, target: int | None = None) -> None:
        """Halve every count and drop the n-grams whose count reaches 0, until ``n_nodes <= target``.

        A child never occurs more often than its parent, so dropping a node drops only rarer
        descendants and the counts stay consistent. Runs only when the trie outgrows ``max_nodes``
        (``O(nodes)`` each time, amortised over the insertions that filled it).
        """
        target = (self.max_nodes * 3) // 4 if target is None else target
        while self.n_nodes > target:
            kept = 0
            stack = [self.root]
            while stack:
                node = stack.pop()
                if not node.children:
                    continue
                for tok, child in list(node.children.items()):
                    child.count >>= 1
                    if child.count == 0:
                        del node.children[tok]
                    else:
                        kept += 1
                        stack.append(child)
            self.n_nodes = kept
            self.prunes += 1

    # ------------------------------------------------------------ retrieval
    def draft(
        self,
        frontier: Sequence[_Node],
        root_token: int,
        budget: int,
        max_depth: int,
        max_prefix: int,
    ) -> tuple[list[int], list[int]]:
        """Tokens and parents of a draft tree below ``root_token`` (the last token of the sequence).

        Suffixes are tried from the longest (``max_prefix`` tokens, the most specific context) to
        the shortest. For each suffix that occurred before (its node has children), its
        continuations are added best-first by (count, recency), so the tree holds the most
        frequent continuations and every node's parent is already in it. Shorter suffixes only
        fill what budget the longer ones left; paths they share with the tree merge into it.
        Cost: ``O(decoding_length log decoding_length)`` heap operations plus the fan-out of the
        expanded nodes (the distinct successors seen, bounded by the trie, never by the vocabulary).
        """
        tokens, parents = [root_token], [-1]
        if budget <= 0 or max_depth <= 0:
            return tokens, parents
        slot: dict[tuple[int, int], int] = {}
        order = itertools.count()
        for m in range(min(max_prefix, len(frontier)), 0, -1):
            if len(tokens) > budget:
                break
            node = frontier[m - 1]
            if not node.children:
                continue  # this context never occurred before: nothing follows it yet
            heap: list[tuple[int, int, int, int, _Node, int, int]] = []
            self._push(heap, order, node, 0, 1, budget + 1 - len(tokens))
            while heap and len(tokens) <= budget:
                _, _, _, tok, child, pidx, depth = heapq.heappop(heap)
                key = (pidx, tok)
                idx = slot.get(key)
                if idx is None:
                    idx = slot[key] = len(tokens)
                    tokens.append(tok)
                    parents.append(pidx)
                if depth < max_depth and child.children:
                    self._push(heap, order, child, idx, depth + 1, budget + 1 - len(tokens))
        return tokens, parents

    @staticmethod
    def _push(heap: list, order: Iterator[int], node: _Node, pidx: int, depth: int, room: int) -> None:
        items = node.children.items()
        if len(items) > room:  # only the best `room` children can ever be taken
            items = heapq.nlargest(room, items, key=lambda kv: (kv[1].count, kv[1].stamp))
        for tok, child in items:
            heapq.heappush(heap, (-child.count, -child.stamp, next(order), tok, child, pidx, depth))

    # ------------------------------------------------------------ views (tests, debugging)
    def items(self) -> Iterator[tuple[tuple[int, ...], int, int]]:
        """``(path, count, stamp)`` of every node, depth-first."""
        stack: list[tuple[tuple[int, ...], _Node]] = [((), self.root)]
        while stack:
            path, node = stack.pop()
            if path:
                yield path, node.count, node.stamp
            for tok, child in (node.children or {}).items():
                stack.append(((*path, tok), child))

    def count(self, path: Sequence[int]) -> int:
        node: _Node | None = self.root
        for tok in path:
            node = node.children.get(tok) if node.children else None
            if node is None:
                return 0
        return node.count


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Lookahead(Drafter):
    """Multi-branch drafts retrieved from an n-gram trie of the prompt and the output so far."""

    name = "lookahead"
    paper = (
        "Zhao et al. 2024, Lookahead: An Inference Acceleration Framework for Large Language Model "
        "with Lossless Generation Accuracy (KDD 2024; alipay/PainlessInferenceAcceleration)"
    )
    defaults = {
        "decoding_length": 64,  # draft nodes per round (tree size - 1)
        "branch_length": 12,  # deepest draft; trie n-grams have up to branch_length + 1 tokens
        "max_prefix": 8,  # longest suffix of the sequence used as retrieval context
        "shared_trie": False,  # one trie for the whole run (leaks across samples; order-dependent)
        "max_nodes": 1_000_000,  # trie size that triggers pruning
    }
    #: MMSpec kept one trie for the whole run (never reset between samples)
    presets = {"mmspec": {"decoding_length": 64, "branch_length": 12, "shared_trie": True}}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        a = self.args
        for key in ("decoding_length", "branch_length", "max_prefix", "max_nodes"):
            if not isinstance(a[key], int) or isinstance(a[key], bool) or a[key] < 1:
                raise SpecArgError(f"lookahead: {key} must be a positive integer, got {a[key]!r}")
        # A suffix longer than branch_length has no room for a continuation in the trie.
        self.max_prefix = min(a["max_prefix"], a["branch_length"])
        self.breaks: frozenset[int] = frozenset(self.target.image_token_ids)
        self.trie = self._new_trie()
        self._seq: list[int] = []  # what this sample has inserted, in order (prompt, then output)
        self._frontier: list[_Node] = []
        self._base = 0  # stamp of this sample's position 0

    def _new_trie(self) -> NgramTrie:
        return NgramTrie(self.args["branch_length"] + 1, self.args["max_nodes"])

    # --------------------------------------------------------------- lifecycle
    def reset(self) -> None:
        if not self.args["shared_trie"]:
            self.trie = self._new_trie()
        self._seq, self._frontier = [], []
        self._base = self.trie.clock

    def begin(self, ctx: DecodeContext, prefill: Any) -> None:
        """Insert the turn's prompt (prompt mode), then stream the first generated token.

        A later turn's prompt replays the conversation: only the part after what this sample
        already inserted (longest common prefix) is new, so nothing is counted twice.
        """
        self.breaks = self.breaks | ctx.image_token_ids
        prompt = ctx.tokens[: ctx.prompt_len]
        start = common_prefix_len(self._seq, prompt)
        self.trie.insert(prompt, start=start, stamp0=self._base, breaks=self.breaks)
        self._seq = list(prompt)
        self._frontier = self.trie.frontier(self._seq, self.breaks)
        self._stream(ctx.tokens[ctx.prompt_len :])

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        self._stream(ctx.tokens[len(self._seq) :])

    def _stream(self, new: Sequence[int]) -> None:
        trie, breaks, frontier = self.trie, self.breaks, self._frontier
        for tok in new:
            # an image token ends every n-gram: the next token starts afresh
            frontier = [] if tok in breaks else trie.step(frontier, tok, self._base + len(self._seq))
            self._seq.append(tok)
        self._frontier = frontier
        if trie.n_nodes > trie.max_nodes:
            trie.prune()
            self._frontier = trie.frontier(self._seq, breaks)

    # --------------------------------------------------------------- drafting
    def propose(self, ctx: DecodeContext) -> DraftTree:
        # Deeper than remaining - 1 can never be emitted (the bonus token takes the last slot).
        depth = min(self.args["branch_length"], ctx.remaining - 1)
        tokens, parents = self.trie.draft(
            self._frontier, ctx.last_token, self.args["decoding_length"], depth, self.max_prefix
        )
        return DraftTree(tokens, parents)

    def max_tree_size(self) -> int:
        return 1 + self.args["decoding_length"]
