"""EAGLE-1 (static tree), EAGLE-2 (dynamic tree) and EAGLE-3 (fused multi-layer features)."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.methods.base import DecodeContext, SpecArgError
from mmspec.methods.draft_nets import DraftConfig, Eagle3Draft, EagleDraft
from mmspec.methods.draft_tree import EAGLE_7B_CHOICES
from mmspec.methods.feature_drafter import FeatureDrafter

#: MMSpec's EAGLE drafts were trained with merged vision embeddings at image positions on
#: Qwen2.5-VL and with the embedded ``<image>`` token on LLaVA; ``image_embeds=auto`` follows that.
_MERGED_BY_DEFAULT = ("qwen25vl",)


class _EagleBase(FeatureDrafter):
    checkpoint_method = "eagle"

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return EagleDraft(cfg)

    def random_config(self) -> DraftConfig:
        tc = self.adapter.text_config
        return DraftConfig.from_target(tc, qkv_bias=bool(getattr(tc, "qkv_bias", self.adapter.family == "qwen25vl")),
                                       rope_theta=float(getattr(tc, "rope_theta", 10000.0) or 10000.0))  # fmt: skip

    def _merged(self) -> bool:
        mode = self.args.get("image_embeds", "auto")
        if mode not in ("auto", "merged", "token"):
            raise SpecArgError(f"{self.name}: image_embeds must be auto, merged or token (got {mode!r})")
        return mode == "merged" or (mode == "auto" and self.adapter.family in _MERGED_BY_DEFAULT)

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        if self._merged():
            embeds = self.merged_image_embeds(ctx, self._prompt_ids, embeds)
        return self.net.fuse(embeds, feats), torch.arange(feats.shape[0], device=feats.device)


class Eagle(_EagleBase):
    """EAGLE-1: the draft expands EAGLE's published static 7B tree (25 nodes, depth 5)."""

    name = "eagle"
    paper = "EAGLE (Li et al., ICML 2024, arXiv 2401.15077)"
    defaults = {"checkpoint": "", "image_embeds": "auto", "seed": 0}
    static_choices = EAGLE_7B_CHOICES


class Eagle2(_EagleBase):
    """EAGLE-2: the same draft with a dynamic, confidence-ranked tree."""

    name = "eagle2"
    paper = "EAGLE-2 (Li et al., EMNLP 2024, arXiv 2406.16858)"
    defaults = {"checkpoint": "", "depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0,
                "image_embeds": "auto", "seed": 0}  # fmt: skip


#: MMSpec's EAGLE-3 drafts were trained on hidden_states[0..2] (embeddings, layers 0 and 1)
MMSPEC_EAGLE3_LAYERS = (0, 1, 2)


class Eagle3(FeatureDrafter):
    """EAGLE-3: low/mid/high target features fused by ``fc``, own head over a draft vocabulary."""

    name = "eagle3"
    paper = "EAGLE-3 (Li et al., 2025, arXiv 2503.01840)"
    checkpoint_method = "eagle3"
    defaults = {"checkpoint": "", "depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0,
                "layers": "auto", "seed": 0}  # fmt: skip

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return Eagle3Draft(cfg)

    def random_config(self) -> DraftConfig:
        return DraftConfig.from_target(self.adapter.text_config, draft_vocab_size=self.adapter.vocab_size)

    def check_config(self, cfg: DraftConfig, source: Any) -> None:
        if (cfg.target_hidden_size or cfg.hidden_size) != self.adapter.hidden_size:
            super().check_config(cfg, source)

    def feature_width(self) -> int:
        return 3 * int(self.adapter.hidden_size)

    def choose_feature_layers(self) -> tuple[int, ...]:
        layers = self.args["layers"]
        n = self.adapter.num_layers
        if layers == "auto":
            src = str(self.checkpoint_info.get("checkpoint", ""))
            # EAGLE-3 reads the inputs of layers 2, L/2 and L-3; MMSpec's release used 0, 1, 2
            order = MMSPEC_EAGLE3_LAYERS if "Cloudriver/" in src else (min(2, n), n // 2, max(n - 3, 0))
        else:
            order = tuple(
                int(x) for x in (layers if isinstance(layers, (list, tuple)) else str(layers).split(":"))
            )
        if len(order) != 3 or not all(0 <= x <= n for x in order):
            raise SpecArgError(f"eagle3: layers must be three hidden-state indices in 0..{n}, got {layers!r}")
        self.layer_order = order
        return tuple(sorted(set(order)))

    def features(self, hidden: dict[int, torch.Tensor], rows: Any = slice(None)) -> torch.Tensor:
        return torch.cat([hidden[i][rows] for i in self.layer_order], dim=-1)

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        # MMSpec's EAGLE-3 convention: no features and the pad token at image positions
        image = self.shifted_image_rows(ctx, self._prompt_ids)
        if image.any():
            pad = self.net.config.pad_token_id
            if pad is not None:
                embeds = torch.where(image[:, None], self.net.embed_tokens.weight[pad], embeds)
            feats = feats.masked_fill(image[:, None], 0)
        return (embeds, self.net.project(feats)), torch.arange(feats.shape[0], device=feats.device)

    def tree_inputs(self, embeds: torch.Tensor, hidden: torch.Tensor):
        return embeds, hidden

    def accepted_inputs(self, embeds: torch.Tensor, feats: torch.Tensor):
        return embeds, self.net.project(feats)

    def topk(self, hidden: torch.Tensor, k: int):
        logp = torch.log_softmax(self.net.logits(hidden).float(), dim=-1)
        s, i = logp.topk(k, dim=-1)
        return s, self.net.to_target_ids(i)
