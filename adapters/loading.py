"""Loading a VLM checkpoint the way users' checkpoints load: ``from_pretrained`` by hub id or folder.

Kept apart from the adapter so the adapter holds only what the engine calls; the errors here name
the checkpoint and say what to pass instead.
"""

from __future__ import annotations

from typing import Any

import torch

from mmspec.errors import MmspecError


class AdapterError(MmspecError, RuntimeError):
    """A model could not be loaded or used; the message names the checkpoint and the problem."""


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | str:
    """``auto`` is the checkpoint's dtype on an accelerator (bf16/fp16 as published), float32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        return "auto" if device.type != "cpu" else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise AdapterError(f"unknown dtype {dtype!r}; choose one of {sorted(_DTYPES)} or 'auto'") from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pretrained(
    pretrained: str,
    *,
    family: str,
    architectures: tuple[str, ...],
    dtype: torch.dtype | str,
    attn_implementation: str,
    trust_remote_code: bool,
    revision: str | None,
    processor_kwargs: dict[str, Any],
    placement: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` of a checkpoint; the model class must be one the adapter drives.

    ``placement``: ``device_map`` (and ``max_memory``) to split the model over devices as it loads
    (:mod:`mmspec.adapters.placement`); otherwise it loads on the CPU and the caller moves it."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    common = {"trust_remote_code": trust_remote_code, "revision": revision}
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            pretrained, dtype=dtype, attn_implementation=attn_implementation, **common, **(placement or {})
        )
        processor = AutoProcessor.from_pretrained(pretrained, **common, **processor_kwargs)
    except OSError as exc:
        raise AdapterError(
            f"could not load {family} checkpoint {pretrained!r}: {exc}. Pass a local folder "
            "with --model_args pretrained=DIR, or make the hub reachable."
        ) from exc
    name = type(model).__name__
    if architectures and name not in architectures:
        raise AdapterError(
            f"{pretrained!r} loads as {name}, but the {family} adapter expects "
            f"{' or '.join(architectures)}; pick the matching --model."
        )
    return model, processor


def stop_token_ids(model: Any, tokenizer: Any, pretrained: str) -> frozenset[int]:
    """Every EOS id of the generation config, the text and top-level model configs and the tokenizer."""
    text_config = model.config.get_text_config(decoder=True)
    sources = [
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
        getattr(text_config, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
        tokenizer.eos_token_id,
    ]
    ids: set[int] = set()
    for src in sources:
        if src is not None:
            ids.update(int(x) for x in (src if isinstance(src, (list, tuple)) else [src]))
    if not ids:
        raise AdapterError(f"{pretrained!r} defines no EOS token; cannot tell where outputs end")
    return frozenset(ids)
