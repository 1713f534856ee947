"""Tiny offline models of the real VLM architectures, for tests, CI and the README demo.

``ensure_tiny_model(name)`` builds (once) a random-weight model of the *real* architecture, with the real
processor classes, a tokenizer trained locally on a built-in corpus (:mod:`mmspec.adapters.tiny_tokenizer`)
and the family's real chat template (:mod:`mmspec.adapters.chat_templates`), saves it with
``save_pretrained`` and returns the folder. Callers load it back exactly like a real checkpoint::

    from transformers import AutoModelForImageTextToText, AutoProcessor
    folder = ensure_tiny_model("tiny-qwen25vl")
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)

Nothing is downloaded: every component is constructed from code. Builds are deterministic (seeded weights,
deterministic tokenizer training), so two builds give byte-identical ``model.safetensors`` and
``tokenizer.json``.

Folder: ``<cache_dir or $MMSPEC_CACHE or ~/.cache/mmspec>/tiny/<name>-<BUILD_VERSION>``. The model is built
in a temporary folder next to it and renamed into place, so concurrent builders never expose a half-written
folder; a folder is complete when it holds :data:`COMPLETE_MARKER`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

#: Bump when the recipe changes (weights, tokenizer, configs, templates): old folders are then ignored.
BUILD_VERSION = "v2"
#: Written last into a finished build folder; its presence means "complete".
COMPLETE_MARKER = "mmspec_tiny.json"

#: Serialises builds inside one process (torch's global RNG is seeded during a build).
_BUILD_LOCK = threading.Lock()

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class TinySpec:
    """Recipe of one tiny model. Every field is part of the build (bump :data:`BUILD_VERSION` on change).

    Attributes:
        name: registry name (``tiny-qwen25vl``, ``tiny-llava15``, ``tiny-llava16``).
        family: ``qwen25vl`` (``Qwen2_5_VLForConditionalGeneration``), ``llava15``
            (``LlavaForConditionalGeneration``) or ``llava16`` (``LlavaNextForConditionalGeneration``).
        mirrors: the real checkpoint whose architecture, processor and chat template are reproduced.
        seed: ``torch.manual_seed`` used for all weights.
        tokenizer_vocab: entries produced by tokenizer training (Qwen: trained byte-level BPE entries, the 14
            special tokens come on top; LLaVA: everything incl. ``<unk> <s> </s>`` and the 256 byte tokens,
            ``<image>`` (and ``<pad>`` for llava-1.5) come on top).
        vocab_multiple: ``text_config.vocab_size`` is the tokenizer length rounded up to this multiple
            (the real checkpoints pad their embedding matrices too).
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size: text decoder shape
            (head_dim = hidden_size / num_heads).
        text_init_std: std of the normal init of every weight matrix of the text decoder (embeddings,
            attention, MLP; norms stay 1, biases 0). Larger than the usual 0.02 so the output depends on the
            context (with 0.02 a random model is nearly input-independent). Recorded as
            ``text_config.initializer_range``.
        lm_head_init_std: std of the ``lm_head`` init. Logits have a std of about
            ``lm_head_init_std * sqrt(hidden_size)`` (4 by default), so next-token distributions are peaked
            (mean max-probability at temperature 1 about 0.45) while attention stays soft. The ``lm_head``
            rows of ids a trained model never emits (vocabulary padding, image/video placeholders, vision
            markers, BOS/UNK/PAD) are zeroed, so greedy decoding never produces them.
        vision_hidden, vision_layers, vision_heads, vision_intermediate: vision tower shape.
        vision_init_std: std of the normal init of the vision -> text projector (LLaVA
            ``multi_modal_projector``, Qwen ``visual.merger``), so image features are not negligible.
        image_size: CLIP input resolution (LLaVA); ``(image_size / 14)**2`` patches per tile.
        grid_pinpoints: LLaVA-NeXT ``image_grid_pinpoints`` (multiples of ``image_size``).
        min_pixels, max_pixels: Qwen image processor bounds (one merged token per 28x28 pixels).
        mrope_section: Qwen multimodal rope sections (sum = head_dim / 2).
        fullatt_block_indexes: Qwen vision blocks with full attention (the others use window attention).
        max_position_embeddings: text model's rope/position limit (as the real config).
        rope_theta: text rope base (as the real config).
        vision_window: Qwen vision window attention size in pixels (the real models use 112).
    """

    name: str
    family: str
    mirrors: str
    seed: int
    tokenizer_vocab: int = 640
    vocab_multiple: int = 64
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 176
    text_init_std: float = 0.2
    lm_head_init_std: float = 0.5
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    vision_init_std: float = 0.2
    image_size: int = 56
    grid_pinpoints: tuple[tuple[int, int], ...] = ()
    min_pixels: int = 0
    max_pixels: int = 0
    mrope_section: tuple[int, ...] = ()
    fullatt_block_indexes: tuple[int, ...] = ()
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    vision_window: int = 112


TINY_MODELS: dict[str, TinySpec] = {
    s.name: s
    for s in [
        # Qwen2.5-VL-7B-Instruct: 28 layers, 28 q / 4 kv heads (GQA), head_dim 128, mrope [16, 24, 24],
        # theta 1e6; vision: patch 14, merge 2, temporal patch 2, window attention with 4 full blocks.
        TinySpec(
            name="tiny-qwen25vl",
            family="qwen25vl",
            mirrors="Qwen/Qwen2.5-VL-7B-Instruct",
            seed=2501,
            num_kv_heads=2,
            intermediate_size=176,
            min_pixels=16 * 28 * 28,
            max_pixels=64 * 28 * 28,
            mrope_section=(2, 3, 3),
            fullatt_block_indexes=(1,),
            max_position_embeddings=128000,
            rope_theta=1000000.0,
        ),
        # llava-1.5-7b-hf: CLIP ViT-L/14-336 (576 patches + CLS; layer -2, CLS dropped), Vicuna-7B (MHA).
        TinySpec(
            name="tiny-llava15",
            family="llava15",
            mirrors="llava-hf/llava-1.5-7b-hf",
            seed=1501,
            image_size=56,
        ),
        # llava-v1.6-vicuna-7b-hf: same towers, anyres tiles of 336 on pinpoints (336 x {1,2,3}) + newline.
        TinySpec(
            name="tiny-llava16",
            family="llava16",
            mirrors="llava-hf/llava-v1.6-vicuna-7b-hf",
            seed=1601,
            image_size=56,
            grid_pinpoints=((56, 112), (112, 56), (112, 112), (168, 56), (56, 168)),
        ),
    ]
}


def tiny_model_names() -> list[str]:
    return sorted(TINY_MODELS)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    base = cache_dir or os.environ.get("MMSPEC_CACHE") or "~/.cache/mmspec"
    return Path(base).expanduser() / "tiny"


def tiny_model_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``ensure_tiny_model(name, cache_dir)`` puts (or finds) the model; does not build."""
    _spec(name)
    return _cache_root(cache_dir) / f"{name}-{BUILD_VERSION}"


