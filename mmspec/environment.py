"""The environment block of results.json: versions, device and source revision."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch


def git_revision() -> str | None:
    """Commit of the mmspec source tree (``+dirty`` when modified), None outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


def device_name(device: torch.device) -> str:
    """What the device is: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def devices_info(devices: list[torch.device]) -> dict[str, list[str]]:
    """One process's devices and their names (``environment.processes`` in results.json)."""
    return {"devices": [str(d) for d in devices], "device_names": [device_name(d) for d in devices]}


def environment(device: torch.device) -> dict[str, Any]:
    import transformers

    import mmspec

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "mmspec": mmspec.__version__,
        "device": device.type,
        "device_name": device_name(device),
        "cuda": torch.version.cuda,
        "git_revision": git_revision(),
        "platform": platform.platform(),
    }
    return info
