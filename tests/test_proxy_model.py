"""Proxy model plumbing: tokenizer and chat template, sequences vs the processor, device-side inputs."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch

from mmspec.proxy.generator import sample
from mmspec.proxy.presets import PRESETS, image_tokens, tiny_spec
from mmspec.proxy.sequences import ASSISTANT, IMAGE, SYSTEM, USER, ConversationEncoder

FAMILIES = ("qwen25vl", "llava15")


@cache
def untrained(family: str):
    from mmspec.adapters.tiny import make_model
    from mmspec.proxy.tokenizer import train_tokenizer

    preset = PRESETS["micro"]
    tok = train_tokenizer(family, preset.vocab, 0, 150)
    return make_model(tiny_spec(family, preset, 0, preset.vocab), tok)


def encoder(family: str) -> ConversationEncoder:
    _, proc = untrained(family)
    token = "<|image_pad|>" if family == "qwen25vl" else "<image>"
    return ConversationEncoder(
        proc.tokenizer, proc.chat_template, family, token, image_tokens(family, PRESETS["micro"])
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trip_special_tokens_and_template(family: str) -> None:
    _, proc = untrained(family)
    tok = proc.tokenizer
    text = 'The sign says "open daily 24". There are 3 red shapes: a circle and a star.'
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    assert len(ids) <= len(text.split()) * 2  # a closed lexicon: about one token per word
    if family == "qwen25vl":
        for special in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"):
            assert len(tok(special).input_ids) == 1
        assert tok.eos_token == "<|im_end|>"
        assert "<|im_start|>assistant\n" in proc.chat_template
    else:
        assert tok.convert_tokens_to_ids("<image>") != tok.unk_token_id
        assert tok.bos_token == "<s>" and tok.eos_token == "</s>"
        assert "ASSISTANT:" in proc.chat_template


@pytest.mark.parametrize("family", FAMILIES)
def test_sequences_match_the_processor_and_cover_each_answer_once(family: str) -> None:
    from mmspec.proxy.generator import SYSTEM_PROMPT
    from mmspec.tasks.messages import mmspec_chat

    _, proc = untrained(family)
    enc = encoder(family)
    s = next(
        s for s in (sample(0, i, size=112) for i in range(60)) if s.category == "multi-turn conversation"
    )
    seqs = enc.encode(s.prompts, s.answers, True)
    # the first turn's prompt is exactly the processor's input_ids (image placeholder expanded)
    text = proc.apply_chat_template(
        mmspec_chat(SYSTEM_PROMPT, s.prompts[:1], [], 1), add_generation_prompt=True
    )
    ref = proc(images=[s.image], text=[text], return_tensors="pt").input_ids[0].tolist()
    assert seqs[0].ids[: len(ref)].tolist() == ref
    assert seqs[0].roles[0] == SYSTEM and (seqs[0].roles == IMAGE).sum() == image_tokens(
        family, PRESETS["micro"]
    )
    # every answer appears exactly once as assistant tokens, followed by the stop token
    answers = [
        proc.tokenizer.decode(e.ids[e.roles == ASSISTANT].tolist(), skip_special_tokens=True) for e in seqs
    ]
    joined = " ".join(answers)
    for a in s.answers:
        assert joined.count(a.strip()) >= 1
    assert sum((e.ids[e.roles == ASSISTANT] == enc.eos_id).sum() for e in seqs) == len(s.turns)
    assert all((e.roles == USER).any() for e in seqs)
    if family == "qwen25vl":
        assert len(seqs) == 1  # the template renders earlier turns as a prefix: one sequence
    else:
        assert len(seqs) == len(s.turns)  # LLaVA's template drops </s> from past answers


def test_qwen_positions_match_get_rope_index() -> None:
    from mmspec.proxy.batches import qwen_positions

    model, proc = untrained("qwen25vl")
    enc = encoder("qwen25vl")
    with_img = enc.encode(["What color is the circle?"], ["It is red."], True)[0]
    text = enc.encode(["Sort: b, a."], ["a, b."], False)[0]
    length = max(len(with_img.ids), len(text.ids)) + 3
    ids = torch.full((2, length), proc.tokenizer.pad_token_id)
    mask = torch.zeros(2, length, dtype=torch.long)
    for row, e in enumerate((with_img, text)):
        ids[row, : len(e.ids)] = torch.from_numpy(e.ids)
        mask[row, : len(e.ids)] = 1
    mm = (ids == model.config.image_token_id).int()
    grid = torch.tensor([[1, 8, 8]])
    ref, _ = model.model.get_rope_index(ids, mm, image_grid_thw=grid, attention_mask=mask)
    ours = qwen_positions(ids, torch.tensor([with_img.image_start, -1]), 16, (4, 4))
    assert torch.equal(ours[:, mask.bool()], ref[:, mask.bool()])


@pytest.mark.parametrize("family", FAMILIES)
def test_device_image_preprocessing_equals_processor_on_pil(family: str) -> None:
    _, proc = untrained(family)
    s = [sample(0, i, size=224) for i in range(8)]
    images = [x.image for x in s if x.image is not None][:3]
    batch = torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).contiguous()
    ours = proc.image_processor(images=batch, return_tensors="pt", device="cpu")["pixel_values"]
    ref = proc.image_processor(images=images, return_tensors="pt")["pixel_values"]  # 224 -> 112: resized
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5)


def test_pool_is_the_same_with_worker_processes() -> None:
    """The GPU path renders with spawned workers; they must give exactly the in-process pool."""
    from mmspec.proxy.pool import build_pool

    _, proc = untrained("qwen25vl")
    args = (proc.tokenizer, proc.chat_template, "qwen25vl", "<|image_pad|>", 16)
    a = build_pool(args, 5, 12, 2, 112, workers=0)
    b = build_pool(args, 5, 12, 2, 112, workers=2)
    for field in ("tokens", "roles", "offsets", "lengths", "image_slot", "image_start", "images"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.entropy == b.entropy and a.categories == b.categories
    assert a.images.any() and (a.image_slot >= 0).any() and (a.image_slot < 0).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_reaches_every_part_and_images_matter(family: str) -> None:
    """Loss gradients reach the vision tower, the projector/merger and the LM; the image changes the loss."""
    import copy

    from mmspec.proxy.batches import Batcher, DevicePool, epoch_batches
    from mmspec.proxy.pool import build_pool
    from mmspec.proxy.train import weighted_loss

    model, proc = untrained(family)
    model = copy.deepcopy(model).train()
    n_image = image_tokens(family, PRESETS["micro"])
    token = "<|image_pad|>" if family == "qwen25vl" else "<image>"
    pool = build_pool((proc.tokenizer, proc.chat_template, family, token, n_image), 9, 8, 1, 112)
    dev = DevicePool.from_pool(pool, torch.device("cpu"))
    batcher = Batcher(dev, family, proc.image_processor, proc.tokenizer.pad_token_id, n_image, (4, 4))
    idx = np.flatnonzero(pool.image_slot >= 0)[:3]
    inputs, targets, weights = batcher(idx)
    loss, _, n_answer = weighted_loss(model, inputs, targets, weights)
    loss.backward()
    assert n_answer > 0 and torch.isfinite(loss)
    parts = (
        ("visual.blocks", "visual.merger")
        if family == "qwen25vl"
        else ("vision_tower", "multi_modal_projector")
    )
    for part in (*parts, "language_model", "lm_head"):
        grads = [p.grad for n, p in model.named_parameters() if part in n and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part
    dev.images.copy_(dev.images.flip(0))  # other scenes' pixels under the same text
    with torch.no_grad():
        swapped, _, _ = weighted_loss(model, *batcher(idx))
    assert float(swapped) != float(loss.detach())
    assert len(epoch_batches(pool.lengths, 2048, np.random.default_rng(0))) >= 1


def test_batched_vision_attention_equals_transformers_loop_and_restores_it() -> None:
    """The build's one-call vision attention gives transformers' per-image result (loss and every
    gradient), and the modules get their own forward back afterwards."""
    import copy

    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    from mmspec.proxy.batched_vision import batched_vision_attention
    from mmspec.proxy.batches import Batcher, DevicePool
    from mmspec.proxy.pool import build_pool
    from mmspec.proxy.train import weighted_loss

    model, proc = untrained("qwen25vl")
    model = copy.deepcopy(model).double().train()
    n_image = image_tokens("qwen25vl", PRESETS["micro"])
    pool = build_pool(
        (proc.tokenizer, proc.chat_template, "qwen25vl", "<|image_pad|>", n_image), 9, 8, 1, 112
    )
    batcher = Batcher(DevicePool.from_pool(pool, torch.device("cpu")), "qwen25vl", proc.image_processor,
                      proc.tokenizer.pad_token_id, n_image, (4, 4))  # fmt: skip
    idx = np.flatnonzero(pool.image_slot >= 0)[:4]
    inputs, targets, weights = batcher(idx)
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    assert inputs["image_grid_thw"].shape[0] >= 2  # several images: the loop has something to batch

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss, _, _ = weighted_loss(model, inputs, targets, weights)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref_loss, ref_grads = loss_and_grads()
    calls = []
    with batched_vision_attention(model) as switched:
        assert switched == PRESETS["micro"].vision_layers
        attn = next(m for m in model.modules() if isinstance(m, Qwen2_5_VLVisionAttention))
        inner = attn.qkv.forward
        attn.qkv.forward = lambda x: (calls.append(x.shape[0]), inner(x))[1]
        loss, grads = loss_and_grads()
        del attn.qkv.forward
    assert calls  # the switched forward ran
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-9, atol=1e-12, msg=name)
    assert all("forward" not in vars(m) for m in model.modules() if isinstance(m, Qwen2_5_VLVisionAttention))
    llava, _ = untrained("llava15")
    with batched_vision_attention(llava) as switched:
        assert switched == 0
