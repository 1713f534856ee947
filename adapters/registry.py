"""``--model`` names: which adapter, which default checkpoint, which default model args."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmspec.adapters.placement import map_devices, parse_device_map
from mmspec.errors import UsageError
from mmspec.registry import did_you_mean, load_object, unknown

#: MMSpec's Qwen2.5-VL processor bounds (min 256, max 1280 visual tokens of 28x28 pixels).
QWEN_PIXELS = {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}

MODEL_ARG_KEYS = {
    "pretrained": "hub id or local folder of the checkpoint",
    "dtype": "auto (checkpoint dtype on GPU, float32 on CPU), bfloat16, float16, float32, float64",
    "device": "cpu, cuda or cuda:N (default: cuda when available)",
    "attn_implementation": "sdpa (default) or eager (the two that take tree attention masks)",
    "trust_remote_code": "false (default); true only for checkpoints you trust",
    "revision": "hub revision (branch, tag or commit)",
    "max_cache_len": "initial KV-cache capacity in tokens (grows when needed)",
    "min_pixels": "Qwen2.5-VL processor: minimum image pixels",
    "max_pixels": "Qwen2.5-VL processor: maximum image pixels",
    "execution": "graph (CUDA graphs; default on CUDA), static (same static shapes, no capture) or eager",
    "fusion": "how much of the language model torch.compile fuses: none, norms, layers or auto "
    "(default: layers with execution=graph, else none)",
    "proxy_size": "proxy-* models: micro, S or M (default: the name's suffix, else M)",
    "proxy_seed": "proxy-* models: build seed (default 0)",
    "parallelize": "true: split the target over the visible GPUs with a device map (targets larger than one GPU)",
    "device_map": "with parallelize=true: auto (default), balanced, balanced_low_0, sequential or a JSON file "
    "mapping module names to devices",
}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
EXECUTION_MODES = ("eager", "static", "graph")
FUSION_CHOICES = ("auto", "none", "norms", "layers")  # mmspec.fusion.FUSION_LEVELS + auto
DTYPES = ("auto", "bfloat16", "bf16", "float16", "fp16", "half", "float32", "fp32", "float",
          "float64", "fp64", "double")  # fmt: skip
#: Qwen2.5-VL turns each 28x28 pixel block into one visual token: fewer pixels than that is no image.
QWEN_PATCH_PIXELS = 28 * 28
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


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
    raise UsageError(f"--model_args {key}={value!r}: expected true or false")


def _as_int(key: str, value: Any, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"--model_args {key}={value!r}: expected an integer") from None
    if number < minimum:
        raise UsageError(f"--model_args {key}={value!r}: must be at least {minimum}")
    return number


def _choice(key: str, value: Any, choices: tuple[str, ...], why: str = "") -> str:
    text = str(value)
    if text.lower() not in choices:
        raise UsageError(
            f"--model_args {key}={text!r}{did_you_mean(text, choices, n=1)}: choose one of "
            f"{', '.join(choices)}{why}"
        )
    return text.lower()


def resolve_model_args(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the model entry overlaid by ``--model_args``, every value checked.

    Runs before any model code is imported, so a typo or an impossible value fails in a second
    with a message naming the key (``UsageError``).
    """
    entry = get_model_entry(name)
    for key in given:
        if key not in MODEL_ARG_KEYS:
            raise UsageError(
                f"--model_args: unknown key {key!r}{did_you_mean(key, MODEL_ARG_KEYS)}; "
                f"accepted: {', '.join(sorted(MODEL_ARG_KEYS))}"
            )
    args = {
        "dtype": "auto",
        "attn_implementation": "sdpa",
        "trust_remote_code": False,
        **entry.defaults,
        **given,
    }
    args["trust_remote_code"] = _as_bool("trust_remote_code", args["trust_remote_code"])
    args["dtype"] = _choice("dtype", args["dtype"], DTYPES)
    args["attn_implementation"] = _choice(
        "attn_implementation", args["attn_implementation"], ATTN_IMPLEMENTATIONS,
        " (speculative verification needs 4-D tree attention masks, which other kernels do not take)",
    )  # fmt: skip
    if "execution" in args:
        args["execution"] = _choice("execution", args["execution"], EXECUTION_MODES)
    if "fusion" in args:
        args["fusion"] = _choice("fusion", args["fusion"], FUSION_CHOICES)
    if "device" in args and not _DEVICE.match(str(args["device"]).lower()):
        raise UsageError(f"--model_args device={args['device']!r}: expected cpu, cuda or cuda:N")
    _check_parallelize(args)
    if "max_cache_len" in args:
        args["max_cache_len"] = _as_int("max_cache_len", args["max_cache_len"], 1)
    if ("proxy_size" in given or "proxy_seed" in given) and not entry.proxy:
        raise UsageError(f"--model_args proxy_size/proxy_seed apply to proxy-* models, not {name!r}")
    if "proxy_size" in args:
        size = _choice("proxy_size", args["proxy_size"], ("micro", "s", "m"))
        args["proxy_size"] = {"micro": "micro", "s": "S", "m": "M"}[size]
    if "proxy_seed" in args:
        args["proxy_seed"] = _as_int("proxy_seed", args["proxy_seed"], 0)
    _check_pixels(entry, args)
    return args


