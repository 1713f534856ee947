"""Fewer, fused kernels for the static decode/verify step on a GPU (``torch.compile`` of transformers' modules).

A 7B decode step in eager PyTorch launches ~1300 kernels; inside a CUDA graph each still costs a few
microseconds, which at batch 1 is a large share of a ~5 ms step. The *fusion level* decides how much
of the language model (and of a draft network) ``torch.compile`` fuses; the modules' code stays
transformers' own (no forked modeling files), only compiled:

* ``none``: eager kernels (the CPU default; what the lossless CPU tests run).
* ``norms``: each RMSNorm and each MLP compiled per module (``nn.Module.compile``): the RMSNorm
  chain (cast, square, mean, rsqrt, scale, cast, weight) and SiLU·mul become one kernel each.
* ``layers`` (the graph-mode default): each *whole decoder layer's* ``forward`` compiled, plus the
  rotary-embedding module and the final norm. The KV-cache write and the attention kernel stay
  ours and run uncompiled (:meth:`EngineCache.update <mmspec.kv_cache.EngineCache.update>` and the
  registered attention function are compile boundaries), so the layer compiles as three graphs:
  input norm + q/k/v projection + bias + rope (q and k, Qwen's multimodal rope included) ->
  [cache write, attention] -> o_proj + residual add + post-attention norm + MLP + residual add. The
  residual adds, casts and rope elementwise chains fuse into the neighbouring kernels.

At both ``norms`` and ``layers`` the sibling projections of each layer (q/k/v; gate/up) run as one
matmul over their concatenated weights (:mod:`mmspec.fused_linear`). Matrix multiplies stay on
cuBLAS and attention stays ours at every level, so numerics change only by the fused elementwise
rounding and the wider matmuls' kernel choice, identically for the baseline and every method of a
run: the level is part of the target's identity in results (``fusion``). Compilation happens
lazily, on the first (warm-up) call of each shape, before any CUDA graph is captured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from mmspec.fused_linear import fuse_siblings, unfuse_siblings

log = logging.getLogger(__name__)

FUSION_LEVELS = ("none", "norms", "layers")
#: what graph execution uses unless told otherwise (static/eager default to ``none``). On the H200,
#: ``layers`` decodes a 7B model ~10 % faster than ``norms`` (benchmarks/RESULTS.md section 10). An
#: EAGLE-3 verify-graph capture once failed at ``layers`` (CUBLAS_STATUS_EXECUTION_FAILED, after four
#: other drafts' captures in one process); it did not recur in the next rounds (all five draft
#: methods captured in one process, the GPU lossless suite passed at ``layers``) and its cause is
#: not known: ``--model_args fusion=norms`` is the fallback.
DEFAULT_GRAPH_FUSION = "layers"
#: submodule names of a decoder layer that are pure elementwise/MLP blocks (level ``norms``)
FUSED_SUBMODULES = ("input_layernorm", "post_attention_layernorm", "mlp")
_MARK = "_mmspec_compiled_forward"


def resolve_fusion(level: str | None, execution: str) -> str:
    """The fusion level to use: ``level`` when given, else the graph default in graph mode and ``none`` otherwise."""
    if level in (None, "", "auto"):
        return DEFAULT_GRAPH_FUSION if execution == "graph" else "none"
    level = str(level).lower()
    if level not in FUSION_LEVELS:
        raise ValueError(f"fusion must be one of {', '.join(FUSION_LEVELS)} (or auto); got {level!r}")
    return level


def _configure_dynamo() -> None:
    import torch._dynamo

    # one compiled graph serves all layers (module parameters are inputs); allow a few shapes each
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    # a decoder layer passes its ``layer_idx`` to the cache: as a static int it would specialise (and
    # recompile) the layer's graphs once per layer; unspecialised, one graph serves every layer
    torch._dynamo.config.allow_unspec_int_on_nn_module = True


def _compile_forward(module: torch.nn.Module) -> None:
    """Replace ``module.forward`` by its compiled version (hooks keep running eagerly around it)."""
    if getattr(module, _MARK, False):
        return
    module.forward = torch.compile(module.forward, dynamic=True)
    object.__setattr__(module, _MARK, True)


def reset(modules: Iterable[torch.nn.Module]) -> None:
    """Undo any fusion on ``modules`` and their submodules (back to eager forwards)."""
    modules = list(modules)
    unfuse_siblings(modules)
    for root in modules:
        if not isinstance(root, torch.nn.Module):
            continue
        for m in root.modules():
            if getattr(m, "_compiled_call_impl", None) is not None:
                m._compiled_call_impl = None
            if m.__dict__.pop(_MARK, False):
                m.__dict__.pop("forward", None)


def compile_layers(layers, norm: torch.nn.Module | None = None, level: str = "norms", rotary=None) -> int:
    """Fuse ``layers`` (decoder layers), a final ``norm`` and a ``rotary`` embedding module at
    ``level``; returns how many modules were compiled. Undoes any earlier level first."""
    layers = list(layers)
    reset([*layers, norm, rotary])
    if level == "none":
        return 0
    if level not in FUSION_LEVELS:
        raise ValueError(f"unknown fusion level {level!r}")
    _configure_dynamo()
    count = fuse_siblings(layers)
    if level == "norms":
        for layer in layers:
            for name in FUSED_SUBMODULES:
                module = getattr(layer, name, None)
                if isinstance(module, torch.nn.Module) and not isinstance(module, torch.nn.Identity):
                    module.compile(dynamic=True)
                    count += 1
    else:  # layers
        from mmspec import attention

        attention.set_compile_boundary(True)
        for layer in layers:
            _compile_forward(layer)
            count += 1
        if isinstance(rotary, torch.nn.Module):
            _compile_forward(rotary)
            count += 1
    if isinstance(norm, torch.nn.Module) and not isinstance(norm, torch.nn.Identity):
        norm.compile(dynamic=True)
        count += 1
    return count


def apply(language_model: torch.nn.Module, level: str) -> int:
    """Fuse the target's language model at ``level`` (decoder layers, final norm, rotary embedding)
    and the tree-attention math (compiled at every level but ``none``)."""
    from mmspec import attention

    count = compile_layers(
        language_model.layers,
        getattr(language_model, "norm", None),
        level,
        getattr(language_model, "rotary_emb", None),
    )
    attention.use_compiled_math(level != "none")
    attention.set_compile_boundary(level == "layers")  # back off when a model leaves ``layers``
    if level != "none":
        log.info("fusion=%s: compiled %d modules of the language model", level, count)
    return count


def topk_logprobs(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``log_softmax(logits.float()).topk(k)`` without materialising the full log-softmax.

    Top-k of the raw logits (the order is the same: log-softmax is monotone, and a bf16 value is
    exact in float32), minus one float32 log-sum-exp per row. Under ``torch.compile`` the cast and
    the log-sum-exp fuse into one pass over the logits."""
    values, ids = logits.topk(k, dim=-1)
    return values.float() - torch.logsumexp(logits.float(), dim=-1, keepdim=True), ids


_compiled_topk = None


def draft_topk(logits: torch.Tensor, k: int, compiled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`topk_logprobs`, compiled when ``compiled`` (drafters at fusion levels above ``none``)."""
    global _compiled_topk
    if not compiled:
        return topk_logprobs(logits, k)
    if _compiled_topk is None:
        _compiled_topk = torch.compile(topk_logprobs, dynamic=True)
    return _compiled_topk(logits, k)
