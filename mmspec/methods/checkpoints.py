"""Finding, reading and strictly loading published draft checkpoints.

The releases we load (MMSpec's ``Cloudriver/*``, ViSpec's ``JLKang/*``, Medusa ``state_19``
folders) were saved several ways: ``pytorch_model.bin``, accelerate ``save_state`` shards
(``model.safetensors`` + ``model_1.safetensors`` ...), or transformers' indexed shards; keys may
carry ``module.`` / ``model.`` prefixes (multi-GPU wrappers), EAGLE-3 names its layer ``layers.0``.
We accept all of these, but unlike the research loaders (``strict=False``) every missing,
unexpected or mis-shaped key is an error naming the key: a silently random draft would report
speedups of nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmspec.methods.base import SpecArgError


class CheckpointError(SpecArgError):
    """A draft checkpoint that cannot be found or does not match the draft network."""


#: (target model, method) -> published draft. Methods ``eagle`` and ``eagle2`` share EAGLE drafts.
DEFAULT_CHECKPOINTS: dict[tuple[str, str], str] = {
    ("Qwen/Qwen2.5-VL-7B-Instruct", "eagle"): "Cloudriver/EAGLE-Qwen2.5-VL-7B-Instruct",
    ("Qwen/Qwen2.5-VL-7B-Instruct", "eagle3"): "Cloudriver/EAGLE3-Qwen2.5-VL-7B-Instruct",
    ("Qwen/Qwen2.5-VL-7B-Instruct", "msd"): "Cloudriver/MSD-Qwen2.5-VL-7B-Instruct",
    ("Qwen/Qwen2.5-VL-7B-Instruct", "vispec"): "Cloudriver/ViSpec-Qwen2.5-VL-7B-Instruct",
    ("llava-hf/llava-1.5-7b-hf", "eagle"): "Cloudriver/EAGLE-LLaVA-1.5-7B",
    ("llava-hf/llava-1.5-7b-hf", "eagle3"): "Cloudriver/EAGLE3-LLaVA1.5-7B",
    ("llava-hf/llava-1.5-7b-hf", "msd"): "Cloudriver/MSD-LLaVA1.5-7B",
    ("llava-hf/llava-1.5-7b-hf", "vispec"): "Cloudriver/ViSpec-LLaVA1.5-7B",
    ("Qwen/Qwen2.5-VL-3B-Instruct", "vispec"): "JLKang/ViSpec-Qwen2.5-VL-3B-Instruct",
    ("llava-hf/llava-v1.6-vicuna-7b-hf", "vispec"): "JLKang/ViSpec-llava-v1.6-vicuna-7b-hf",
    ("llava-hf/llava-v1.6-vicuna-13b-hf", "vispec"): "JLKang/ViSpec-llava-v1.6-vicuna-13b-hf",
}

#: Other published drafts usable with ``checkpoint=`` (not defaults): ViSpec's own releases for
#: targets whose default above is MMSpec's.
ALTERNATIVE_CHECKPOINTS: dict[tuple[str, str], str] = {
    ("llava-hf/llava-1.5-7b-hf", "vispec"): "JLKang/ViSpec-llava-1.5-7b-hf",
    ("Qwen/Qwen2.5-VL-7B-Instruct", "vispec"): "JLKang/ViSpec-Qwen2.5-VL-7B-Instruct",
}

#: Target layers whose hidden states published EAGLE-3 drafts were trained on (transformers'
#: ``hidden_states`` numbering: 0 = embeddings). MMSpec's trainer used the first three states.
PUBLISHED_FEATURE_LAYERS: dict[str, tuple[int, ...]] = {
    "Cloudriver/EAGLE3-Qwen2.5-VL-7B-Instruct": (0, 1, 2),
    "Cloudriver/EAGLE3-LLaVA1.5-7B": (0, 1, 2),
}

_METHOD_ALIASES = {"eagle2": "eagle"}
_FSDP_ONLY = ("pytorch_model_fsdp.bin", "model_fsdp.safetensors", "fsdp_model.bin")


def default_checkpoint(pretrained: str | os.PathLike | None, method: str) -> str | None:
    """The published draft for a target, matched by hub id or by a local folder named like it."""
    if not pretrained:
        return None
    method = _METHOD_ALIASES.get(method, method)
    name = str(pretrained).rstrip("/\\").lower()
    for (target, m), draft in DEFAULT_CHECKPOINTS.items():
        if m != method:
            continue
        t = target.lower()
        if name == t or name.endswith("/" + t.split("/")[-1]) or name == t.split("/")[-1]:
            return draft
    return None


def published_id(source: str | os.PathLike, folder: str | os.PathLike | None = None) -> str | None:
    """Which published draft (``owner/name`` of the default tables) a checkpoint is.

    Decided from where the files are, never from how the path was typed: the hub id itself, a
    folder named like the repository (``/models/EAGLE3-LLaVA1.5-7B``), or the Hugging Face cache
    layout (``.../models--Cloudriver--EAGLE3-LLaVA1.5-7B/snapshots/<rev>``).
    """
    known = {*DEFAULT_CHECKPOINTS.values(), *ALTERNATIVE_CHECKPOINTS.values(), *PUBLISHED_FEATURE_LAYERS}
    by_cache = {"models--" + k.replace("/", "--"): k for k in known}
    by_name = {k.split("/")[-1]: k for k in known}
    if str(source) in known:
        return str(source)
    for candidate in (source, folder):
        if not candidate:
            continue
        parts = Path(os.path.expanduser(str(candidate))).parts
        for part in reversed(parts):
            if part in by_cache:
                return by_cache[part]
        if parts and parts[-1] in by_name:
            return by_name[parts[-1]]
    return None


def published_drafts() -> list[dict[str, str]]:
    """The table of known drafts (README, ``--list``)."""
    rows = [
        {"model": t, "method": m, "checkpoint": c, "default": "yes"}
        for (t, m), c in DEFAULT_CHECKPOINTS.items()
    ]
    rows += [
        {"model": t, "method": m, "checkpoint": c, "default": "no"}
        for (t, m), c in ALTERNATIVE_CHECKPOINTS.items()
    ]
    return rows


@dataclass
class DraftCheckpoint:
    source: str
    folder: Path
    files: list[str]
    config: dict[str, Any] | None
    state_dict: dict[str, torch.Tensor] = field(repr=False)


def _resolve_folder(source: str, revision: str | None) -> Path:
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"checkpoint={source}: expected a folder holding the draft, got a file")
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") != 1:
        raise CheckpointError(
            f"checkpoint={source}: no such folder (and not a hub id of the form owner/name)"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.bin", "state_19/*"]
        return Path(snapshot_download(source, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated ...
        raise CheckpointError(
            f"checkpoint={source}: could not fetch the draft from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Download it and pass checkpoint=DIR, "
            "or use checkpoint=random for an untrained draft"
        ) from exc


def _weight_files(folder: Path) -> list[Path]:
    """Files of one checkpoint, in the published loaders' order of preference."""
    if (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            try:
                weight_map = json.loads((folder / index).read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{folder / index}: not a valid shard index ({exc})") from exc
            return [folder / name for name in dict.fromkeys(weight_map.values())]
    if (folder / "model.safetensors").is_file():
        shards = sorted(
            (p for p in folder.glob("model_*.safetensors") if p.stem.split("_", 1)[1].isdigit()),
            key=lambda p: int(p.stem.split("_", 1)[1]),
        )
        return [folder / "model.safetensors", *shards]
    return []


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot be read as a weight file ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(data, Mapping) and "state_dict" in data and isinstance(data["state_dict"], Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(data)


def normalise_keys(state_dict: Mapping[str, torch.Tensor], method: str) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, drop the stray bare ``weight`` some saves carry, EAGLE-3 renames."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key
        while k.startswith(("module.", "model.")):
            k = k.split(".", 1)[1]
        if k == "weight":  # a frozen head / duplicate embedding saved alongside the draft
            continue
        if method == "eagle3" and k.startswith("layers.0."):
            k = "midlayer." + k[len("layers.0.") :]
        if k in out:
            continue  # accelerate shards are merged without overwriting
        out[k] = value
    return out


def read_checkpoint(
    source: str | os.PathLike,
    method: str,
    subfolders: Iterable[str] = (),
    require_config: bool = False,
    revision: str | None = None,
) -> DraftCheckpoint:
    """Locate and read a draft: a local folder or hub id; weights and ``config.json``."""
    source = str(source)
    root = _resolve_folder(source, revision)
    for folder in (root, *(root / s for s in subfolders)):
        files = _weight_files(folder)
        if files:
            break
    else:
        fsdp = [n for n in _FSDP_ONLY if (root / n).is_file()]
        looked = ", ".join(str(root / s) for s in ("", *subfolders))
        hint = (
            f" (found only FSDP-sharded {', '.join(fsdp)}: consolidate it into a plain state dict first)"
            if fsdp
            else ""
        )
        raise CheckpointError(
            f"checkpoint={source}: no pytorch_model.bin, model.safetensors or shard index in {looked}{hint}"
        )
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"checkpoint={source}: shard files listed but absent: {', '.join(missing)}")
    merged: dict[str, torch.Tensor] = {}
    for f in files:
        for k, v in _read_file(f).items():
            merged.setdefault(k, v)
    config = None
    for cfg_path in (folder / "config.json", root / "config.json"):
        if cfg_path.is_file():
            try:
                config = json.loads(cfg_path.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{cfg_path}: invalid JSON ({exc})") from exc
            if not isinstance(config, dict):
                raise CheckpointError(f"{cfg_path}: expected a JSON object")
            break
    if config is None and require_config:
        raise CheckpointError(
            f"checkpoint={source}: {method} drafts need a config.json beside the weights ({folder})"
        )
    return DraftCheckpoint(source, folder, [str(f) for f in files], config, normalise_keys(merged, method))


def load_into(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    fill: Mapping[str, torch.Tensor] | None = None,
) -> list[str]:
    """Strict load: ``fill`` supplies tensors a format omits; returns the keys filled that way."""
    expected = module.state_dict()
    sd = dict(state_dict)
    filled = []
    for key, value in (fill or {}).items():
        if key in expected and key not in sd:
            sd[key] = value
            filled.append(key)
    missing = sorted(k for k in expected if k not in sd)
    unexpected = sorted(k for k in sd if k not in expected)
    mismatched = [
        f"{k} (checkpoint {list(sd[k].shape)}, draft {list(expected[k].shape)})"
        for k in sorted(sd)
        if k in expected and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if mismatched:
        problems.append("shape mismatches: " + ", ".join(mismatched))
    if problems:
        raise CheckpointError(f"checkpoint={source} does not match the draft network: " + "; ".join(problems))
    with torch.no_grad():
        for key, target in expected.items():
            if key in sd:
                target.copy_(sd[key].to(dtype=target.dtype))
    return filled
