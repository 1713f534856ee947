"""Proxy sizes: model shapes, image sizes, data and training budgets per preset.

``micro`` is for CPU tests (builds and trains in seconds); ``S`` (~7M parameters) is the one-command
pipeline smoke size and ``M`` (~20M) the default for measurements on a GPU. Qwen's vision window is
set to the whole image: the non-flash vision attention loops over windows in Python, and the window
size changes nothing that speculative decoding sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FAMILIES = ("qwen25vl", "llava15")


@dataclass(frozen=True)
class Preset:
    size: str
    render_size: int  # generator image side (pixels)
    qwen_image: int  # Qwen processor's fixed side (min = max pixels); tokens = (side / 28) ** 2
    llava_image: int  # CLIP input side; tokens = (side / 14) ** 2
    vocab: int  # tokenizer entries (Qwen: trained; LLaVA: all, incl. the 259 fixed ones)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    mrope: tuple[int, int, int]
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_ffn: int
    lr: float
    warmup_steps: int
    batch_tokens: int  # padded tokens per step (length-bucketed batches)
    max_steps: int  # default step count when no time budget is given
    time_budget: float | None  # default training seconds (sets the step count after calibration)
    n_scenes: int  # training scenes rendered once
    per_scene: int  # conversations per scene
    heldout: int  # held-out samples for the loss gate
    eval_per_category: int  # greedy-decoded held-out samples per category
    eval_max_new_tokens: int
    eval_seconds: float | None  # time limit of the greedy gates (a degenerate target never stalls a build)
    tokenizer_samples: int  # generator samples the BPE is trained on

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    p.size: p
    for p in [
        Preset(
            "micro",
            render_size=112,
            qwen_image=112,
            llava_image=112,
            vocab=768,
            hidden=64,
            layers=2,
            heads=4,
            kv_heads=2,
            ffn=176,
            mrope=(2, 3, 3),
            vision_hidden=32,
            vision_layers=2,
            vision_heads=2,
            vision_ffn=64,
            lr=4e-3,
            warmup_steps=4,
            batch_tokens=2048,
            max_steps=24,
            time_budget=None,
            n_scenes=96,
            per_scene=2,
            heldout=16,
            eval_per_category=1,
            eval_max_new_tokens=24,
            eval_seconds=None,
            tokenizer_samples=400,
        ),
        Preset(
            "S",
            render_size=448,
            qwen_image=336,
            llava_image=224,
            vocab=2048,
            hidden=256,
            layers=6,
            heads=4,
            kv_heads=2,
            ffn=704,
            mrope=(8, 12, 12),
            vision_hidden=128,
            vision_layers=4,
            vision_heads=2,
            vision_ffn=512,
            lr=1e-3,
            warmup_steps=100,
            batch_tokens=65536,
            max_steps=2000,
            time_budget=240.0,
            n_scenes=12000,
            per_scene=4,
            heldout=600,
            eval_per_category=12,
            eval_max_new_tokens=400,
            eval_seconds=120.0,
            tokenizer_samples=6000,
        ),
        Preset(
            "M",
            render_size=448,
            qwen_image=448,
            llava_image=336,
            vocab=4096,
            hidden=384,
            layers=8,
            heads=6,
            kv_heads=2,
            ffn=1024,
            mrope=(8, 12, 12),
            vision_hidden=192,
            vision_layers=4,
            vision_heads=3,
            vision_ffn=768,
            lr=6e-4,
            warmup_steps=100,
            batch_tokens=98304,
            max_steps=2000,
            time_budget=270.0,
            n_scenes=16000,
            per_scene=4,
            heldout=600,
            eval_per_category=12,
            eval_max_new_tokens=400,
            eval_seconds=120.0,
            tokenizer_samples=8000,
        ),
    ]
}


def get_preset(size: str) -> Preset:
    if size not in PRESETS:
        raise ValueError(f"unknown proxy size {size!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[size]


def image_tokens(family: str, preset: Preset) -> int:
    if family == "qwen25vl":
        return (preset.qwen_image // 28) ** 2
    return (preset.llava_image // 14) ** 2


def tiny_spec(family: str, preset: Preset, seed: int, vocab_size: int):
    """The :class:`~mmspec.adapters.tiny.TinySpec` that builds this proxy's (untrained) model."""
    from mmspec.adapters.tiny import TinySpec

    common = dict(
        name=f"proxy-{family}-{preset.size}",
        family=family,
        seed=seed,
        tokenizer_vocab=vocab_size,
        vocab_multiple=64,
        hidden_size=preset.hidden,
        num_layers=preset.layers,
        num_heads=preset.heads,
        num_kv_heads=preset.kv_heads,
        intermediate_size=preset.ffn,
        text_init_std=0.02,
        lm_head_init_std=0.02,
        vision_hidden=preset.vision_hidden,
        vision_layers=preset.vision_layers,
        vision_heads=preset.vision_heads,
        vision_intermediate=preset.vision_ffn,
        vision_init_std=0.02,
    )
    if family == "qwen25vl":
        side = preset.qwen_image
        return TinySpec(
            mirrors="Qwen/Qwen2.5-VL-7B-Instruct",
            min_pixels=side * side,
            max_pixels=side * side,
            mrope_section=preset.mrope,
            fullatt_block_indexes=(preset.vision_layers - 1,),
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            vision_window=side,
            **common,
        )
    if family == "llava15":
        return TinySpec(mirrors="llava-hf/llava-1.5-7b-hf", image_size=preset.llava_image, **common)
    raise ValueError(f"unknown proxy family {family!r}; choose one of {', '.join(FAMILIES)}")
