"""``config.json`` of each draft method, shaped like the reference trainers write it.

The published drafts ship the config their trainer copied next to the weights, and each reference
loader reads a few fields of it (see ``DraftConfig``). These functions produce that file for a given
target — the same keys and conventions, the target's dimensions — so that

- ``checkpoint=random`` drafts are built exactly like a published draft of that target would be,
- our trainer (``mmspec-train``) exports drafts that any loader of the published format reads,
- tests can write published-style folders for the tiny targets.

Sources (reference repositories): MMSpec ``train/configs/qwen2.5vl_config.json`` /
``llava1.5_7b_config.json`` (EAGLE, also used for Medusa), ``train/configs/*_eagle3_config.json``,
``train/msd/qwen2vl_config.json`` / ``llava_v15_7B_config.json``, ViSpec ``vispec/train/*_config.json``.
"""

from __future__ import annotations

from typing import Any

#: MMSpec's EAGLE-3 draft vocabulary for Qwen2.5-VL (its config's ``draft_vocab_size``)
QWEN_EAGLE3_DRAFT_VOCAB = 32000


def rope_theta(text_config: Any, default: float = 10000.0) -> float:
    """The target's rope base (transformers 5 keeps it in ``rope_parameters``)."""
    params = getattr(text_config, "rope_parameters", None) or {}
    value = params.get("rope_theta") if isinstance(params, dict) else None
    return float(value or getattr(text_config, "rope_theta", None) or default)


def mrope_section(text_config: Any) -> list[int]:
    """Qwen's multimodal rope sections (sum = head_dim / 2)."""
    for source in (getattr(text_config, "rope_parameters", None), getattr(text_config, "rope_scaling", None)):
        if isinstance(source, dict) and source.get("mrope_section"):
            return [int(x) for x in source["mrope_section"]]
    half = int(text_config.hidden_size) // int(text_config.num_attention_heads) // 2
    return [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]  # 16/24/24 at head_dim 128


def _dims(tc: Any, **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": int(tc.hidden_size),
        "intermediate_size": int(tc.intermediate_size),
        "num_attention_heads": int(tc.num_attention_heads),
        "num_key_value_heads": int(tc.num_key_value_heads),
        "num_hidden_layers": 1,
        "vocab_size": int(tc.vocab_size),
        **extra,
    }


def _ids(tc: Any) -> dict[str, Any]:
    return {"bos_token_id": tc.bos_token_id, "eos_token_id": tc.eos_token_id}


def published_config(
    method: str, family: str, text_config: Any, pad_token_id: int | None = None
) -> dict[str, Any]:
    """The draft ``config.json`` a reference trainer writes for ``method`` on a ``family`` target.

    ``method``: eagle (EAGLE-1/2 and Medusa), eagle3, msd, vispec. ``family``: qwen25vl, llava15,
    llava16. ``pad_token_id``: the target tokenizer's pad id (EAGLE-3's Qwen config carries it).
    """
    qwen = family == "qwen25vl"
    tc = text_config
    common = {"hidden_act": "silu", "initializer_range": 0.02, "use_cache": True}
    if method in ("eagle", "eagle2", "medusa"):
        cfg = {"architectures": ["LlamaForCausalLM"], **_dims(tc), "rms_norm_eps": 1e-6,
               "max_position_embeddings": 4096, **common}  # fmt: skip
        if not qwen:
            cfg.update({"draft_vocab_size": int(tc.vocab_size), "pad_token_id": 0, **_ids(tc)})
        return cfg
    if method == "eagle3":
        vocab = int(tc.vocab_size)
        if qwen:
            draft_vocab = QWEN_EAGLE3_DRAFT_VOCAB if vocab > 2 * QWEN_EAGLE3_DRAFT_VOCAB else vocab
            return {"architectures": ["Qwen2VLForConditionalGeneration"], **_ids(tc), **common,
                    **_dims(tc), "max_position_embeddings": 32768, "model_type": "qwen2_vl",
                    "pad_token_id": pad_token_id, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                    "torch_dtype": "bfloat16", "draft_vocab_size": draft_vocab}  # fmt: skip
        return {"architectures": ["LlavaForConditionalGeneration"], **_dims(tc), "draft_vocab_size": vocab,
                "rms_norm_eps": 1e-6, "max_position_embeddings": 4096, **common, "pad_token_id": 0,
                **_ids(tc)}  # fmt: skip
    if method == "msd":
        if qwen:  # a Qwen2-VL text config; its decoder layer always has q/k/v biases (no qkv_bias key)
            return {"architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0, **_ids(tc),
                    **common, **_dims(tc), "max_position_embeddings": 32768, "max_window_layers": 28,
                    "model_type": "qwen2_vl", "rms_norm_eps": 1e-6, "rope_theta": rope_theta(tc, 1e6),
                    "sliding_window": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                    "use_sliding_window": False,
                    "rope_scaling": {"type": "mrope", "mrope_section": mrope_section(tc)}}  # fmt: skip
        return {"architectures": ["LlavaLlamaForCausalLM"], **_ids(tc), **common, **_dims(tc),
                "max_position_embeddings": 4096, "model_type": "llava", "pad_token_id": 0,
                "pretraining_tp": 1, "rms_norm_eps": 1e-5, "rope_scaling": None, "tie_word_embeddings": False,
                "torch_dtype": "float16"}  # fmt: skip
    if method == "vispec":  # plain multi-head attention: kv heads = heads
        heads = int(tc.num_attention_heads)
        if qwen:
            return {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
                    **_dims(tc, num_key_value_heads=heads), "max_position_embeddings": 8192,
                    "rms_norm_eps": 1e-6, "rope_theta": rope_theta(tc, 1e6), "rope_scaling": None,
                    "qkv_bias": True, **_ids(tc), "attention_dropout": 0.0, "max_window_layers": 28,
                    "sliding_window": 32768, "use_sliding_window": False, "tie_word_embeddings": False,
                    "torch_dtype": "bfloat16", **common}  # fmt: skip
        return {"architectures": ["LlavaNextForConditionalGeneration"], "model_type": "llava_next",
                **_dims(tc, num_key_value_heads=heads), "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
                "rope_scaling": None, "pretraining_tp": 1, **_ids(tc), "pad_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "float16", **common}  # fmt: skip
    raise ValueError(f"no published draft config for method {method!r}")
