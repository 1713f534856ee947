"""Medusa-1: residual heads on the target's last hidden state propose the next few tokens."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.fusion import draft_topk
from mmspec.graphs import Step, StepCache
from mmspec.methods.base import Capture, DecodeContext, Drafter, ForwardOutput, RoundResult, SpecArgError
from mmspec.methods.checkpoints import DraftCheckpoint
from mmspec.methods.draft_loading import load_draft
from mmspec.methods.draft_nets import DraftConfig, MedusaHeads
from mmspec.methods.draft_tree import select_tree
from mmspec.tree import DraftTree


class Medusa(Drafter):
    """Head ``i`` (applied to the hidden state that produced the tree root) scores the token ``i + 1``
    places after the root; the target's lm_head gives its logits. Children are not conditioned on
    their parent, so the tree is the product of the heads' top-k lists, cut to the best
    ``total_token - 1`` nodes by cumulative log-probability."""

    name = "medusa"
    paper = "Medusa (Cai et al., ICML 2024, arXiv 2401.10774)"
    #: expand: which nodes of a level get children. ``budget`` (default): every node that can still
    #: make the final tree (the level's best ``total_token - 1``); ``top_k``: only the level's
    #: ``top_k`` best, as MMSpec's Medusa did (a beam; smaller candidate pool, other trees).
    defaults = {
        "checkpoint": "",
        "num_heads": 3,
        "top_k": 8,
        "total_token": 30,
        "expand": "budget",
        "seed": 0,
    }
    presets = {"mmspec": {"num_heads": 3, "top_k": 8, "total_token": 30, "expand": "top_k"}}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        for key in ("num_heads", "top_k", "total_token"):
            if self.args[key] < 1:
                raise SpecArgError(f"medusa: {key} must be >= 1")
        if self.args["expand"] not in ("budget", "top_k"):
            raise SpecArgError(f"medusa: expand must be budget or top_k, got {self.args['expand']!r}")
        t = self.target
        self.net, self.checkpoint_info = self._load()
        self.net.to(device=t.device, dtype=t.dtype).eval().requires_grad_(False)
        final = (t.num_layers,)
        self.capture_prefill = Capture(hidden=final)
        self.capture_verify = Capture(hidden=final)
        # the hidden state that produced the current root (a fixed buffer: the graph step reads it)
        self._h = torch.zeros(1, t.hidden_size, dtype=t.dtype, device=t.device)
        self._steps = None if t.execution == "eager" else StepCache(t.device, t.execution)

    def _load(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        t, source = self.target, self.args["checkpoint"]
        if not source:
            raise SpecArgError(
                "medusa: no published Medusa heads exist for these VLMs; pass --spec_args checkpoint=DIR "
                "(heads in Medusa's layout, e.g. a state_19/ folder) or checkpoint=random"
            )
        cfg = DraftConfig.from_target(t.text_config)

        def build_loaded(ckpt: DraftCheckpoint) -> torch.nn.Module:
            if ckpt.config and int(ckpt.config.get("hidden_size", t.hidden_size)) != t.hidden_size:
                raise SpecArgError(f"medusa: heads in {source} have hidden_size {ckpt.config['hidden_size']}, "
                                   f"the target has {t.hidden_size}: not heads for this model")  # fmt: skip
            heads = 1 + max(
                (int(k.split(".")[1]) for k in ckpt.state_dict if k.startswith("medusa_head.")), default=-1
            )
            if heads != int(self.args["num_heads"]):
                raise SpecArgError(
                    f"medusa: {source} holds {heads} heads but num_heads={self.args['num_heads']}"
                )
            return MedusaHeads(cfg, heads)

        net, info = load_draft(
            source, method="medusa", target=t, seed=int(self.args["seed"]),
            build_random=lambda: MedusaHeads(cfg, int(self.args["num_heads"])), build_loaded=build_loaded,
            fill={"embed_tokens.weight": t.embedding_weight.detach().cpu()}, subfolders=("state_19",),
        )  # fmt: skip
        info.pop("config", None)
        return net, info

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.checkpoint_info}

    def max_tree_size(self) -> int:
        return int(self.args["total_token"])

    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        self._h.copy_(prefill.hidden[self.target.num_layers][-1:])

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        self._h.copy_(result.verify.hidden[self.target.num_layers][result.path[-1]][None])

    def _head_topk(self) -> torch.Tensor:
        """[2, heads, top_k]: each head's best log-probabilities and token ids."""
        logits = self.target.lm_head(self.net(self._h)[:, 0])  # [heads, V]
        s, t = draft_topk(logits, int(self.args["top_k"]), self.target.fusion != "none")
        return torch.stack([s.double(), t.double()])

    def _step(self) -> Step:
        return self._steps.get("propose", lambda: Step(self._head_topk))

    @torch.no_grad()
    def prepare(self) -> int:
        if self._steps is None or self._steps.mode != "graph":
            return 0
        self._steps.capture(self._step())
        return 1

    @property
    def capture_time_s(self) -> float:
        return self._steps.capture_time_s if self._steps is not None else 0.0

    @torch.no_grad()
    def propose(self, ctx: DecodeContext) -> DraftTree:
        k = int(self.args["top_k"])
        packed = (self._head_topk() if self._steps is None else self._steps.run(self._step())).cpu()
        head_s, head_t = packed[0].tolist(), [[int(x) for x in row] for row in packed[1].tolist()]
        scores, tokens, parents = [], [], []
        frontier = [(-1, 0.0)]  # (candidate index, cumulative score)
        for level in range(len(head_t)):
            nxt = []
            for parent, base in frontier:
                for j in range(k):
                    scores.append(base + head_s[level][j])
                    tokens.append(head_t[level][j])
                    parents.append(parent)
                    nxt.append((len(tokens) - 1, scores[-1]))
            # a node outside its level's best `budget` can neither be chosen nor have chosen children
            width = k if self.args["expand"] == "top_k" else int(self.args["total_token"]) - 1
            frontier = sorted(nxt, key=lambda c: -c[1])[:width]
        return select_tree(ctx.last_token, tokens, parents, scores, int(self.args["total_token"]) - 1)