def _check_parallelize(args: dict[str, Any]) -> None:
    """``parallelize``: a boolean; ``device_map`` goes with it (parsed: a strategy or module -> device)."""
    if "parallelize" not in args:
        if "device_map" in args:
            raise UsageError(
                "--model_args device_map is used with parallelize=true (add it, or drop device_map)"
            )
        return
    args["parallelize"] = _as_bool("parallelize", args["parallelize"])
    if not args["parallelize"]:
        if "device_map" in args:
            raise UsageError("--model_args device_map is used with parallelize=true, not parallelize=false")
        return
    if "device" in args:
        raise UsageError(
            f"--model_args parallelize=true places the target with device_map, so device={args['device']} "
            "has no meaning; drop it"
        )
    args["device_map"] = parse_device_map(args.get("device_map", "auto"))


def _check_pixels(entry: ModelEntry, args: dict[str, Any]) -> None:
    """``min_pixels``/``max_pixels``: Qwen2.5-VL only, each at least one 28x28 block, min <= max."""
    keys = [k for k in ("min_pixels", "max_pixels") if k in args]
    if not keys:
        return
    if "qwen25vl" not in entry.adapter.lower():
        raise UsageError(
            f"--model_args {keys[0]}: only Qwen2.5-VL models take pixel bounds, not {entry.name}"
        )
    for key in keys:
        args[key] = _as_int(key, args[key], QWEN_PATCH_PIXELS)
    if len(keys) == 2 and args["min_pixels"] > args["max_pixels"]:
        raise UsageError(
            f"--model_args min_pixels={args['min_pixels']} is larger than max_pixels={args['max_pixels']}"
        )


def check_device(device: str | None, key: str = "device") -> None:
    """A CUDA device that this machine has (imports torch: call it just before loading)."""
    if device is None or not str(device).lower().startswith("cuda"):
        return
    import torch

    where = f"device={device}" if key == "device" else f"{key}: {device}"
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        fix = "use device=cpu" if key == "device" else "map the modules to cpu"
        raise UsageError(f"--model_args {where}: no CUDA device is available ({build}); {fix}")
    index = int(str(device).partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"--model_args {where}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_model(name: str, model_args: dict[str, Any]) -> dict[str, Any]:
    """Everything about ``--model``/``--model_args`` that can be checked without loading: the resolved args.

    A hub id is checked too: when the hub is offline or unreachable it must be in the local hub
    cache (then read without retries), else this fails at once instead of after a minute of retries.
    """
    from mmspec.hub import check_hub_id, looks_like_hub_id

    entry = get_model_entry(name)
    args = resolve_model_args(name, dict(model_args))
    check_device(args.get("device"))
    if isinstance(args.get("device_map"), dict):
        for device in map_devices(args["device_map"]):
            check_device(device, "device_map")
    if args.get("execution") == "graph":
        import torch

        split_on_cpu = isinstance(args.get("device_map"), dict) and map_devices(args["device_map"]) == ["cpu"]
        device = (
            "cpu"
            if split_on_cpu
            else str(args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        )
        if not device.startswith("cuda"):
            raise UsageError(
                "--model_args execution=graph needs a CUDA device; use execution=static or eager on the CPU"
            )
    pretrained = args.get("pretrained") or entry.pretrained
    if pretrained is None:
        return args  # a tiny or proxy model, built on demand
    if looks_like_hub_id(str(pretrained)):
        check_hub_id(str(pretrained), args.get("revision"), "model", "--model_args pretrained=DIR")
    elif not Path(os.path.expanduser(str(pretrained))).is_dir():
        raise UsageError(
            f"--model_args pretrained={pretrained}: no such folder (and not a hub id of the form owner/name)"
        )
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


def load_model(name: str, model_args: dict[str, Any] | None = None, gpus: list[int] | None = None) -> Any:
    """Build the adapter for ``--model name`` with ``--model_args``; tiny and proxy models are built
    on demand (and cached). ``gpus``: with ``parallelize``, the GPUs this process may split the
    target over (a data-parallel launch gives each process its own; default: all visible)."""
    entry = get_model_entry(name)
    args = check_model(name, dict(model_args or {}))
    source = args.pop("pretrained", None) or entry.pretrained
    proxy_size, proxy_seed = args.pop("proxy_size", None), args.pop("proxy_seed", None)
    if source is None:
        if entry.proxy:
            from mmspec.proxy.build import ensure_proxy_model

            source = str(ensure_proxy_model(entry.proxy, proxy_size or "M", int(proxy_seed or 0)))
        else:
            from mmspec.adapters.tiny import ensure_tiny_model

            source = str(ensure_tiny_model(entry.tiny))
    if _is_proxy_checkpoint(source):
        # A proxy target was trained at one fixed image size: its saved processor bounds are part of the
        # model, so the family's MMSpec pixel defaults do not apply (explicit --model_args still do).
        for key in ("min_pixels", "max_pixels"):
            if key not in (model_args or {}):
                args.pop(key, None)
    processor_kwargs = {k: args.pop(k) for k in ("min_pixels", "max_pixels") if k in args}
    adapter_cls = load_object(entry.adapter)
    if args.get("parallelize"):
        args["gpus"] = gpus
    adapter = adapter_cls.from_pretrained(source, processor_kwargs=processor_kwargs, **args)
    adapter.registry_name = name
    return adapter
