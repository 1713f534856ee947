"""Training from scratch: weighted next-token CE, AdamW, warmup + cosine, determinism settings.

Identical on CPU and CUDA apart from the device, bf16 autocast (CUDA; fp32 master weights) and
fused AdamW. All parts train jointly (vision tower, projector/merger, language model).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mmspec.proxy.batches import Batcher, epoch_batches

BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1
CLIP_NORM = 1.0
FINAL_LR_FRACTION = 0.1
CALIBRATE_FROM, CALIBRATE_STEPS = 3, 20


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training; the previous global settings come back afterwards.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts (the CLI sets it at start-up).
    On CUDA a missing deterministic kernel warns (the warnings go to the manifest) instead of
    failing. Flash and memory-efficient SDPA are off (their backward may use atomics); the math
    backend is deterministic and fast enough for sequences of a few hundred tokens.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    sdp = None
    if device.type == "cuda":
        b = torch.backends.cuda
        sdp = (
            b.flash_sdp_enabled(),
            b.mem_efficient_sdp_enabled(),
            b.cudnn_sdp_enabled(),
            b.math_sdp_enabled(),
        )
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    if sdp is not None:
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
        torch.backends.cuda.enable_cudnn_sdp(False)
        torch.backends.cuda.enable_math_sdp(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if sdp is not None:
            torch.backends.cuda.enable_flash_sdp(sdp[0])
            torch.backends.cuda.enable_mem_efficient_sdp(sdp[1])
            torch.backends.cuda.enable_cudnn_sdp(sdp[2])
            torch.backends.cuda.enable_math_sdp(sdp[3])


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def weighted_loss(model, inputs: dict, targets: torch.Tensor, weights: torch.Tensor):
    """(weighted mean CE, CE sum over answer tokens, answer-token count); logits only where weighted."""
    hidden = model.model(**inputs, use_cache=False).last_hidden_state[:, :-1]
    sel = weights > 0
    logits = model.lm_head(hidden[sel]).float()
    ce = F.cross_entropy(logits, targets[sel], reduction="none")
    w = weights[sel]
    answer = w == 1.0
    return (ce * w).sum() / w.sum().clamp(min=1e-6), ce[answer].sum(), answer.sum()


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then cosine down to 10 % at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    steps: int
    seconds: float
    sequences: int
    tokens: int  # padded tokens processed
    answer_tokens: int
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean weighted loss)
    calibrated: bool = False  # the step count came from a time budget
    stopped_early: bool = False  # the hard time cap ended training before the planned steps
    warnings: list[str] = field(default_factory=list)


def _batches(lengths: np.ndarray, batch_tokens: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    while True:
        yield from epoch_batches(lengths, batch_tokens, rng)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    model,
    batcher: Batcher,
    *,
    lr: float,
    warmup: int,
    batch_tokens: int,
    seed: int,
    max_steps: int | None,
    time_budget: float | None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``model`` in place. ``max_steps`` wins; else the step count fits ``time_budget`` seconds,
    measured over early warmup steps (whose learning rate does not depend on the total), so a rebuild
    with ``--max_steps <steps>`` reproduces the run exactly."""
    device = batcher.dev.tokens.device
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=1e-8, fused=device.type == "cuda")
    total = max_steps if max_steps is not None else None
    if total is None and time_budget is None:
        raise ValueError("give max_steps or time_budget")
    hard_cap = None if time_budget is None or max_steps is not None else 1.15 * time_budget
    batches = _batches(batcher.dev.lengths_cpu, batch_tokens, seed)
    res = TrainResult(0, 0.0, 0, 0, 0)
    running = torch.zeros((), device=device)
    answers = torch.zeros((), dtype=torch.long, device=device)
    n_running = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _sync(device)
        t_start = time.perf_counter()
        t_cal = t_start
        step = 0
        while total is None or step < total:
            if total is None and step == CALIBRATE_FROM:
                _sync(device)
                t_cal = time.perf_counter()
            if total is None and step == max(
                CALIBRATE_FROM + 1, min(warmup, CALIBRATE_FROM + CALIBRATE_STEPS)
            ):
                _sync(device)
                now = time.perf_counter()
                per_step = (now - t_cal) / max(1, step - CALIBRATE_FROM)
                total = max(step + 1, step + int((time_budget - (now - t_start)) / per_step))
                res.calibrated = True
                log(f"calibrated: {per_step * 1e3:.1f} ms/step -> {total} steps in {time_budget:.0f} s")
            idx = next(batches)
            cur_lr = lr_at(step, total if total is not None else 10**9, lr, warmup)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            inputs, targets, weights = batcher(idx)
            with autocast(device):
                loss, _, n_ans = weighted_loss(model, inputs, targets, weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            opt.step()
            opt.zero_grad(set_to_none=True)
            running += loss.detach()
            n_running += 1
            res.sequences += len(idx)
            res.tokens += int(targets.numel())
            answers += n_ans
            step += 1
            if step % 25 == 0 or step == total:
                value = float(running) / n_running
                res.curve.append((step, round(value, 5)))
                running.zero_()
                n_running = 0
                log(
                    f"step {step}/{total if total is not None else '?'} loss {value:.4f} lr {cur_lr:.2e} "
                    f"{time.perf_counter() - t_start:.1f}s"
                )
            if hard_cap is not None and res.calibrated and time.perf_counter() - t_start > hard_cap:
                res.stopped_early = step < (total or 0)
                break
        _sync(device)
        res.seconds = time.perf_counter() - t_start
        res.steps = step
        res.answer_tokens = int(answers)
    keep = ("determinis", "image processor failed")
    res.warnings = sorted(
        {str(w.message)[:300] for w in caught if any(k in str(w.message).lower() for k in keep)}
    )
    model.eval()
    return res


@torch.no_grad()
def heldout_loss(model, batcher: Batcher, batch_tokens: int) -> dict:
    """fp32 teacher-forced CE on held-out sequences: weighted mean and mean over answer tokens."""
    was_training = model.training
    model.eval()
    lengths = batcher.dev.lengths_cpu
    order = np.argsort(lengths, kind="stable")
    total_w = total_wl = ans_sum = ans_n = 0.0
    for idx in epoch_batches(lengths[order], batch_tokens, np.random.default_rng(0)):
        inputs, targets, weights = batcher(order[idx])
        loss, a_sum, a_n = weighted_loss(model, inputs, targets, weights)
        w = float(weights.sum())
        total_wl += float(loss) * w
        total_w += w
        ans_sum += float(a_sum)
        ans_n += float(a_n)
    model.train(was_training)
    return {
        "weighted_ce": total_wl / max(total_w, 1e-9),
        "answer_ce": ans_sum / max(ans_n, 1.0),
        "answer_tokens": int(ans_n),
    }
