"""Writing a trained draft in the published layout, with a manifest of how it was made.

``DIR/model.safetensors`` holds the network under the published parameter names, ``DIR/config.json``
is the config the reference trainer would write for the target (``draft_configs``) plus what our
loader needs to read it without guessing (EAGLE-3's feature layers and draft vocabulary), and
``DIR/mmspec_draft.json`` records the target, the data, the recipe and the results. The folder
loads with ``--spec_args checkpoint=DIR`` through the strict loader, like a downloaded draft.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from mmspec.hashing import file_sha256
from mmspec.methods.draft_configs import published_config
from mmspec.records import write_json_atomic

MANIFEST = "mmspec_draft.json"


def draft_config(drafter: Any) -> dict[str, Any]:
    """The published-style ``config.json`` of a drafter's network, with its own settings."""
    t = drafter.target
    method = getattr(drafter, "checkpoint_method", drafter.name)
    config = published_config(method, t.family, t.text_config, t.pad_token_id)
    net = drafter.net
    if hasattr(drafter, "layer_order"):  # EAGLE-3: which target layers it reads
        config["eagle_aux_hidden_state_layer_ids"] = list(drafter.layer_order)
    if hasattr(net, "lm_head") and hasattr(net, "d2t"):
        config["draft_vocab_size"] = int(net.lm_head.out_features)
    if hasattr(net, "medusa_head"):
        config["medusa_num_heads"] = len(net.medusa_head)
    if hasattr(net, "imadpt"):
        config["num_q"] = int(net.imadpt.q.shape[0])
    return config


def export_draft(drafter: Any, out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write weights, config and manifest into ``out_dir`` (each file replaced atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in drafter.net.state_dict().items()}
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, out / "model.safetensors")
    write_json_atomic(out / "config.json", draft_config(drafter))
    write_json_atomic(out / MANIFEST, manifest)
    return out


def weights_identity(pretrained: str) -> dict[str, Any]:
    """The target a draft was trained on: its id and a hash of its weight and config files (a
    local folder, or the hub cache's copy); drafts must not be mixed with re-trained targets."""
    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(pretrained, local_files_only=True))
        except Exception:
            return {"pretrained": pretrained, "sha256": None}
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin") or path.name == "config.json":
            digest.update(path.name.encode())
            digest.update(file_sha256(path).encode())
    return {"pretrained": pretrained, "sha256": digest.hexdigest()}


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
