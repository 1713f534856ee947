"""Tiny offline models: build, offline load, real chat templates, image-token expansion, determinism."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import warnings

import pytest
import torch
from PIL import Image, ImageDraw

from mmspec.adapters import tiny
from mmspec.adapters.tiny import COMPLETE_MARKER, TINY_MODELS, build_tiny_model, ensure_tiny_model

NAMES = sorted(TINY_MODELS)
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
CONVERSATION = [
    {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A red square and a yellow circle."}]},
    {"role": "user", "content": [{"type": "text", "text": "What color is the circle?"}]},
]
LLAVA_PROMPT = (
    f"{SYSTEM} USER: <image>\nWhat is in the image? ASSISTANT: A red square and a yellow circle. "
    "USER: What color is the circle? ASSISTANT:"
)
EXPECTED_PROMPT = {
    "tiny-qwen25vl": (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is in the image?<|im_end|>\n"
        "<|im_start|>assistant\nA red square and a yellow circle.<|im_end|>\n"
        "<|im_start|>user\nWhat color is the circle?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "tiny-llava15": LLAVA_PROMPT,
    "tiny-llava16": LLAVA_PROMPT,
}
# Without a system message: Qwen inserts its default system prompt, llava-hf renders nothing.
EXPECTED_NO_SYSTEM = {
    "tiny-qwen25vl": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is in the image?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "tiny-llava15": "USER: <image>\nWhat is in the image? ASSISTANT:",
    "tiny-llava16": "USER: <image>\nWhat is in the image? ASSISTANT:",
}
STOP_TOKENS = {
    "tiny-qwen25vl": ["<|im_end|>", "<|endoftext|>"],
    "tiny-llava15": ["</s>"],
    "tiny-llava16": ["</s>"],
}
SIZES = [(320, 240), (240, 320), (100, 100), (640, 200), (200, 640), (56, 56), (1000, 30)]


def make_image(size=(320, 240), seed=0) -> Image.Image:
    img = Image.new("RGB", size, (30 + 40 * seed % 200, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, size[0] // 2, size[1] // 2], fill=(220, 40, 40))
    draw.ellipse([size[0] // 2, size[1] // 3, size[0] - 5, size[1] - 5], fill=(240, 220, 30))
    return img


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mmspec_cache")


def go_offline(mp: pytest.MonkeyPatch) -> None:
    """HF offline mode, and any attempt to open a network connection raises."""
    import huggingface_hub.constants

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "create_connection", no_network)
    mp.setattr(socket, "getaddrinfo", no_network)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def loaded(cache):
    """name -> (folder, model, processor, warnings and log messages), loaded offline with the Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    mp = pytest.MonkeyPatch()
    go_offline(mp)
    hf_logger = logging.getLogger("transformers")
    try:
        for name in NAMES:
            folder = ensure_tiny_model(name, cache)
            collect = Collect()
            hf_logger.addHandler(collect)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = AutoModelForImageTextToText.from_pretrained(folder).eval()
                processor = AutoProcessor.from_pretrained(folder)
            hf_logger.removeHandler(collect)
            out[name] = (folder, model, processor, [str(w.message) for w in caught] + collect.messages)
    finally:
        mp.undo()
    return out


def test_ensure_builds_complete_folder_offline(cache, monkeypatch):
    go_offline(monkeypatch)
    for name in NAMES:
        folder = ensure_tiny_model(name, cache)
        assert folder == cache / "tiny" / f"{name}-{tiny.BUILD_VERSION}"
        files = {p.name for p in folder.iterdir()}
        assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
        assert {
            "tokenizer_config.json",
            "processor_config.json",
            "chat_template.jinja",
            COMPLETE_MARKER,
        } <= files
        assert json.loads((folder / COMPLETE_MARKER).read_text())["name"] == name
    # no temp folders left (the build locks are empty files that stay: removing a flock file races)
    assert not [p for p in (cache / "tiny").iterdir() if p.name.startswith(".") and p.is_dir()]


