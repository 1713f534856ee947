"""``--model`` names: which adapter, which default checkpoint, which default model args."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmspec.registry import load_object, unknown

#: MMSpec's Qwen2.5-VL processor bounds (min 256, max 1280 visual tokens of 28x28 pixels).
QWEN_PIXELS = {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}

MODEL_ARG_KEYS = {
    "pretrained": "hub id or local folder of the checkpoint",
    "dtype": "auto (checkpoint dtype on GPU, float32 on CPU), bfloat16, float16, float32, float64",
    "device": "cuda, cuda:N or cpu (default: cuda when available)",
    "attn_implementation": "sdpa (default), eager, flash_attention_2",
    "trust_remote_code": "false (default); true only for checkpoints you trust",
    "revision": "hub revision (branch, tag or commit)",
    "max_cache_len": "initial KV-cache capacity in tokens (grows when needed)",
    "min_pixels": "Qwen2.5-VL processor: minimum image pixels",
    "max_pixels": "Qwen2.5-VL processor: maximum image pixels",
    "execution": "graph (CUDA graphs; default on CUDA), static (same static shapes, no capture) or eager",
    "proxy_size": "proxy-* models: micro, S or M (default: the name's suffix, else M)",
    "proxy_seed": "proxy-* models: build seed (default 0)",
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    adapter: str  # "module:Class"
    description: str
    pretrained: str | None = None  # default hub id (real models)
    tiny: str | None = None  # tiny builder name (offline test models)
    defaults: dict[str, Any] = field(default_factory=dict)
    proxy: str | None = None  # trained proxy target family (built on demand by mmspec.proxy)


def _proxy_entries() -> list[ModelEntry]:
    """``proxy-<family>`` (size from ``proxy_size``, default M) and ``proxy-<family>-<size>`` aliases."""
    adapters = {
        "qwen25vl": "mmspec.adapters.qwen25vl:Qwen25VLAdapter",
        "llava15": "mmspec.adapters.llava:Llava15Adapter",
    }
    out = []
    for family, adapter in adapters.items():
        out.append(ModelEntry(f"proxy-{family}", adapter, f"trained proxy {family} target (built on demand; size "
                              "via proxy_size=micro|S|M, default M)", proxy=family))  # fmt: skip
        for size in ("micro", "S", "M"):
            out.append(ModelEntry(f"proxy-{family}-{size}", adapter, f"trained proxy {family} target, size {size}",
                                  proxy=family, defaults={"proxy_size": size}))  # fmt: skip
    return out


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("qwen25vl", "mmspec.adapters.qwen25vl:Qwen25VLAdapter",
                   "Qwen2.5-VL-Instruct (7B default; 3B via pretrained=)",
                   pretrained="Qwen/Qwen2.5-VL-7B-Instruct", defaults=dict(QWEN_PIXELS)),
        ModelEntry("llava15", "mmspec.adapters.llava:Llava15Adapter", "LLaVA-1.5 (llava-hf)",
                   pretrained="llava-hf/llava-1.5-7b-hf"),
        ModelEntry("llava16", "mmspec.adapters.llava:Llava16Adapter", "LLaVA-1.6 / NeXT Vicuna (llava-hf)",
                   pretrained="llava-hf/llava-v1.6-vicuna-7b-hf"),
        ModelEntry("tiny-qwen25vl", "mmspec.adapters.qwen25vl:Qwen25VLAdapter",
                   "tiny random Qwen2.5-VL (offline; tests and demo)", tiny="tiny-qwen25vl"),
        ModelEntry("tiny-llava15", "mmspec.adapters.llava:Llava15Adapter",
                   "tiny random LLaVA-1.5 (offline; tests and demo)", tiny="tiny-llava15"),
        ModelEntry("tiny-llava16", "mmspec.adapters.llava:Llava16Adapter",
                   "tiny random LLaVA-1.6/NeXT (offline; tests and demo)", tiny="tiny-llava16"),
        *_proxy_entries(),
    ]
}  # fmt: skip


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise unknown("model", name, MODELS, "models")
    return MODELS[name]


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    low = str(value).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"--model_args {key}={value!r}: expected true or false")


def resolve_model_args(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the model entry overlaid by ``--model_args``; unknown keys are an error."""
    entry = get_model_entry(name)
    for key in given:
        if key not in MODEL_ARG_KEYS:
            close = difflib.get_close_matches(key, list(MODEL_ARG_KEYS), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"--model_args: unknown key {key!r}.{hint} Accepted: {', '.join(sorted(MODEL_ARG_KEYS))}"
            )
    args = {
        "dtype": "auto",
        "attn_implementation": "sdpa",
        "trust_remote_code": False,
        **entry.defaults,
        **given,
    }
    args["trust_remote_code"] = _as_bool("trust_remote_code", args["trust_remote_code"])
    for key in ("max_cache_len", "min_pixels", "max_pixels"):
        if key in args:
            try:
                args[key] = int(args[key])
            except ValueError:
                raise ValueError(f"--model_args {key}={args[key]!r}: expected an integer") from None
    return args


def _is_proxy_checkpoint(pretrained: str | None) -> bool:
    """A folder built by ``mmspec-proxy`` (its ``manifest.json`` names the proxy build version)."""
    if not pretrained:
        return False
    manifest = Path(pretrained) / "manifest.json"
    try:
        return manifest.is_file() and "proxy_build_version" in json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False


def load_model(name: str, model_args: dict[str, Any] | None = None):
    """Build the adapter for ``--model name`` with ``--model_args``; tiny models are built on demand."""
    entry = get_model_entry(name)
    args = resolve_model_args(name, dict(model_args or {}))
    pretrained = args.pop("pretrained", None)
    proxy_size, proxy_seed = args.pop("proxy_size", None), args.pop("proxy_seed", None)
    if (proxy_size is not None or proxy_seed is not None) and not entry.proxy:
        raise ValueError(f"--model_args proxy_size/proxy_seed apply to proxy-* models, not {name!r}")
    if pretrained is None:
        if entry.proxy:
            from mmspec.proxy.build import ensure_proxy_model

            pretrained = str(ensure_proxy_model(entry.proxy, proxy_size or "M", int(proxy_seed or 0)))
        elif entry.tiny:
            from mmspec.adapters.tiny import ensure_tiny_model

            pretrained = str(ensure_tiny_model(entry.tiny))
        else:
            pretrained = entry.pretrained
    if _is_proxy_checkpoint(pretrained):
        # A proxy target was trained at one fixed image size: its saved processor bounds are part of the
        # model, so the family's MMSpec pixel defaults do not apply (explicit --model_args still do).
        for key in ("min_pixels", "max_pixels"):
            if key not in (model_args or {}):
                args.pop(key, None)
    processor_kwargs = {k: args.pop(k) for k in ("min_pixels", "max_pixels") if k in args}
    adapter_cls = load_object(entry.adapter)
    adapter = adapter_cls.from_pretrained(pretrained, processor_kwargs=processor_kwargs, **args)
    adapter.registry_name = name
    return adapter
