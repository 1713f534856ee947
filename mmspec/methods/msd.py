"""MSD: EAGLE-2 decoding whose draft reads raw visual embeddings at image positions."""

from __future__ import annotations

import torch

from mmspec.methods.base import DecodeContext
from mmspec.methods.draft_nets import DraftConfig, EagleDraft
from mmspec.methods.feature_drafter import FeatureDrafter


class MSD(FeatureDrafter):
    """Multimodal Speculative Decoding: text rows are ``fc([emb ; feature])`` as in EAGLE; image rows
    bypass ``fc`` and feed the projected vision features (the target's input embeddings) straight
    into the draft layer. On Qwen2.5-VL the draft is a Qwen2-VL layer (input norm, biased q/k/v,
    rope theta 1e6 with equal ids on the three axes, i.e. 1-D rope); on LLaVA a Llama layer."""

    name = "msd"
    paper = "MSD (Lin et al., 2025, arXiv 2505.14260)"
    checkpoint_method = "msd"
    require_config = True
    defaults = {"checkpoint": "", "depth": 5, "top_k": 10, "total_token": 59, "threshold": 0.0, "seed": 0}

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return EagleDraft(cfg, input_norm=cfg.model_type == "qwen2_vl")

    def random_config(self) -> DraftConfig:
        tc = self.adapter.text_config
        if self.adapter.family == "qwen25vl":
            return DraftConfig.from_target(tc, qkv_bias=True, model_type="qwen2_vl",
                                           rope_theta=float(getattr(tc, "rope_theta", 1e6) or 1e6))  # fmt: skip
        return DraftConfig.from_target(tc, model_type="llava")

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        x = self.merged_image_embeds(ctx, self._prompt_ids, self.net.fuse(embeds, feats))  # bypass fc
        return x, torch.arange(feats.shape[0], device=feats.device)