@pytest.mark.parametrize("name", NAMES)
def test_loads_offline_without_warnings(name, loaded):
    from transformers import (
        LlavaForConditionalGeneration,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
        LlavaProcessor,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )

    folder, model, processor, messages = loaded[name]
    classes = {
        "tiny-qwen25vl": (Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor),
        "tiny-llava15": (LlavaForConditionalGeneration, LlavaProcessor),
        "tiny-llava16": (LlavaNextForConditionalGeneration, LlavaNextProcessor),
    }[name]
    assert type(model) is classes[0] and type(processor) is classes[1]
    assert not messages, messages
    if name == "tiny-qwen25vl":
        assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"


@pytest.mark.parametrize("name", NAMES)
def test_config_ids_and_generation_config(name, loaded):
    _, model, processor, _ = loaded[name]
    tok = processor.tokenizer
    text = model.config.get_text_config()
    assert text.vocab_size >= len(tok) and text.vocab_size % 64 == 0
    assert 512 <= len(tok) <= 1024
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(text, key)
        assert value is not None and 0 <= value < len(tok), (key, value)
    stops = [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS[name]]
    gen = model.generation_config
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert eos == stops and gen.pad_token_id is not None
    assert tok.eos_token_id == stops[0]
    assert gen.repetition_penalty in (None, 1.0) and not gen.do_sample
    raw = json.loads((loaded[name][0] / "generation_config.json").read_text())
    assert not {"repetition_penalty", "temperature", "top_k", "top_p", "do_sample"} & set(raw)  # plain
    image_id = processor.image_token_id
    assert image_id == getattr(
        model.config, "image_token_id", getattr(model.config, "image_token_index", None)
    )
    assert torch.count_nonzero(model.lm_head.weight[image_id]) == 0  # never emitted
    assert torch.count_nonzero(model.lm_head.weight[len(tok) :]) == 0  # vocab padding never emitted


@pytest.mark.parametrize("name", NAMES)
def test_real_chat_template(name, loaded):
    _, _, processor, _ = loaded[name]
    assert processor.apply_chat_template(CONVERSATION, add_generation_prompt=True) == EXPECTED_PROMPT[name]
    assert (
        processor.apply_chat_template(CONVERSATION[1:2], add_generation_prompt=True)
        == EXPECTED_NO_SYSTEM[name]
    )


@pytest.mark.parametrize("name", NAMES)
def test_image_tokens_match_features_and_generate(name, loaded):
    _, model, processor, _ = loaded[name]
    prompt = processor.apply_chat_template(CONVERSATION, add_generation_prompt=True)
    image_id = processor.image_token_id
    counts = {}
    for size in SIZES if name == "tiny-llava16" else SIZES[:3]:
        inputs = processor(images=[make_image(size)], text=prompt, return_tensors="pt")
        pixel_inputs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        pixel_inputs.pop("mm_token_type_ids", None)
        with torch.no_grad():
            feats = model.model.get_image_features(**pixel_inputs)
        feats = getattr(feats, "pooler_output", feats)
        n_features = sum(f.reshape(-1, f.shape[-1]).shape[0] for f in feats)
        counts[size] = int((inputs["input_ids"] == image_id).sum())
        assert counts[size] == n_features, (size, counts[size], n_features)
    if name == "tiny-llava15":
        assert set(counts.values()) == {16}
    elif name == "tiny-qwen25vl":
        assert 16 <= counts[(320, 240)] <= 64
    else:
        assert len(set(counts.values())) > 2 and 20 <= counts[(320, 240)] <= 100  # anyres: depends on shape
    inputs = processor(images=[make_image()], text=prompt, return_tensors="pt")
    if name != "tiny-qwen25vl":
        assert inputs["input_ids"][0, 0] == processor.tokenizer.bos_token_id  # llava-hf: tokenizer adds BOS
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=16)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new) <= 16
    with torch.no_grad():
        again = model.generate(**inputs, do_sample=False, max_new_tokens=16)
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", NAMES)
def test_next_token_distributions_are_peaked(name, loaded):
    """Larger text init: the top token carries noticeable probability at temperature 1."""
    _, model, processor, _ = loaded[name]
    messages = [CONVERSATION[0], CONVERSATION[1]]
    inputs = processor(
        images=[make_image(seed=1)],
        text=processor.apply_chat_template(messages, add_generation_prompt=True),
        return_tensors="pt",
    )
    with torch.no_grad():
        out = model.generate(
            **inputs, do_sample=False, max_new_tokens=16, output_logits=True, return_dict_in_generate=True
        )
    probs = torch.cat(out.logits).softmax(-1).max(-1).values
    assert probs.mean() > 0.2


