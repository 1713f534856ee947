"""Fewer, fused kernels for the static decode/verify step on a GPU (``torch.compile`` per module).

A 7B decode step in eager PyTorch launches ~1300 kernels; a third of them are the elementwise
chains of RMSNorm (cast, square, mean, rsqrt, scale, cast, weight) and of the MLP activation. Inside
a CUDA graph each still costs a few microseconds. Compiling those small modules with
``nn.Module.compile`` (a standard PyTorch API; the modules' code is transformers' own) fuses each
chain into one kernel. Matrix multiplies stay on cuBLAS and attention stays ours, so numerics
change only by the fused elementwise rounding — identically for the baseline and every method.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

#: submodule names of a decoder layer that are pure elementwise/MLP blocks
FUSED_SUBMODULES = ("input_layernorm", "post_attention_layernorm", "mlp")


def compile_layers(layers, norm: torch.nn.Module | None = None) -> int:
    """Compile the norms and MLP of each decoder layer (and a final norm); returns how many modules."""
    import torch._dynamo

    # one compiled graph serves all layers (module parameters are inputs); allow a few shapes each
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    count = 0
    for layer in layers:
        for name in FUSED_SUBMODULES:
            module = getattr(layer, name, None)
            if isinstance(module, torch.nn.Module) and not isinstance(module, torch.nn.Identity):
                module.compile(dynamic=True)
                count += 1
    if isinstance(norm, torch.nn.Module):
        norm.compile(dynamic=True)
        count += 1
    return count


def compile_small_modules(language_model: torch.nn.Module) -> int:
    """The target's decoder layers and final norm, plus the compiled tree-attention math."""
    count = compile_layers(language_model.layers, getattr(language_model, "norm", None))
    from mmspec import attention

    attention.use_compiled_math()
    log.info("compiled %d norm/MLP modules of the language model", count)
    return count
