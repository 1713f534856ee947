"""MSD: EAGLE-2 decoding whose draft reads raw visual embeddings at image positions."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.methods.base import DecodeContext, SpecArgError
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
    #: compat=mmspec_llava: draft tree levels one position later, as MMSpec's LLaVA MSD inference
    #: placed them (it appends the root's embedding twice); prompt and accepted rows are unchanged.
    defaults = {"checkpoint": "", "depth": 5, "top_k": 10, "total_token": 59, "threshold": 0.0,
                "compat": "none", "seed": 0}  # fmt: skip

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        if self.args["compat"] not in ("none", "mmspec_llava"):
            raise SpecArgError(f"msd: compat must be none or mmspec_llava, got {self.args['compat']!r}")
        self.tree_position_offset = 1 if self.args["compat"] == "mmspec_llava" else 0

    @classmethod
    def preset_table(cls, target: Any) -> dict[str, dict[str, Any]]:
        """MMSpec: depth 5, top-k 10; 59 nodes on Qwen2.5-VL, chosen by timing (``-1``) on LLaVA."""
        if target.family == "qwen25vl":
            return {"mmspec": {"depth": 5, "top_k": 10, "total_token": 59, "threshold": 0.0}}
        return {
            "mmspec": {"depth": 5, "top_k": 10, "total_token": -1, "threshold": 0.0, "compat": "mmspec_llava"}
        }

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return EagleDraft(cfg, input_norm=cfg.model_type == "qwen2_vl")

    def draft_config(self, raw: dict[str, Any]) -> DraftConfig:
        """MSD's Qwen2-VL draft layer always has q/k/v biases; its config (a Qwen2-VL text config
        copied by the trainer) has no ``qkv_bias`` key to say so."""
        cfg = DraftConfig.from_json(raw)
        if cfg.model_type == "qwen2_vl" and "qkv_bias" not in raw:
            cfg.qkv_bias = True
        return cfg

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        x = self.merged_image_embeds(ctx, self._prompt_ids, self.net.fuse(embeds, feats))  # bypass fc
        return x, torch.arange(feats.shape[0], device=feats.device)
