"""ViSpec: an EAGLE draft with an image adaptor and a global image feature."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.methods.base import DecodeContext, SpecArgError
from mmspec.methods.draft_nets import DraftConfig, ViSpecDraft
from mmspec.methods.feature_drafter import FeatureDrafter, image_mask


class ViSpec(FeatureDrafter):
    """ViSpec (Kang et al., NeurIPS 2025). At prefill each image span of the draft sequence is
    replaced by ``num_q - 1`` adaptor outputs (learned queries cross-attending over the image's
    input embeddings), placed at the span's last ``num_q - 1`` positions; the last adaptor output is
    a global image feature ``g`` fused into every later text row and every drafted row through
    ``img_fc([feature ; g])`` before EAGLE's ``fc``. The draft cache therefore holds fewer entries
    than positions; positions are tracked apart."""

    name = "vispec"
    paper = "ViSpec (Kang et al., NeurIPS 2025, arXiv 2509.15235)"
    checkpoint_method = "vispec"
    require_config = True
    defaults = {"checkpoint": "", "depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0,
                "num_q": 2, "seed": 0}  # fmt: skip
    presets = {"mmspec": {"depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0, "num_q": 2}}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        if int(spec_args.get("num_q", 2)) < 2:
            raise SpecArgError("vispec: num_q must be >= 2 (compressed tokens + one global feature)")
        super().__init__(target, **spec_args)
        # the global image feature of the current turn (a fixed buffer: graph steps read it)
        self._g = torch.zeros(
            1, self.net.config.hidden_size, dtype=self.target.dtype, device=self.target.device
        )

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return ViSpecDraft(cfg, num_q=int(self.args["num_q"]))

    def _global(self, like: torch.Tensor) -> torch.Tensor:
        return self._g

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        ids, dev = self._prompt_ids, feats.device
        image = image_mask(ids, ctx.image_token_ids)
        image[-1] = False
        num_q = int(self.args["num_q"])
        g = torch.zeros_like(feats[:1])
        rows: list[torch.Tensor] = []
        positions: list[torch.Tensor] = []
        t, n = 0, feats.shape[0]
        flags = image.tolist()
        while t < n:
            end = t
            while end < n and flags[end] == flags[t]:
                end += 1
            if flags[t] and ctx.prompt_embeds is not None:  # an image span (pairs t..end-1)
                out = self.net.imadpt(ctx.prompt_embeds[t + 1 : end + 1].to(feats.dtype))
                keep = min(num_q - 1, end - t)
                rows.append(out[num_q - 1 - keep : num_q - 1])
                positions.append(torch.arange(end - keep, end, device=dev))
                g = out[-1:]
            else:
                rows.append(self.net.fuse_global(embeds[t:end], feats[t:end], g))
                positions.append(torch.arange(t, end, device=dev))
            t = end
        self._g.copy_(g.detach())
        return torch.cat(rows), torch.cat(positions)

    def tree_inputs(self, embeds: torch.Tensor, hidden: torch.Tensor):
        return self.net.fuse_global(embeds, hidden, self._global(hidden))

    def accepted_inputs(self, embeds: torch.Tensor, feats: torch.Tensor):
        return self.net.fuse_global(embeds, feats, self._global(feats))
