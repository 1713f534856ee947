"""Qwen2.5-VL: 3-D (temporal, height, width) rope positions that continue from the prompt."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.adapters.base import VLMAdapter


class Qwen25VLAdapter(VLMAdapter):
    """Qwen2.5-VL-3B/7B-Instruct.

    After the model's own prefill computes the multimodal rope index, every later text token
    sits at ``seq_pos + rope_delta`` on all three rope axes (``rope_delta`` is negative when the
    image occupies fewer rope positions than tokens). Tree nodes use ``cache_len + depth``. The
    offset lives in a device tensor so captured CUDA graphs read the current prompt's value.
    """

    family = "qwen25vl"
    architectures = ("Qwen2_5_VLForConditionalGeneration",)

    def __init__(self, model: Any, processor: Any, **kwargs: Any) -> None:
        super().__init__(model, processor, **kwargs)
        self._rope_delta = torch.zeros((), dtype=torch.long, device=self.device)

    def _image_token_ids(self) -> list[int]:
        cfg = self.model.config
        return [int(i) for i in (cfg.image_token_id, getattr(cfg, "video_token_id", None)) if i is not None]

    def _before_prefill(self) -> None:
        self.model.model.rope_deltas = None  # never let a previous prompt's offset leak in

    def _after_prefill(self, position_ids: torch.Tensor | None) -> None:
        deltas = self.model.model.rope_deltas
        self._rope_delta.copy_(deltas.reshape(-1)[0] if deltas is not None else 0)

    @property
    def rope_delta(self) -> int:
        return int(self._rope_delta)

    def position_ids(self, positions: torch.Tensor) -> torch.Tensor:
        n = positions.shape[-1]
        return (positions + self._rope_delta).view(1, 1, n).expand(3, 1, n)
