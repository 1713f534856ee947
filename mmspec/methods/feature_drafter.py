"""The shared machinery of feature-level draft models (EAGLE-1/2/3, MSD, ViSpec).

Convention (EAGLE's): draft position ``t`` reads the pair (embedding of token ``t+1``, target
feature at ``t``) and predicts the feature at ``t+1``, whose logits give token ``t+2``.

- ``begin``: after the target's prefill, the draft runs over every prompt pair (its own KV cache)
  and keeps the output at the last one, which scores the children of the tree root.
- ``propose``: the expansion (EAGLE-1's static or EAGLE-2's dynamic tree, :mod:`.expansion`) feeds
  the kept nodes through the draft level by level; the host turns its one output into the tree.
- ``observe``: tree rows are dropped, and the accepted pairs (accepted tokens and bonus, with the
  target's features at the accepted nodes) are appended — the draft stays in step with exactly
  the tokens the target committed.

Execution follows the target's mode. The prompt pass is eager (like the target's prefill). A
round's whole proposal and the accepted-pairs append are each one *step* over static buffers
(:class:`~mmspec.methods.draft_runner.DraftRunner`): one CUDA graph each in ``graph`` mode (the
draft layer's norms/MLP compiled like the target's); ``static`` runs the same steps eagerly (CPU
tests); ``eager`` uses exact shapes.

Methods differ only in their network, their features and how the prompt becomes draft inputs,
through the hooks ``prompt_inputs``, ``tree_inputs``, ``accepted_inputs``, ``features``, ``topk``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch

from mmspec.fusion import draft_topk
from mmspec.graphs import LEN_STEP
from mmspec.methods.autotune import autotune_total_tokens
from mmspec.methods.base import Capture, DecodeContext, Drafter, ForwardOutput, RoundResult, SpecArgError
from mmspec.methods.checkpoints import DraftCheckpoint, default_checkpoint
from mmspec.methods.draft_configs import published_config
from mmspec.methods.draft_loading import load_draft
from mmspec.methods.draft_nets import DraftConfig
from mmspec.methods.draft_runner import DraftRunner
from mmspec.methods.expansion import DynamicExpansion, StaticExpansion
from mmspec.tree import DraftTree


def image_mask(ids: torch.Tensor, image_token_ids: frozenset[int]) -> torch.Tensor:
    """Which of ``ids`` are image placeholders. Prompt pair row ``t`` holds token ``t + 1`` in
    ``_prompt_ids`` (``ids = tokens[1:]``) and token ``t`` in ``tokens[:-1]``: pass the one meant."""
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for tok in image_token_ids:
        mask |= ids == tok
    return mask


class FeatureDrafter(Drafter):
    """Base class; subclasses set ``checkpoint_method`` and build their network."""

    checkpoint_method: ClassVar[str] = "eagle"
    static_choices: ClassVar[tuple | None] = None  # EAGLE-1's fixed tree; None = EAGLE-2 dynamic tree
    require_config: ClassVar[bool] = False
    #: added to the draft positions of dynamic-tree levels (MSD's MMSpec-LLaVA compatibility)
    tree_position_offset: int = 0

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        self.total_token_auto = self.args.get("total_token") == -1
        if self.total_token_auto:
            self.args["total_token"] = autotune_total_tokens(self.target)
        for key in ("depth", "top_k", "total_token"):
            if key in self.args and self.args[key] < 1:
                raise SpecArgError(
                    f"{self.name}: {key} must be >= 1 (got {self.args[key]}; total_token=-1 picks it by timing)"
                )
        self.net, self.checkpoint_info = self._load()
        self.net.to(device=self.target.device, dtype=self.target.dtype).eval().requires_grad_(False)
        self.feature_layers = self.choose_feature_layers()
        self.capture_prefill = Capture(hidden=self.feature_layers, embeds=True)
        self.capture_verify = Capture(hidden=self.feature_layers)
        choices = self.static_choices
        self.expansion = (
            StaticExpansion(choices, self.target.device)
            if choices
            else DynamicExpansion(
                *(self.args[k] for k in ("depth", "top_k", "total_token")),
                float(self.args.get("threshold", 0.0) or 0.0),
            )  # fmt: skip
        )
        self.runner = DraftRunner(self.net, self.target, self.expansion.levels + 1, self.feature_width())
        if self.target.fusion != "none":  # the draft layer fused like the target's (mmspec.fusion)
            from mmspec.fusion import compile_layers

            layers = getattr(self.net, "layers", None) or [self.net.midlayer]
            compile_layers(
                layers,
                getattr(self.net, "norm", None),
                self.target.fusion,
                getattr(self.net, "rotary_emb", None),
            )

    # ---------------------------------------------------------------- loading
    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        raise NotImplementedError

    def draft_config(self, raw: dict[str, Any]) -> DraftConfig:
        """The network's settings from a draft ``config.json`` (methods add their loaders' rules)."""
        return DraftConfig.from_json(raw)

    def random_config(self) -> DraftConfig:
        """What a published draft of this target would carry (``checkpoint=random``, a missing config)."""
        t = self.target
        return self.draft_config(
            published_config(self.checkpoint_method, t.family, t.text_config, t.pad_token_id)
        )

    def _load(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        t = self.target
        source = self.args.get("checkpoint") or default_checkpoint(t.pretrained, self.checkpoint_method)
        if not source:
            raise SpecArgError(
                f"{self.name}: no published {self.checkpoint_method} draft is known for {t.pretrained!r}; "
                "pass --spec_args checkpoint=DIR (a draft in the published layout) or checkpoint=random"
            )

        def build_loaded(ckpt: DraftCheckpoint) -> torch.nn.Module:
            cfg = self.draft_config(ckpt.config) if ckpt.config else self.random_config()
            self.check_config(cfg, source)
            return self.build(cfg)

        return load_draft(
            source, method=self.checkpoint_method, target=t, seed=int(self.args.get("seed", 0)),
            build_random=lambda: self.build(self.random_config()), build_loaded=build_loaded,
            fill={"embed_tokens.weight": t.embedding_weight.detach().cpu()}, require_config=self.require_config,
        )  # fmt: skip

    def check_config(self, cfg: DraftConfig, source: Any) -> None:
        if cfg.hidden_size != self.target.hidden_size:
            raise SpecArgError(
                f"{self.name}: draft {source} has hidden_size {cfg.hidden_size}, the target "
                f"{self.target.pretrained} has {self.target.hidden_size}: not a draft for this model"
            )

    def describe(self) -> dict[str, Any]:
        info = {k: v for k, v in self.checkpoint_info.items() if k != "config"}
        auto = {"total_token_auto": True} if self.total_token_auto else {}
        return {**super().describe(), **info, **auto, "feature_layers": list(self.feature_layers)}

    # ------------------------------------------------------------------ hooks
    def feature_width(self) -> int:
        """Width of one position's target features (EAGLE-3 concatenates three layers)."""
        return int(self.target.hidden_size)

    def choose_feature_layers(self) -> tuple[int, ...]:
        return (self.target.num_layers,)  # the final-normed hidden state (what the lm_head reads)

    def features(self, hidden: dict[int, torch.Tensor], rows: Any = slice(None)) -> torch.Tensor:
        return hidden[self.feature_layers[0]][rows]

    def prompt_inputs(
        self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        """Draft inputs and positions for the prompt pairs (default: one fused row per pair)."""
        return self.net.fuse(embeds, feats), torch.arange(feats.shape[0], device=feats.device)

    def tree_inputs(self, embeds: torch.Tensor, hidden: torch.Tensor) -> Any:
        return self.net.fuse(embeds, hidden)

    def accepted_inputs(self, embeds: torch.Tensor, feats: torch.Tensor) -> Any:
        return self.net.fuse(embeds, feats)

    def topk(self, hidden: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k log-probabilities and target token ids of the draft outputs ``hidden`` [n, H]."""
        return draft_topk(self.target.lm_head(hidden), k, self.target.fusion != "none")

    def token_embeds(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net.embed_tokens(ids)

    def merged_image_embeds(
        self, ctx: DecodeContext, ids: torch.Tensor, embeds: torch.Tensor
    ) -> torch.Tensor:
        """``embeds`` (one row per prompt pair) with the target's merged input embeddings
        (projected vision features) at image rows."""
        if ctx.prompt_embeds is None:
            return embeds
        rows = image_mask(ids, ctx.image_token_ids)
        rows[-1] = False  # the last pair's token is the first generated one (text)
        merged = ctx.prompt_embeds[1:].to(embeds.dtype)
        out = embeds.clone()
        out[:-1][rows[:-1]] = merged[rows[:-1]]
        return out

    def pair_inputs(self, ctx: DecodeContext, feats: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Draft inputs and positions of the pairs (token ``t+1``, feature ``t``) for ``t`` below
        ``ctx.prompt_len``: what ``begin`` runs over a prompt, and what the trainer trains on
        (``mmspec.train``) — one definition of every row and position."""
        ids = torch.tensor(ctx.tokens[1 : ctx.prompt_len + 1], device=feats.device)  # token t+1 of row t
        self._prompt_ids = ids
        return self.prompt_inputs(ctx, self.token_embeds(ids), feats)

    # --------------------------------------------------------------- lifecycle
    @torch.no_grad()
    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        run = self.runner
        run.cache.reset()
        run.reserve(ctx.prompt_len + ctx.max_new_tokens + self.expansion.entries + run.path_max + LEN_STEP)
        x, positions = self.pair_inputs(ctx, self.features(prefill.hidden))
        run.run_prompt(x, positions)
        run.next_pos = ctx.prompt_len
        run.sync()

    @torch.no_grad()
    def propose(self, ctx: DecodeContext) -> DraftTree:
        run = self.runner
        if run.steps is None:
            out = self.expansion.rows(self, None)
        else:
            out = run.steps.run(self._step("propose", run.view(self.expansion.entries)))
        return self.expansion.tree(out, ctx.last_token)

    @torch.no_grad()
    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        run, path = self.runner, result.path
        n = len(path)
        run.sync(n, [result.tree.tokens[i] for i in path[1:]] + [result.bonus], path)
        run.accepted[:n].copy_(self.features(result.verify.hidden, run.rows_dev(n)))
        if run.steps is None:
            self._append_rows(None, n)
        else:
            run.steps.run(self._step("append", run.view(run.path_max)))
        run.advance(n)

    def _append_rows(self, view: int | None, n: int) -> None:
        """Append ``n`` (padded) accepted pairs; keeps the output of the last real one."""
        run = self.runner
        x = self.accepted_inputs(self.token_embeds(run.ids_dev(n)), run.accepted[:n])
        view = view if view is not None else run.stable + n
        offs = torch.arange(n, device=run.device)
        out = run.run(x, run.pos_dev + offs, run.visible(run.tril[:n, :n], view), run.stable_dev + offs, view)
        run.last.copy_(out.index_select(0, (run.valid_dev - 1).view(1)))
        run.state.device[:2] += run.valid_dev  # stable length and next position, for the next proposal

    def max_tree_size(self) -> int:
        return self.expansion.max_tree_size

    # ------------------------------------------------------------- graph steps
    def _step(self, kind: str, view: int):
        """The static-shape ``propose`` or ``append`` (padded to the longest path) step for a KV view."""
        run = self.runner
        if kind == "propose":
            return run.step((kind, view), partial(self.expansion.rows, self, view))
        return run.step((kind, view), partial(self._append_rows, view, run.path_max))

    @torch.no_grad()
    def prepare(self) -> int:
        """Graph mode: capture the propose and append steps for every KV view before timing."""
        run = self.runner
        if run.steps is None or run.steps.mode != "graph":
            return 0
        run.stable = run.next_pos = 0
        run.sync(1, [0], [0])  # scratch state: one accepted row (the append reads row n - 1)
        count = 0
        for view in run.views(max(self.expansion.entries, run.path_max)):
            for kind in ("propose", "append"):
                run.steps.capture(self._step(kind, view))
                count += 1
        return count

    @property
    def capture_time_s(self) -> float:
        return self.runner.steps.capture_time_s if self.runner.steps is not None else 0.0
