"""Real 7B architectures with random weights, for speed measurements without checkpoints.

No hub is reachable on the GPU machine, so benchmarks build Qwen2.5-VL-7B and LLaVA-1.5-7B from
their published dimensions with random bf16 weights directly on the device, and reuse the tiny
models' tokenizer/processor (their special-token ids are written into the big configs). Timing
depends on shapes, not on weight values, so these measure what the real checkpoints would cost.
"""

from __future__ import annotations

import torch

from mmspec.adapters.base import VLMAdapter
from mmspec.adapters.llava import Llava15Adapter
from mmspec.adapters.qwen25vl import Qwen25VLAdapter
from mmspec.adapters.tiny import ensure_tiny_model

QWEN_TEXT = dict(
    hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000, rms_norm_eps=1e-6,
    rope_theta=1e6, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
)  # fmt: skip
QWEN_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31], in_chans=3,
)  # fmt: skip
LLAMA7B_TEXT = dict(
    hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096, rms_norm_eps=1e-5,
)  # fmt: skip
CLIP_L336 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    image_size=336, patch_size=14, projection_dim=768,
)  # fmt: skip


def _build(model_cls, config, dtype: torch.dtype, device: str):
    torch.manual_seed(0)
    with torch.device(device):
        model = model_cls._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def random_qwen25vl_7b(
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    execution: str | None = None,
    fusion: str | None = None,
) -> VLMAdapter:
    """Qwen2.5-VL-7B-Instruct's architecture (8.3B parameters), random weights."""
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tiny = ensure_tiny_model("tiny-qwen25vl")
    tc = AutoConfig.from_pretrained(tiny)
    ids = {k: getattr(tc, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
    text = dict(QWEN_TEXT, bos_token_id=tc.text_config.bos_token_id, eos_token_id=tc.text_config.eos_token_id,
                pad_token_id=tc.text_config.pad_token_id)  # fmt: skip
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=QWEN_VISION, **ids)
    model = _build(Qwen2_5_VLForConditionalGeneration, cfg, dtype, device)
    processor = AutoProcessor.from_pretrained(tiny, min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    return Qwen25VLAdapter(model, processor, pretrained="random:Qwen2.5-VL-7B", max_cache_len=5120,
                           execution=execution, fusion=fusion)  # fmt: skip


def random_llava15_7b(
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    execution: str | None = None,
    fusion: str | None = None,
) -> VLMAdapter:
    """llava-1.5-7b-hf's architecture (CLIP ViT-L/14-336 + Vicuna-7B), random weights."""
    from transformers import AutoConfig, AutoProcessor, LlavaConfig, LlavaForConditionalGeneration

    tiny = ensure_tiny_model("tiny-llava15")
    tc = AutoConfig.from_pretrained(tiny)
    text = dict(
        LLAMA7B_TEXT,
        model_type="llama",
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=tc.text_config.pad_token_id,
    )
    cfg = LlavaConfig(vision_config=dict(CLIP_L336, model_type="clip_vision_model"), text_config=text,
                      image_token_id=tc.image_token_id, vision_feature_layer=-2,
                      vision_feature_select_strategy="default", projector_hidden_act="gelu")  # fmt: skip
    model = _build(LlavaForConditionalGeneration, cfg, dtype, device)
    processor = AutoProcessor.from_pretrained(tiny)
    processor.image_processor.size = {"shortest_edge": 336}
    processor.image_processor.crop_size = {"height": 336, "width": 336}
    processor.patch_size = 14
    return Llava15Adapter(model, processor, pretrained="random:llava-1.5-7b", max_cache_len=5120,
                           execution=execution, fusion=fusion)  # fmt: skip


BUILDERS = {"qwen25vl-7b": random_qwen25vl_7b, "llava15-7b": random_llava15_7b}


def weight_bytes_per_step(adapter: VLMAdapter) -> int:
    """Bytes a one-token decode step must read: decoder layers, final norm, lm_head (embedding: one row)."""
    lm = adapter.language_model
    n = sum(p.numel() * p.element_size() for name, p in lm.named_parameters() if "embed_tokens" not in name)
    head = adapter.lm_head_module.weight
    return n + head.numel() * head.element_size()


def kv_bytes_per_token(adapter: VLMAdapter) -> int:
    layers, heads, head_dim = adapter.cache.shape
    return 2 * layers * heads * head_dim * adapter.cache.dtype.itemsize
