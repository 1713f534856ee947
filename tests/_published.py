"""Write a drafter's network the way each published release ships it (weights + config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from mmspec.methods.draft_configs import published_config


def draft_net(drafter):
    return drafter.inner.net if hasattr(drafter, "inner") else drafter.net


def write_published(drafter, folder: Path, method: str, config: dict | None = None) -> dict:
    """``drafter``'s weights in ``method``'s published layout, with the published-style config.json
    for its target (or ``config``). Returns the saved tensors (published key names normalised)."""
    net = draft_net(drafter)
    target = drafter.target
    sd = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    if config is None:
        config = published_config(method, target.family, target.text_config, target.pad_token_id)
    if method in ("eagle", "eagle2"):  # EAGLE: pytorch_model.bin, no embedding (copied from the target)
        saved = {k: v for k, v in sd.items() if k != "embed_tokens.weight"}
        torch.save({f"module.{k}": v for k, v in saved.items()}, folder / "pytorch_model.bin")
    elif method == "eagle3":  # EAGLE-3: model.* keys, layers.0 naming, safetensors
        saved = sd
        save_file({"model." + k.replace("midlayer.", "layers.0."): v for k, v in sd.items()},
                  str(folder / "model.safetensors"))  # fmt: skip
    elif method == "medusa":  # Medusa: accelerate save_state folder
        saved = sd
        (folder / "state_19").mkdir()
        save_file(sd, str(folder / "state_19" / "model.safetensors"))
        folder = folder / "state_19"
    else:  # ViSpec / MSD: accelerate shards model.safetensors + model_1.safetensors
        saved = sd
        keys = sorted(sd)
        save_file({k: sd[k] for k in keys[::2]}, str(folder / "model.safetensors"))
        save_file({k: sd[k] for k in keys[1::2]}, str(folder / "model_1.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return saved
