"""Shared helpers for tests that need a tiny model (loaded once per process).

``MMSPEC_TEST_DEVICE`` (default ``cpu``) and ``MMSPEC_TEST_EXECUTION`` (default: the device's
default, ``graph`` on CUDA) select where the tiny models run, so the same lossless tests check
CUDA-graph execution on a GPU machine; ``MMSPEC_TEST_FUSION`` (default: the execution's default)
picks the fusion level there (e.g. ``norms`` to check the fallback level).
"""

from __future__ import annotations

import os
from functools import cache

from PIL import Image, ImageDraw

TINY_MODELS = ("tiny-qwen25vl", "tiny-llava15", "tiny-llava16")
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@cache
def tiny_adapter(name: str, dtype: str = "float64"):
    """A tiny model of the real architecture, loaded through the same path as real checkpoints."""
    from mmspec.adapters import load_model

    return load_model(name, model_args_for_tests(dtype))


def model_args_for_tests(dtype: str = "float64") -> dict:
    args = {"dtype": dtype, "device": os.environ.get("MMSPEC_TEST_DEVICE", "cpu")}
    if args["device"] != "cpu":
        args["max_cache_len"] = 512  # tiny prompts: fewer KV-view buckets to capture (grows if needed)
    if os.environ.get("MMSPEC_TEST_EXECUTION"):
        args["execution"] = os.environ["MMSPEC_TEST_EXECUTION"]
    if os.environ.get("MMSPEC_TEST_FUSION"):  # e.g. the GPU tests at fusion=layers
        args["fusion"] = os.environ["MMSPEC_TEST_FUSION"]
    return args


@cache
def looping_adapter(name: str = "tiny-qwen25vl"):
    """A separate tiny model whose attention outputs are scaled by 0.02, with stop tokens off.

    The random tiny models produce loop-free noise, so context-copying drafters never hit on them.
    Damping every language-model ``o_proj`` makes the model nearly a bigram model: greedy decoding
    falls into cycles and its answers repeat earlier text, which is where drafts should hit. Its
    output still depends on the prompt and the KV cache. Own instance: the shared one is untouched.
    """
    import torch

    from mmspec.adapters import load_model

    adapter = load_model(name, model_args_for_tests("float64"))
    damped = 0
    with torch.no_grad():
        for pname, param in adapter.model.named_parameters():
            if "language_model" in pname and pname.endswith("self_attn.o_proj.weight"):
                param.mul_(0.02)
                damped += 1
    assert damped > 0, "no attention output projection found to damp"
    adapter.stop_token_ids = frozenset({-1})  # fixed length: MAT measured over whole budgets
    return adapter


def make_image(size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    img = Image.new("RGB", size, (30 + 40 * seed % 200, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, size[0] // 2, size[1] // 2], fill=(220, 40, 40))
    draw.ellipse([size[0] // 2, size[1] // 3, size[0] - 5, size[1] - 5], fill=(240, 220, 30))
    return img


def messages(question: str, image: bool = True) -> list[dict]:
    user = [{"type": "image"}] if image else []
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [*user, {"type": "text", "text": question}]},
    ]


def prompt(adapter, question: str = "What is in the image? Describe it.", image: bool = True, seed: int = 0):
    return adapter.encode(messages(question, image), [make_image(seed=seed)] if image else [])
