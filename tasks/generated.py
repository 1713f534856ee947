"""Built-in generated datasets: task data made on first use by code shipped with mmspec.

A task YAML says ``generated_dataset: NAME`` and refers to the files with ``{{ generated_dir }}``.
``NAME`` must be a key of :data:`GENERATED` — a fixed table in this package, so a task file can
never make mmspec import or run code of its choice. Each entry's module exposes ``DATASET_VERSION``
(names the cache folder, so a new generator version regenerates) and ``materialize(folder)``.
Files go to ``$MMSPEC_CACHE/generated/<name>-<version>`` (default ``~/.cache/mmspec``), written in a
temporary folder and renamed into place, then read by the normal ``json`` data path.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

GENERATED: dict[str, str] = {"proxy_test": "mmspec.proxy.export"}
MARKER = ".complete"


def generated_dir(name: str) -> Path:
    """Where dataset ``name`` lives (not generated here)."""
    module = importlib.import_module(GENERATED[name])
    base = os.environ.get("MMSPEC_CACHE") or "~/.cache/mmspec"
    return Path(base).expanduser() / "generated" / f"{name}-{module.DATASET_VERSION}"


def ensure_generated(name: str) -> Path:
    """Generate dataset ``name`` once (idempotent, safe under concurrent callers) and return its folder."""
    from mmspec.adapters.tiny import build_cached

    module = importlib.import_module(GENERATED[name])

    def make(tmp: Path) -> None:
        module.materialize(tmp)
        (tmp / MARKER).write_text(module.DATASET_VERSION + "\n")

    return build_cached(generated_dir(name), MARKER, make)
