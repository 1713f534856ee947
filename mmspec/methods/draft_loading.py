"""Building a draft network: a seeded untrained one, or a checkpoint loaded strictly.

One path for every draft-model method (EAGLE-family drafts and Medusa heads): the source is a
published/local checkpoint or ``random``; random drafts get the target's embeddings (published
drafts carry a frozen copy of them); loaded ones go through the strict loader, which fills only
the tensors a format is known to omit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from mmspec.methods.checkpoints import DraftCheckpoint, load_into, read_checkpoint
from mmspec.target import TargetView


def seeded_build(
    device: torch.device, seed: int, build: Callable[..., torch.nn.Module], *args: Any
) -> torch.nn.Module:
    """An untrained draft (``checkpoint=random``), initialised on the target's device (fast for 7B
    shapes) from a fixed seed, without disturbing the global random state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        return build(*args)


def load_draft(
    source: str,
    *,
    method: str,
    target: TargetView,
    seed: int,
    build_random: Callable[[], torch.nn.Module],
    build_loaded: Callable[[DraftCheckpoint], torch.nn.Module],
    fill: Mapping[str, torch.Tensor],
    subfolders: Iterable[str] = (),
    require_config: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The draft network for ``source`` (``random``, a hub id or a folder) and what was loaded.

    ``build_loaded`` builds the empty network a checkpoint describes (its config, its keys);
    ``fill`` gives tensors a published format may omit (the target's embedding)."""
    if source == "random":
        net = seeded_build(target.device, seed, build_random)
        embed = getattr(net, "embed_tokens", None)
        if embed is not None:
            with torch.no_grad():
                embed.weight.copy_(target.embedding_weight)
        return net, {"checkpoint": "random", "trained": False}
    ckpt = read_checkpoint(source, method=method, subfolders=subfolders, require_config=require_config)
    net = build_loaded(ckpt)
    filled = load_into(net, ckpt.state_dict, source=str(source), fill=fill)
    info = {"checkpoint": str(source), "trained": True, "files": ckpt.files, "filled": filled,
            "folder": str(ckpt.folder), "config": ckpt.config or {}}  # fmt: skip
    return net, info