def test_image_changes_the_output(loaded):
    for name in NAMES:
        _, model, processor, _ = loaded[name]
        text = processor.apply_chat_template(CONVERSATION[1:2], add_generation_prompt=True)
        logits = []
        for seed in (0, 3):
            inputs = processor(images=[make_image(seed=seed)], text=text, return_tensors="pt")
            with torch.no_grad():
                logits.append(model(**inputs).logits[0, -1])
        assert (logits[0] - logits[1]).abs().max() > 1e-2, name


def test_build_is_deterministic(cache, tmp_path):
    for name in NAMES:
        reference = ensure_tiny_model(name, cache)
        again = build_tiny_model(TINY_MODELS[name], tmp_path / name)
        for filename in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
            assert sha256(reference / filename) == sha256(again / filename), (name, filename)


def test_ensure_is_idempotent(cache, monkeypatch):
    folders = {name: ensure_tiny_model(name, cache) for name in NAMES}

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt an existing model")

    monkeypatch.setattr(tiny, "build_tiny_model", no_rebuild)
    for name in NAMES:
        assert ensure_tiny_model(name, cache) == folders[name]


def test_publish_is_atomic_and_handles_races(tmp_path):
    final = tmp_path / "tiny" / "m-v"
    final.parent.mkdir(parents=True)

    def staged(tag):
        folder = tmp_path / f"stage-{tag}"
        folder.mkdir()
        (folder / "payload").write_text(tag)
        (folder / COMPLETE_MARKER).write_text("{}")
        return folder

    tiny._publish(staged("first"), final)
    assert (final / "payload").read_text() == "first"
    loser = staged("second")  # another process finished first: keep the published folder
    tiny._publish(loser, final)
    assert (final / "payload").read_text() == "first" and loser.exists()
    (final / COMPLETE_MARKER).unlink()  # an incomplete leftover is replaced
    tiny._publish(staged("third"), final)
    assert (final / "payload").read_text() == "third" and (final / COMPLETE_MARKER).is_file()
    assert sorted(p.name for p in final.parent.iterdir()) == ["m-v"]


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def broken(spec, folder):
        (folder / "partial").write_text("x")
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny, "build_tiny_model", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ensure_tiny_model("tiny-llava15", tmp_path)
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == [".tiny-llava15-v2.lock"]  # an empty lock file


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("MMSPEC_CACHE", str(tmp_path / "env"))
    assert (
        tiny.tiny_model_dir("tiny-llava15")
        == tmp_path / "env" / "tiny" / f"tiny-llava15-{tiny.BUILD_VERSION}"
    )
    assert tiny.tiny_model_dir("tiny-llava15", tmp_path / "arg").parent == tmp_path / "arg" / "tiny"
    with pytest.raises(KeyError, match="tiny-qwen25vl"):
        ensure_tiny_model("tiny-nope", tmp_path)


def test_an_interrupted_build_leaves_nothing_stale(tmp_path):
    """A builder killed mid-build (kill -9) leaves its temporary folder; the next build removes it."""
    import subprocess
    import sys
    import time

    code = f"""
import time
from mmspec.adapters import tiny
def slow(spec, folder):
    (folder / "partial").write_text("x")
    time.sleep(600)
tiny.build_tiny_model = slow
tiny.ensure_tiny_model("tiny-llava15", {str(tmp_path)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):  # wait (up to a minute) until the build is under way
            if list((tmp_path / "tiny").glob(".*tmp*/partial")):
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert list((tmp_path / "tiny").glob(".*tmp*/partial")), "the killed build never started"
    final = tiny.tiny_model_dir("tiny-llava15", tmp_path)
    final.mkdir()
    (final / "half-copied").write_text("x")  # and a leftover without the completion marker

    def quick(spec, folder):
        (folder / COMPLETE_MARKER).write_text("{}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiny, "build_tiny_model", quick)
        assert ensure_tiny_model("tiny-llava15", tmp_path) == final
    assert (final / COMPLETE_MARKER).is_file() and not (final / "half-copied").exists()
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir() if p.is_dir()) == [final.name]
