"""How a feature drafter grows its tree each round: EAGLE-1's static tree or EAGLE-2's dynamic one.

Both run on the device, level by level, feeding the kept nodes back through the draft network with
an ancestor mask over the draft cache (:class:`~mmspec.methods.draft_runner.DraftRunner`), and
return one tensor the host turns into the :class:`~mmspec.tree.DraftTree` it hands the engine.
The drafter supplies its hooks (``topk``, ``tree_inputs``, ``token_embeds``) and its runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmspec.methods.draft_tree import RankTree, eagle2_threshold_cut, select_tree
from mmspec.tree import DraftTree

if TYPE_CHECKING:
    from mmspec.methods.feature_drafter import FeatureDrafter


class DynamicExpansion:
    """EAGLE-2: ``depth + 1`` levels; each expands the ``top_k`` best beams by cumulative
    log-probability; the best ``total_token - 1`` candidates (ancestors kept) form the tree."""

    def __init__(self, depth: int, top_k: int, total_token: int, threshold: float) -> None:
        self.depth, self.top_k, self.total_token, self.threshold = depth, top_k, total_token, threshold
        self.levels = depth + 1
        self.entries = depth * top_k  # draft-cache rows one proposal writes
        self.max_tree_size = total_token

    def rows(self, d: FeatureDrafter, view: int | None) -> torch.Tensor:
        """All candidates packed as ``[3, n]``: score, target token id, parent candidate (-1 = root)."""
        k, depth, run = self.top_k, self.depth, d.runner
        dev = run.device
        stable, pos = run.stable_dev, run.pos_dev
        s, t = d.topk(run.last, k)
        s, t = s[0], t[0]
        scores, tokens, parents = [s], [t], [torch.full((k,), -1, device=dev)]
        beam_s, beam_t, beam_h, beam_c = s, t, run.last.expand(k, -1), torch.arange(k, device=dev)
        eye = torch.eye(k, dtype=torch.bool, device=dev)
        anc = torch.zeros(k, 0, dtype=torch.bool, device=dev)
        offs = torch.arange(k, device=dev)
        offset = k
        for level in range(1, depth + 1):
            anc = torch.cat([anc, eye], dim=1)  # [k, level * k]: ancestors and themselves
            v = view if view is not None else run.stable + level * k
            out = run.run(
                d.tree_inputs(d.token_embeds(beam_t), beam_h),
                (pos + level - 1 + d.tree_position_offset).expand(k),
                run.visible(anc, v),
                stable + (level - 1) * k + offs,
                v,
            )
            s2, t2 = d.topk(out, k)
            cum = (beam_s[:, None] + s2).flatten()
            scores.append(cum)
            tokens.append(t2.flatten())
            parents.append(beam_c.repeat_interleave(k))
            if level == depth:
                break
            top_s, top_i = cum.topk(k)
            parent = top_i // k
            anc = anc[parent]
            beam_s, beam_t, beam_h, beam_c = top_s, t2.flatten()[top_i], out[parent], offset + top_i
            offset += k * k
        return torch.stack(
            [torch.cat(scores).double(), torch.cat(tokens).double(), torch.cat(parents).double()]
        )

    def tree(self, out: torch.Tensor, root: int) -> DraftTree:
        s, t, p = out.cpu().tolist()
        n, budget = eagle2_threshold_cut(s, self.top_k, self.threshold, self.total_token - 1)
        return select_tree(root, [int(x) for x in t[:n]], [int(x) for x in p[:n]], s[:n], budget)


class StaticExpansion:
    """EAGLE-1: a fixed tree of top-k ranks, one draft forward per level (over the nodes that have
    children); a node's token is the ``rank``-th best continuation of its parent."""

    def __init__(self, choices: tuple, device: torch.device) -> None:
        self.shape = tree = RankTree.from_paths(choices)
        self.levels = tree.depth
        self.max_tree_size = len(tree)
        self.plan = []
        slot: dict[int, int] = {}
        base = 0
        prev_rows: list[int] = []
        for d in range(1, tree.depth):
            children = list(tree.level(d + 1))
            rows = sorted({tree.parents[i] for i in children})  # nodes of level d with children
            anc = torch.zeros(len(rows), base + len(rows), dtype=torch.bool)
            for r, node in enumerate(rows):
                slot[node] = base + r
                p = node
                while p > 0:
                    anc[r, slot[p]] = True
                    p = tree.parents[p]
            self.plan.append({
                "rows": torch.tensor(rows, device=device),
                "anc": anc.to(device),
                "hidden_from": torch.tensor([prev_rows.index(tree.parents[i]) if tree.parents[i] > 0 else 0
                                             for i in rows], device=device),
                "children": torch.tensor(children, device=device),
                "child_row": torch.tensor([rows.index(tree.parents[i]) for i in children], device=device),
                "child_rank": torch.tensor([tree.ranks[i] for i in children], device=device),
                "base": base,
            })  # fmt: skip
            base += len(rows)
            prev_rows = rows
        self.entries = base
        first = list(tree.level(1))
        self.first = (
            torch.tensor(first, device=device),
            torch.tensor([tree.ranks[i] for i in first], device=device),
        )

    def rows(self, d: FeatureDrafter, view: int | None) -> torch.Tensor:
        """The tree's node tokens ``[n]`` (the root's slot is filled on the host)."""
        run = d.runner
        stable, pos = run.stable_dev, run.pos_dev
        tokens = torch.zeros(self.max_tree_size, dtype=torch.long, device=run.device)
        _, top = d.topk(run.last, self.shape.max_rank)
        first, ranks = self.first
        tokens[first] = top[0, ranks]
        hidden_prev = run.last
        for level, step in enumerate(self.plan, start=1):
            m = step["rows"].shape[0]
            v = view if view is not None else run.stable + step["base"] + m
            out = run.run(
                d.tree_inputs(d.token_embeds(tokens[step["rows"]]), hidden_prev[step["hidden_from"]]),
                (pos + level - 1).expand(m),
                run.visible(step["anc"], v),
                stable + step["base"] + torch.arange(m, device=run.device),
                v,
            )
            _, top = d.topk(out, self.shape.max_rank)
            tokens[step["children"]] = top[step["child_row"], step["child_rank"]]
            hidden_prev = out
        return tokens

    def tree(self, out: torch.Tensor, root: int) -> DraftTree:
        tokens = out.tolist()
        tokens[0] = root
        return DraftTree(tokens, list(self.shape.parents))
