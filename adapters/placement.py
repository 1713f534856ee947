"""Where the target's weights live when it is split over several GPUs (``parallelize=True``).

``--model_args parallelize=True`` loads the target with accelerate's device map (transformers'
``from_pretrained(device_map=...)``, the way lm-eval's ``parallelize`` does): ``device_map=auto``
(the default) or ``balanced`` spread the layers evenly over the visible GPUs, ``balanced_low_0``
keeps GPU 0 lighter, ``sequential`` fills them in order, and a JSON file (from Python, also a dict)
names each module's device explicitly, e.g. ``{"model.visual": 0, "model.language_model.layers.0": 0,
..., "lm_head": 1}``. Nothing may be offloaded to the CPU or to disk next to GPUs: offloaded weights
move on every forward, which is not what a speed benchmark may measure. (A map that puts
everything on the CPU is allowed: the CPU tests use it.)

Checked before loading (no torch import here): the strategy name or the file and its devices.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mmspec.errors import UsageError

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
#: share of a GPU's memory a device map may fill with weights (the rest: KV cache, drafts, activations)
WEIGHT_SHARE = 0.9
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def parse_device_map(value: Any) -> str | dict[str, int | str]:
    """``device_map`` as given: a strategy name, or module name -> device (a JSON file or a dict).

    Devices are GPU indices, ``cuda:N``, ``cuda`` or ``cpu``; a ``UsageError`` names the bad value."""
    if isinstance(value, dict):
        where, mapping = "--model_args device_map", value
    else:
        text = str(value).strip()
        if text.lower() in STRATEGIES:
            return text.lower()
        where = f"--model_args device_map={text}"
        path = Path(os.path.expanduser(text))
        if not path.is_file():
            raise UsageError(
                f"{where}: expected one of {', '.join(STRATEGIES)}, or a JSON file mapping module names to "
                "devices (no such file)"
            )
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{where}: cannot read it as JSON ({exc})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise UsageError(f"{where}: expected a JSON object mapping module names to devices")
    out: dict[str, int | str] = {}
    for module, device in mapping.items():
        if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
            out[str(module)] = device
        elif isinstance(device, str) and _DEVICE.match(device.strip().lower()):
            out[str(module)] = device.strip().lower()
        else:
            raise UsageError(
                f"{where}: {module!r} -> {device!r}: a device is a GPU index, cuda:N, cuda or cpu "
                "(nothing is offloaded to disk)"
            )
    devices = set(map_devices(out))
    if "cpu" in devices and len(devices) > 1:
        raise UsageError(
            f"{where}: puts some modules on the CPU and others on GPUs; offloaded weights would move on "
            "every forward. Put every module on a GPU (or all on the CPU)"
        )
    return out


def map_devices(device_map: dict[str, int | str]) -> list[str]:
    """The distinct devices of a parsed device map, in order of first use (``cuda:N`` or ``cpu``)."""
    names = [f"cuda:{d}" if isinstance(d, int) else d for d in device_map.values()]
    return list(dict.fromkeys(names))


def load_options(device_map: str | dict[str, int | str], gpus: list[int] | None) -> dict[str, Any]:
    """``from_pretrained`` keywords: the device map, and with ``gpus`` (one process's share of a
    machine's GPUs) a memory budget on those GPUs only, so the map uses no other."""
    options: dict[str, Any] = {"device_map": device_map}
    if gpus:
        import torch

        options["max_memory"] = {
            i: int(torch.cuda.get_device_properties(i).total_memory * WEIGHT_SHARE) for i in gpus
        }
    return options


def loads_on_gpu(device_map: str | dict[str, int | str]) -> bool:
    """Whether the weights land on GPUs (decides what ``dtype=auto`` means)."""
    if isinstance(device_map, dict):
        return any(d != "cpu" for d in map_devices(device_map))
    import torch

    return torch.cuda.is_available()


def check_loaded(model: Any, pretrained: str) -> None:
    """After loading: refuse weights left on the CPU or offloaded (to the ``meta`` device, read back
    from CPU or disk on every forward) next to GPUs: a strategy does that when the target does not
    fit the GPUs, and a device map that leaves a module out leaves it on the CPU."""
    kinds = {p.device.type for p in model.parameters()}
    stray = sorted(kinds & {"cpu", "meta"})
    if stray and len(kinds) > len(stray):
        from mmspec.adapters.loading import AdapterError

        raise AdapterError(
            f"{pretrained!r} is not entirely on the GPUs given to it: part of it is offloaded or left on the "
            "CPU. Use more GPUs (fewer processes per machine) or a smaller dtype, or map every module "
            "in device_map"
        )