def _spec(name: str) -> TinySpec:
    if name not in TINY_MODELS:
        raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(tiny_model_names())}")
    return TINY_MODELS[name]


def ensure_tiny_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Build the tiny model ``name`` once and return its folder (a complete ``save_pretrained`` folder).

    Idempotent and safe under concurrency: an existing complete folder is returned at once; otherwise the
    model is built into a temporary sibling folder and renamed into place. Builders of one model take
    turns on a lock file next to it (the kernel releases it when a builder dies, even by ``kill -9``),
    so the one holding it knows that any temporary or incomplete folder left there belongs to a dead
    build and removes it first.
    """
    spec = _spec(name)
    return build_cached(
        tiny_model_dir(name, cache_dir), COMPLETE_MARKER, lambda tmp: build_tiny_model(spec, tmp)
    )


def build_cached(final: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """Return ``final`` once it holds ``marker``; else run ``build(tmp)`` in a sibling folder and rename it in.

    Shared by the tiny models and the trained proxy targets (:mod:`mmspec.proxy`): ``build`` must write
    ``marker`` last. Builds in one process are serialised (they seed torch's global RNG).
    """
    if (final / marker).is_file():
        return final
    with _BUILD_LOCK:
        final.parent.mkdir(parents=True, exist_ok=True)
        with _build_lock(final):
            if (final / marker).is_file():
                return final  # another process built it while we waited
            _remove_leftovers(final, marker)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
            try:
                build(tmp)
                os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
                _publish(tmp, final, marker)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextmanager
def _build_lock(final: Path):
    """Exclusive, blocking ``flock`` on ``.<folder>.lock`` (a no-op without ``fcntl``): builders of one
    folder take turns, and the kernel releases the lock when a builder dies, even by ``kill -9``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    with open(final.parent / f".{final.name}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(final: Path, marker: str) -> None:
    """Temporary and incomplete folders of builds that died (call only while holding the build lock)."""
    for stale in final.parent.glob(f".{final.name}.*-*"):
        if stale.is_dir() and (".tmp-" in stale.name or ".stale-" in stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    if final.exists() and not (final / marker).is_file():
        shutil.rmtree(final, ignore_errors=True)


def _publish(tmp: Path, final: Path, marker: str = COMPLETE_MARKER) -> None:
    try:
        os.replace(tmp, final)  # atomic; fails if `final` exists and is not empty
        return
    except OSError:
        if (final / marker).is_file():
            return  # another process finished first; ours is removed by the caller
    # `final` exists without the marker (e.g. left by an interrupted copy): move it aside, then retry.
    stale = final.parent / f".{final.name}.stale-{uuid.uuid4().hex[:8]}"
    with suppress(OSError):
        os.replace(final, stale)
    shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / marker).is_file():
            raise


def build_tiny_model(spec: TinySpec, folder: str | os.PathLike) -> Path:
    """Build ``spec`` into ``folder`` (created if needed) and write the completion marker last."""
    import torch
    import transformers

    folder = Path(folder)
    model, processor = make_model(spec)
    save_model(model, processor, folder)
    info = {
        "name": spec.name,
        "build_version": BUILD_VERSION,
        "spec": asdict(spec),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    (folder / COMPLETE_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return folder


def make_model(spec: TinySpec, tokenizer=None):
    """``(model, processor)`` of ``spec``'s architecture, weights seeded with ``spec.seed`` (RNG state restored).

    ``tokenizer``: use this tokenizer (e.g. one trained on proxy data) instead of training the built-in one;
    it must be of the family's kind (``Qwen2Tokenizer`` with the Qwen special tokens, or ``LlamaTokenizer``).
    """
    import torch

    builders = {"qwen25vl": _build_qwen25vl, "llava15": _build_llava, "llava16": _build_llava}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return builders[spec.family](spec, tokenizer)


def save_model(model, processor, folder: str | os.PathLike) -> None:
    """``save_pretrained`` of model and processor into ``folder`` (created), without progress bars."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _no_progress_bars():
        model.save_pretrained(folder)
        processor.save_pretrained(folder)


@contextmanager
def _no_progress_bars():
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _generation_config(bos: int | None, eos: list[int], pad: int):
    from transformers import GenerationConfig

    # Plain decoding: no temperature / top-k / top-p / repetition penalty (the real Qwen2.5-VL ships some).
    return GenerationConfig(bos_token_id=bos, eos_token_id=eos if len(eos) > 1 else eos[0], pad_token_id=pad)


def _init_text(model, spec: TinySpec) -> None:
    """Normal(0, text_init_std) for every text weight matrix; norms stay 1, biases 0."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in model.model.language_model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, spec.text_init_std)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        model.lm_head.weight.normal_(0.0, spec.lm_head_init_std)


def _silence_ids(model, ids: list[int]) -> None:
    """Zero the ``lm_head`` rows of ids a trained model never emits (vocab padding, image placeholders, BOS).

    Their logit is then exactly 0 while the live logits have a std of ``lm_head_init_std * sqrt(hidden)``,
    so greedy decoding never picks them and sampling almost never does (as with real checkpoints).
    """
    import torch

    with torch.no_grad():
        model.lm_head.weight[sorted(set(ids))] = 0.0


def _init_projector(projector, std: float) -> None:
    import torch
    from torch import nn

    with torch.no_grad():
        for module in projector.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()


def _build_qwen25vl(spec: TinySpec, tokenizer=None):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from mmspec.adapters.chat_templates import QWEN25VL_CHAT_TEMPLATE
    from mmspec.adapters.tiny_tokenizer import train_qwen2_tokenizer

    tokenizer = tokenizer if tokenizer is not None else train_qwen2_tokenizer(spec.tokenizer_vocab)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    ids.update({t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.get_added_vocab()})
    endoftext, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    head_dim = spec.hidden_size // spec.num_heads
    assert sum(spec.mrope_section) * 2 == head_dim, "mrope_section must sum to head_dim / 2"
    text_config = dict(
        vocab_size=_padded(len(tokenizer), spec.vocab_multiple),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.max_position_embeddings,
        max_window_layers=spec.num_layers,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        initializer_range=spec.text_init_std,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": spec.rope_theta,
            "mrope_section": list(spec.mrope_section),
        },
        bos_token_id=endoftext,
        eos_token_id=im_end,
        pad_token_id=endoftext,
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=spec.vision_layers,
        hidden_size=spec.vision_hidden,
        hidden_act="silu",
        intermediate_size=spec.vision_intermediate,
        num_heads=spec.vision_heads,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=spec.vision_window,
        out_hidden_size=spec.hidden_size,
        fullatt_block_indexes=list(spec.fullatt_block_indexes),
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _init_text(model, spec)
    _init_projector(model.model.visual.merger, spec.vision_init_std)
    stop_ids = {im_end, endoftext}
    never = [i for i in ids.values() if i not in stop_ids]
    _silence_ids(model, never + list(range(len(tokenizer), text_config["vocab_size"])))
    model.generation_config = _generation_config(endoftext, [im_end, endoftext], endoftext)

    size = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    image_processor = Qwen2VLImageProcessor(
        size=dict(size), patch_size=14, temporal_patch_size=2, merge_size=2, image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD,
    )  # fmt: skip
    video_processor = Qwen2VLVideoProcessor(
        size=dict(size), patch_size=14, temporal_patch_size=2, merge_size=2, image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD,
    )  # fmt: skip
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN25VL_CHAT_TEMPLATE,
    )
    return model, processor


def _build_llava(spec: TinySpec, tokenizer=None):
    from tokenizers import AddedToken
    from transformers import CLIPVisionConfig, LlamaConfig

    from mmspec.adapters.chat_templates import LLAVA15_CHAT_TEMPLATE, LLAVA16_VICUNA_CHAT_TEMPLATE
    from mmspec.adapters.tiny_tokenizer import train_llama_tokenizer

    next_ = spec.family == "llava16"
    tokenizer = tokenizer if tokenizer is not None else train_llama_tokenizer(spec.tokenizer_vocab)
    # llava-hf: "<image>" = 32000 (both); llava-1.5 also adds "<pad>" = 32001 and pads with it, while
    # llava-v1.6-vicuna pads with "<unk>" (pad_token_id 0).
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    if not next_:
        tokenizer.add_special_tokens({"pad_token": AddedToken("<pad>", special=True, normalized=False)})
    else:
        tokenizer.pad_token = "<unk>"
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    pad_id = tokenizer.pad_token_id
    bos_id, eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id

    text_config = LlamaConfig(
        vocab_size=_padded(len(tokenizer), spec.vocab_multiple),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-5,
        initializer_range=spec.text_init_std,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_intermediate,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=14,
        projection_dim=spec.vision_hidden,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    patches = (spec.image_size // 14) ** 2
    common = dict(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_id,
        image_seq_length=patches,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    crop = {"height": spec.image_size, "width": spec.image_size}
    image_kwargs = dict(
        size={"shortest_edge": spec.image_size}, crop_size=crop, do_center_crop=True, do_resize=True,
        resample=3, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD, do_convert_rgb=True,
    )  # fmt: skip
    if next_:
        from transformers import (
            LlavaNextConfig,
            LlavaNextForConditionalGeneration,
            LlavaNextImageProcessor,
            LlavaNextProcessor,
        )

        pinpoints = [list(p) for p in spec.grid_pinpoints]
        config = LlavaNextConfig(image_grid_pinpoints=pinpoints, **common)
        model = LlavaNextForConditionalGeneration(config).eval()
        image_processor = LlavaNextImageProcessor(image_grid_pinpoints=pinpoints, do_pad=True, **image_kwargs)
        processor_cls, template = LlavaNextProcessor, LLAVA16_VICUNA_CHAT_TEMPLATE
    else:
        from transformers import (
            CLIPImageProcessor,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
        )

        config = LlavaConfig(**common)
        model = LlavaForConditionalGeneration(config).eval()
        image_processor = CLIPImageProcessor(**image_kwargs)
        processor_cls, template = LlavaProcessor, LLAVA15_CHAT_TEMPLATE
    _init_text(model, spec)
    _init_projector(model.model.multi_modal_projector, spec.vision_init_std)
    never = [tokenizer.unk_token_id, bos_id, image_id, pad_id]
    _silence_ids(model, never + list(range(len(tokenizer), text_config.vocab_size)))
    model.generation_config = _generation_config(bos_id, [eos_id], pad_id)
    processor = processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=template,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    return model, processor


__all__ = [
    "BUILD_VERSION",
    "COMPLETE_MARKER",
    "TINY_MODELS",
    "TinySpec",
    "build_cached",
    "build_tiny_model",
    "ensure_tiny_model",
    "make_model",
    "save_model",
    "tiny_model_dir",
    "tiny_model_names",
]
