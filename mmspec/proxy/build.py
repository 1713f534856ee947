"""``build(family, size, seed, out)``: tokenizer -> model -> pool -> training -> save -> gates -> manifest.

``ensure_proxy_model`` is the cached, on-demand form the model registry uses (``proxy-*`` names):
``$MMSPEC_CACHE/proxy/<family>-<size>-s<seed>-<PROXY_BUILD_VERSION>``, complete when it holds
``manifest.json``. Weights are never committed; they are rebuilt from the seed.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

#: Bump when anything changes what a build produces (recipe, presets, sequence layout).
PROXY_BUILD_VERSION = "p2"


def _device(name: str | None):
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _param_counts(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    vision = sum(
        p.numel()
        for n, p in model.named_parameters()
        if any(k in n for k in ("visual", "vision_tower", "multi_modal_projector"))
    )
    embed = model.get_input_embeddings().weight.numel() + model.lm_head.weight.numel()
    return {
        "total": total,
        "vision_and_projector": vision,
        "embed_and_head": embed,
        "language_model": total - vision - embed,
    }


def build(
    family: str,
    size: str,
    seed: int,
    out: str | os.PathLike,
    *,
    max_steps: int | None = None,
    time_budget: float | None = None,
    device: str | None = None,
    workers: int | None = None,
    evaluate: bool = True,
    eval_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Build a trained proxy into ``out`` and return its manifest (also written as ``manifest.json``)."""
    import numpy as np
    import torch
    import transformers

    from mmspec.adapters.tiny import make_model, save_model
    from mmspec.proxy import quality
    from mmspec.proxy.batched_vision import batched_vision_attention
    from mmspec.proxy.batches import Batcher, DevicePool
    from mmspec.proxy.generator import CATEGORY_MIX, GENERATOR_VERSION
    from mmspec.proxy.manifest import gate_report, state_sha256, write_manifest
    from mmspec.proxy.pool import build_pool
    from mmspec.proxy.presets import get_preset, image_tokens, tiny_spec
    from mmspec.proxy.splits import TEST_SEED, check_build_seed
    from mmspec.proxy.tokenizer import train_tokenizer
    from mmspec.proxy.train import deterministic, heldout_loss, train

    t0 = time.perf_counter()
    preset = get_preset(size)
    check_build_seed(seed)
    dev = _device(device)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if max_steps is None and time_budget is None:
        time_budget = preset.time_budget
        max_steps = preset.max_steps if time_budget is None else None
    if workers is None:
        workers = min(14, max(0, (os.cpu_count() or 1) - 2)) if dev.type == "cuda" else 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    with deterministic(dev):  # every step from here to the saved weights is seeded and deterministic
        tokenizer = train_tokenizer(family, preset.vocab, seed, preset.tokenizer_samples)
        model, processor = make_model(tiny_spec(family, preset, seed, preset.vocab), tokenizer)
        n_image = image_tokens(family, preset)
        image_token = "<|image_pad|>" if family == "qwen25vl" else "<image>"
        enc_args = (processor.tokenizer, processor.chat_template, family, image_token, n_image)
        log(
            f"{family} {size} seed {seed}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
            f"{len(processor.tokenizer)} tokens, {n_image} image tokens, device {dev}"
        )
        t_data = time.perf_counter()
        train_pool = build_pool(
            enc_args, seed, preset.n_scenes, preset.per_scene, preset.render_size, workers
        )
        held_pool = build_pool(
            enc_args, TEST_SEED, preset.heldout, 1, preset.render_size, 0
        )  # small: in-process
        data_seconds = time.perf_counter() - t_data
        log(
            f"pool: {train_pool.n} sequences, {len(train_pool.tokens)} tokens, {len(train_pool.images)} images "
            f"in {data_seconds:.1f}s"
        )

        model.to(dev)
        grid = (preset.qwen_image // 28, preset.qwen_image // 28)
        pad = processor.tokenizer.pad_token_id
        batcher = Batcher(
            DevicePool.from_pool(train_pool, dev), family, processor.image_processor, pad, n_image, grid
        )
        held_batcher = Batcher(
            DevicePool.from_pool(held_pool, dev), family, processor.image_processor, pad, n_image, grid
        )
        with batched_vision_attention(model):  # Qwen: one attention call per vision layer
            init = heldout_loss(model, held_batcher, preset.batch_tokens)
            result = train(
                model,
                batcher,
                lr=preset.lr,
                warmup=preset.warmup_steps,
                batch_tokens=preset.batch_tokens,
                seed=seed,
                max_steps=max_steps,
                time_budget=time_budget,
                log=log,
            )
            final = heldout_loss(model, held_batcher, preset.batch_tokens)
        entropy = held_pool.entropy / max(1, final["answer_tokens"])
        held = {
            "init_answer_ce": round(init["answer_ce"], 5),
            "answer_ce": round(final["answer_ce"], 5),
            "init_weighted_ce": round(init["weighted_ce"], 5),
            "weighted_ce": round(final["weighted_ce"], 5),
            "generator_entropy_per_answer_token": round(entropy, 5),
            "excess_loss": round(final["answer_ce"] - entropy, 5),
            "answer_tokens": final["answer_tokens"],
            "samples": preset.heldout,
            "seed": TEST_SEED,
        }
        log(
            f"held-out answer CE {init['answer_ce']:.3f} -> {final['answer_ce']:.3f} nats/token "
            f"(generator entropy {entropy:.3f}, excess {held['excess_loss']:.3f})"
        )

    del batcher, held_batcher
    model.to("cpu").float()
    weight_hash = state_sha256(model)
    params = _param_counts(model)
    save_model(model, processor, out)
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    manifest = {
        "proxy_build_version": PROXY_BUILD_VERSION,
        "generator_version": GENERATOR_VERSION,
        "family": family,
        "size": size,
        "seed": seed,
        "architecture": "Qwen2_5_VLForConditionalGeneration"
        if family == "qwen25vl"
        else "LlavaForConditionalGeneration",
        "preset": preset.as_dict(),
        "parameters": params,
        "tokenizer_size": len(processor.tokenizer),
        "image_tokens": n_image,
        "category_mix": CATEGORY_MIX,
        "recipe": {
            "loss": "next-token CE; weights assistant 1, user 0.1, system/template 0, image 0; EOS trained",
            "optimizer": "AdamW betas (0.9, 0.95) wd 0.1 (matrices), eps 1e-8",
            "clip_norm": 1.0,
            "schedule": f"linear warmup {preset.warmup_steps} steps, cosine to 10 %",
            "precision": "bf16 autocast, fp32 master weights" if dev.type == "cuda" else "fp32",
            "batching": f"length-bucketed, <= {preset.batch_tokens} padded tokens per step, no packing",
            "vision_attention": "one call per layer over equal images (mmspec.proxy.batched_vision)",
        },
        "training": {
            "steps": result.steps,
            "seconds": round(result.seconds, 2),
            "sequences": result.sequences,
            "padded_tokens": result.tokens,
            "answer_tokens": result.answer_tokens,
            "calibrated_from_time_budget": result.calibrated,
            "time_budget_s": time_budget,
            "stopped_early": result.stopped_early,
            "loss_curve": result.curve,
            "pool_sequences": train_pool.n,
            "pool_images": int(len(train_pool.images)),
            "data_seconds": round(data_seconds, 2),
            "workers": workers,
        },
        "heldout": held,
        "weights_sha256": weight_hash,
        "environment": {
            "device": torch.cuda.get_device_name(dev)
            if dev.type == "cuda"
            else platform.processor() or "cpu",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "deterministic_warnings": result.warnings,
        },
        "reproduce": f"mmspec-proxy build --family {family} --size {size} --seed {seed} --max_steps {result.steps} "
        f"--out DIR",
    }
    if evaluate:
        from mmspec.adapters import load_model

        t_eval = time.perf_counter()
        adapter = load_model(
            family, {"pretrained": str(out), "dtype": "float32", "device": str(dev), "execution": "eager"}
        )
        samples = quality.eval_samples(TEST_SEED, preset.eval_per_category, preset.render_size)
        limit = eval_seconds if eval_seconds is not None else preset.eval_seconds
        q = quality.evaluate(adapter, samples, preset.eval_max_new_tokens, limit)
        q["seconds"] = round(time.perf_counter() - t_eval, 2)
        manifest["quality"] = q
        manifest["gates"] = gate_report(size, held, q)
        del adapter
        log(
            f"quality: accuracy {q['accuracy']}, image dependence {q['image_dependence_all']}, "
            f"loops {q['loop_share']}, missing EOS {q['missing_eos_share']}, top-1 {q['mean_top1_prob']}"
        )
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    write_manifest(out, manifest)
    return manifest


def proxy_model_dir(
    family: str, size: str, seed: int = 0, cache_dir: str | os.PathLike | None = None
) -> Path:
    base = cache_dir or os.environ.get("MMSPEC_CACHE") or "~/.cache/mmspec"
    return Path(base).expanduser() / "proxy" / f"{family}-{size}-s{seed}-{PROXY_BUILD_VERSION}"


def ensure_proxy_model(
    family: str, size: str, seed: int = 0, cache_dir: str | os.PathLike | None = None, **kwargs
) -> Path:
    """The cached proxy folder, built on first use (default step count / time budget of the size)."""
    from mmspec.adapters.tiny import build_cached
    from mmspec.proxy.manifest import MANIFEST

    final = proxy_model_dir(family, size, seed, cache_dir)
    return build_cached(final, MANIFEST, lambda tmp: build(family, size, seed, tmp, **kwargs))
