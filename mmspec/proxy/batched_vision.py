"""One attention call per vision layer for Qwen2.5-VL's tower while a proxy trains.

Without flash attention, transformers' ``Qwen2_5_VLVisionAttention`` splits the patch sequence at
``cu_seqlens`` and calls attention once per image (per window), in Python. A proxy training step
holds ~200 equally sized images, so that loop made the Qwen build ~8x slower per step than
LLaVA's. When every chunk has the same length, the chunks are independent rows of one batched
attention call — the same arithmetic, one launch. Anything else (ragged chunks, flash attention)
falls through to transformers' own forward.

Applied by replacing the modules' ``forward`` (a documented hook) for the build's training and its
teacher-forced losses only; the saved model and every later load use transformers' code as is.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _batched_forward(
    self: torch.nn.Module,
    hidden_states: torch.Tensor,
    cu_seqlens: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_seqlen: int | None = None,
    **kwargs,
) -> torch.Tensor:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as mq

    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    impl = self.config._attn_implementation
    if len(set(lengths)) != 1 or "flash" in str(impl) or position_embeddings is None:
        return type(self).forward(self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)
    seq, chunk = hidden_states.shape[0], lengths[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = mq.apply_rotary_pos_emb_vision(q, k, cos, sin)

    def chunks(t: torch.Tensor) -> torch.Tensor:  # [seq, heads, d] -> [n_chunks, heads, chunk, d]
        return t.reshape(seq // chunk, chunk, self.num_heads, -1).transpose(1, 2)

    attend = ALL_ATTENTION_FUNCTIONS.get_interface(impl, mq.eager_attention_forward)
    out, _ = attend(
        self, chunks(q), chunks(k), chunks(v), attention_mask=None, scaling=self.scaling,
        dropout=0.0 if not self.training else self.attention_dropout, is_causal=False, **kwargs,
    )  # fmt: skip
    return self.proj(out.reshape(seq, -1).contiguous())


@contextmanager
def batched_vision_attention(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, Qwen2.5-VL vision attention modules of ``model`` batch equal chunks;
    yields how many modules were switched (0 for other architectures)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    switched = [m for m in model.modules() if isinstance(m, Qwen2_5_VLVisionAttention)]
    for m in switched:
        m.forward = types.MethodType(_batched_forward, m)
    try:
        yield len(switched)
    finally:
        for m in switched:
            del m.forward  # back to the class's forward
