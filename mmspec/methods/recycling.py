"""``recycling``: Token Recycling (Luo et al. 2024) — drafts from the target's own discarded top-k.

An adjacency matrix ``M[vocab, k]`` keeps, for every token id, the ``k`` tokens the target most
recently ranked highest right after it. It is filled from the prefill logits of every prompt
position and, after every verification forward, from the logits of every verified tree node
(accepted or not: the "trash" that gets recycled). Each round a fixed tree template is
instantiated from ``M`` breadth-first below the last token: a node at rank ``r`` under a parent
with token ``t`` gets token ``M[t, r]``. The default template (``tree=paper``) is the paper's
released static tree: 80 draft nodes, depth 6, 8/21/25/15/8/3 nodes per level; ``tree`` also takes
a breadth list per depth (see :func:`parse_tree`).

Cost per round, all on the model's device except one small copy each way: per template level
three tiny index kernels (parents' tokens, rank offsets, gather from ``M``), one device-to-host
copy of the slot tokens; for the update one ``index_select`` + ``topk`` over the tree's logits, one
gather (image ids -> sentinel) and one ``index_copy_`` into ``M``. Host work is ``O(tree size)``;
nothing loops over the vocabulary or the sequence per round (measured on an H100 at Qwen's
152k vocabulary with the 80-node tree: about 0.3 ms to draft and 0.3 ms to update). ``M`` takes
``(vocab + 1) * k * 8`` bytes (Qwen2.5-VL, k=8: 9.7 MB); its extra row is an "unknown" sentinel.

What differs from MMSpec's port, on purpose (protocol §8 item 16): it drafts the paper's static
*tree* (MMSpec drafted a 10-token top-1 chain), and it is strictly lossless — there is no
anti-cycle "rescue" that swaps the target's tokens for others; the draft only proposes, the
engine's walk decides. Image-placeholder tokens are masked out of ``M`` when rows are written
(image positions of the prompt write no rows), so they are never drafted. ``M`` is cleared for
every sample unless ``persist=true``, which carries it over the whole run (warm-up included):
later samples then draft from earlier samples' logits — a cross-sample leak that makes speed
depend on the run order — so use it only to study that setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from mmspec.contract import Capture, ForwardOutput
from mmspec.methods.base import DecodeContext, Drafter, RoundResult, SpecArgError
from mmspec.methods.draft_tree import RankTree
from mmspec.tree import DraftTree

#: The paper's static tree (80 draft nodes, depth 6), written as "rank path -> number of children".
#: A node's rank path lists, from the root down, which of its ancestors' successors it is
#: (0 = the most likely); its children take ranks 0..n-1 of its own row of M. Nodes on the rank-0
#: spine branch most, so the tree is deep where acceptance is likely and wide near the root.
PAPER_TREE: dict[tuple[int, ...], int] = {
    (): 8,
    (0,): 8, (1,): 4, (2,): 3, (3,): 2, (4,): 1, (5,): 1, (6,): 1, (7,): 1,
    (0, 0): 8, (0, 1): 3, (0, 2): 2, (0, 3): 1, (0, 4): 1, (0, 5): 1, (0, 6): 1, (0, 7): 1,
    (1, 0): 2, (1, 1): 1, (2, 0): 1, (3, 0): 1, (4, 0): 1, (5, 0): 1,
    (0, 0, 0): 5, (0, 0, 1): 2, (0, 0, 2): 1, (0, 0, 3): 1, (0, 0, 4): 1,
    (0, 1, 0): 1, (0, 2, 0): 1, (1, 0, 0): 1, (2, 0, 0): 1, (3, 0, 0): 1,
    (0, 0, 0, 0): 3, (0, 0, 0, 1): 1, (0, 0, 0, 2): 1, (0, 0, 1, 0): 1, (0, 1, 0, 0): 1, (1, 0, 0, 0): 1,
    (0, 0, 0, 0, 0): 2, (0, 0, 0, 1, 0): 1,
}  # fmt: skip

NAMED_TREES: dict[str, dict[tuple[int, ...], int]] = {"paper": PAPER_TREE}
MAX_TEMPLATE_NODES = 1024


def _template(n_children: Callable[[tuple[int, ...]], int]) -> RankTree:
    try:
        return RankTree.from_children(n_children, MAX_TEMPLATE_NODES)
    except ValueError as exc:
        raise SpecArgError(f"recycling: {exc}") from None


def parse_tree(spec: Any, k: int) -> RankTree:
    """``tree`` spec arg: a template name (``paper``) or a breadth list per depth.

    A breadth list ``b1:b2:...:bD`` (``,`` also accepted from Python) gives every node at depth
    ``d - 1`` its ``b_d`` most likely successors, so it has ``b1 + b1*b2 + ...`` nodes; e.g.
    ``1:1:1:1:1:1:1:1:1:1`` is MMSpec's 10-token chain and ``4:2:2:1:1:1`` has 76 nodes.
    """
    if isinstance(spec, str) and spec.strip().lower() in NAMED_TREES:
        table = NAMED_TREES[spec.strip().lower()]
        template = _template(lambda path: table.get(path, 0))
    else:
        if isinstance(spec, str):
            parts = [p for p in spec.replace(",", ":").split(":") if p.strip()]
        elif isinstance(spec, (list, tuple)):
            parts = list(spec)
        else:
            parts = []
        try:
            breadths = [int(p) for p in parts]
        except (TypeError, ValueError):
            breadths = []
        if not breadths or any(b < 1 for b in breadths):
            names = ", ".join(sorted(NAMED_TREES))
            raise SpecArgError(
                f"recycling: tree={spec!r} is neither a template name ({names}) nor a breadth "
                "list of positive integers per depth such as 4:2:2:1:1:1"
            )
        template = _template(lambda path: breadths[len(path)] if len(path) < len(breadths) else 0)
    widest = template.max_rank
    if widest > k:
        raise SpecArgError(f"recycling: tree uses {widest} successors per token but k={k}; raise k")
    return template


class TokenRecycling(Drafter):
    """Static-tree drafts read from a top-k successor matrix refreshed by every target forward."""

    name = "recycling"
    paper = (
        "Luo et al. 2024, Turning Trash into Treasure: Accelerating Inference of Large Language "
        "Models with Token Recycling (arXiv 2408.08696)"
    )
    defaults = {
        "k": 8,  # successors kept per token (columns of M)
        "tree": "paper",  # template name, or a breadth list per depth like 4:2:2:1:1:1
        "persist": False,  # keep M across samples (leaks across samples; order-dependent)
    }
    #: MMSpec drafted a chain: the top-1 successor, 10 times (its matrix lived for one turn)
    presets = {"mmspec": {"k": 8, "tree": ":".join(["1"] * 10)}}
    capture_prefill = Capture(all_logits=True)

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        k = self.args["k"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise SpecArgError(f"recycling: k must be a positive integer, got {k!r}")
        self.k = k
        self.template = parse_tree(self.args["tree"], k)
        self.device = torch.device(self.target.device)
        self.vocab_size = int(self.target.vocab_size)
        self.image_ids: frozenset[int] = frozenset(self.target.image_token_ids)
        # Row `empty` (= vocab_size) is a sentinel: an unknown successor is `empty`, and the
        # sentinel's own row is all `empty`, so a missing slot empties its whole subtree inside the
        # gathers themselves (no masks on the device); the host drops such slots.
        self.empty = self.vocab_size
        self.M = torch.full((self.vocab_size + 1, k), self.empty, dtype=torch.long, device=self.device)
        # Written rows pass through `remap`, which sends image-placeholder ids to the sentinel.
        self._remap = torch.arange(self.vocab_size + 1, dtype=torch.long, device=self.device)
        self._set_image_ids(self.image_ids)
        t = self.template
        parents = torch.tensor(t.parents, dtype=torch.long, device=self.device)
        ranks = torch.tensor(t.ranks, dtype=torch.long, device=self.device)
        self._levels = [
            (t.level_ends[d - 1], t.level_ends[d], parents[t.level_ends[d - 1] : t.level_ends[d]],
             ranks[t.level_ends[d - 1] : t.level_ends[d]])
            for d in range(1, len(t.level_ends))
        ]  # fmt: skip
        self._buf = torch.empty(len(t.parents), dtype=torch.long, device=self.device)

    def _set_image_ids(self, ids: frozenset[int]) -> None:
        self.image_ids = frozenset(ids)
        valid = sorted(i for i in self.image_ids if 0 <= i < self.vocab_size)
        if valid:
            self._remap[torch.tensor(valid, dtype=torch.long, device=self.device)] = self.empty

    # --------------------------------------------------------------- lifecycle
    def reset(self) -> None:
        if not self.args["persist"]:
            self.M.fill_(self.empty)

    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        """Fill M's rows of the prompt's tokens from the logits at their positions.

        A token seen several times keeps the row of its last occurrence (the freshest context),
        chosen on the device; image positions write nothing.
        """
        if not ctx.image_token_ids <= self.image_ids:
            self._set_image_ids(self.image_ids | ctx.image_token_ids)
        logits = prefill.logits
        n = min(int(logits.shape[0]), ctx.prompt_len)
        if n == 0:
            return
        logits = logits[-n:]  # all prompt positions (the last n when an adapter returned fewer)
        prompt = ctx.tokens[ctx.prompt_len - n : ctx.prompt_len]
        ids = torch.tensor(prompt, dtype=torch.long, device=self.device)
        pos = torch.arange(n, device=self.device)
        last = torch.full((self.vocab_size + 1,), -1, dtype=torch.long, device=self.device)
        last.scatter_reduce_(0, ids, pos, reduce="amax")
        keep = (last[ids] == pos) & (self._remap[ids] != self.empty)  # last occurrence, not an image
        rows = keep.nonzero().squeeze(1)  # once per turn: the only sync here
        self._write(ids.index_select(0, rows), logits.index_select(0, rows))

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        """Recycle the verification logits of every tree node into the row of the node's token.

        When a token occurs at several nodes, a node on the accepted path wins (its context is
        the real one), else the last one; the choice is made on the host over the tree's nodes.
        """
        tokens = result.tree.tokens
        pick: dict[int, int] = {}
        for i, tok in enumerate(tokens):
            pick[tok] = i
        for i in result.path:
            pick[tokens[i]] = i
        image_ids = self.image_ids
        pairs = [(node, tok) for tok, node in pick.items() if tok not in image_ids]
        if not pairs:
            return
        idx = torch.tensor(pairs, dtype=torch.long).to(self.device, non_blocking=True)
        self._write(idx[:, 1], result.verify.logits.index_select(0, idx[:, 0]))

    def _write(self, rows: torch.Tensor, logits: torch.Tensor) -> None:
        """``M[rows] = topk(logits)``, image ids sent to the sentinel: topk, one gather, index_copy."""
        if rows.numel() == 0:
            return
        top = logits.topk(self.k, dim=-1).indices
        self.M.index_copy_(0, rows, self._remap[top])

    # --------------------------------------------------------------- drafting
    def propose(self, ctx: DecodeContext) -> DraftTree:
        root = ctx.last_token
        # Levels deeper than remaining - 1 can never be emitted (the bonus token takes the last slot).
        depth = min(self.template.depth, ctx.remaining - 1)
        if depth <= 0 or not 0 <= root < self.vocab_size or root in self.image_ids:
            return DraftTree.root_only(root)
        end = self.template.level_ends[depth]
        buf, flat, k = self._buf, self.M.view(-1), self.k
        buf[0] = root
        for start, stop, parents, ranks in self._levels[:depth]:
            # slot token = M[parent token, rank]: two small index kernels and an add per level
            torch.index_select(
                flat, 0, torch.add(ranks, buf.index_select(0, parents), alpha=k), out=buf[start:stop]
            )
        return self._assemble(root, buf[:end].tolist())  # the one device-to-host copy

    def _assemble(self, root: int, slots: Sequence[int]) -> DraftTree:
        """Host side: drop empty/image slots, merge equal siblings (their subtrees merge too)."""
        parents_t = self.template.parents
        tokens, parents = [root], [-1]
        where = [0] + [-1] * (len(slots) - 1)  # template slot -> draft node (-1: dropped)
        seen: dict[tuple[int, int], int] = {}
        empty, image_ids = self.empty, self.image_ids
        for i in range(1, len(slots)):
            tok, parent = slots[i], where[parents_t[i]]
            if parent < 0 or tok == empty or tok in image_ids:
                continue
            key = (parent, tok)
            node = seen.get(key)
            if node is None:
                node = seen[key] = len(tokens)
                tokens.append(tok)
                parents.append(parent)
            where[i] = node
        return DraftTree(tokens, parents)

    def max_tree_size(self) -> int:
        return 1 + self.template.size

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tree_nodes": self.template.size, "tree_depth": self.template.depth}
