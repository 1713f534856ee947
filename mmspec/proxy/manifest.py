"""``manifest.json``: what was built, how, and how good it is (written last: marks a complete build)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"

#: Acceptance thresholds (training_recipes.md §5.8); the build reports them, it does not fail on them.
GATES = {
    "excess_loss_max": {"micro": None, "S": 0.1, "M": 0.05},
    "accuracy_min": {"attribute": 0.95, "position": 0.95, "count": 0.85, "chart": 0.80},
    "degenerate_max": 0.01,
    "image_dependence_min": {
        "general vqa": 0.9,
        "image captioning": 0.9,
        "text vqa": 0.9,
        "chart understanding": 0.9,
    },
}


def state_sha256(model) -> str:
    """sha256 over every tensor (sorted names, dtype, shape, bytes): the weights' identity."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def gate_report(size: str, heldout: dict, quality: dict) -> dict:
    """Each gate: value, threshold, passed (None when not measured or not defined for this size)."""
    out = {}
    limit = GATES["excess_loss_max"][size]
    out["excess_loss"] = {
        "value": heldout.get("excess_loss"),
        "max": limit,
        "passed": None if limit is None else heldout["excess_loss"] < limit,
    }
    for check, floor in GATES["accuracy_min"].items():
        v = quality["accuracy"].get(check)
        out[f"accuracy_{check}"] = {"value": v, "min": floor, "passed": None if v is None else v >= floor}
    degenerate = quality["loop_share"] + quality["missing_eos_share"]
    out["degenerate"] = {
        "value": round(degenerate, 4),
        "max": GATES["degenerate_max"],
        "passed": degenerate < GATES["degenerate_max"],
    }
    for cat, floor in GATES["image_dependence_min"].items():
        v = quality["image_dependence"].get(cat)
        out[f"image_dependence_{cat.replace(' ', '_')}"] = {
            "value": v,
            "min": floor,
            "passed": None if v is None else v >= floor,
        }
    return out


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())
