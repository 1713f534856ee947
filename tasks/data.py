"""Where task data comes from: the MMSpec data root and the call into `datasets`.

`datasets` is imported only here, on first use: the package (and `--list tasks`) works without it,
and a machine without it can still read local JSON Lines files through the stdlib fallback.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow"})
DEFAULT_ROOT = Path("dataset") / "MMSpec"
#: How to get the real data; every missing-data error ends with it (README: "Getting the data").
GET_MMSPEC = (
    "Get MMSpec with its images: `git clone --depth 1 https://github.com/killthefullmoon/MMSpec` "
    "(its dataset/MMSpec folder holds test/ and testmini/, each with mmspec.jsonl and images/), "
    "then pass --dataset_root MMSpec/dataset/MMSpec or set MMSPEC_ROOT"
)


@dataclass(frozen=True)
class DataRoot:
    """The folder `{{ dataset_root }}` stands for, and how it was chosen (for error messages)."""

    path: Path
    origin: str


def resolve_dataset_root(dataset_root: str | Path | None) -> DataRoot:
    """`dataset_root` (CLI `--dataset_root`), else `$MMSPEC_ROOT`, else `./dataset/MMSpec`."""
    if dataset_root:
        return DataRoot(Path(dataset_root).expanduser().resolve(), "--dataset_root")
    env = os.environ.get("MMSPEC_ROOT")
    if env:
        return DataRoot(Path(env).expanduser().resolve(), "MMSPEC_ROOT")
    return DataRoot((Path.cwd() / DEFAULT_ROOT).resolve(), "the default ./dataset/MMSpec")


def local_data_files(dataset_path: str, dataset_kwargs: dict[str, Any]) -> list[Path]:
    """The plain files named by `data_files` of a local builder (globs and URLs are left to datasets)."""
    if dataset_path not in LOCAL_BUILDERS:
        return []
    spec = dataset_kwargs.get("data_files")
    values = list(spec.values()) if isinstance(spec, dict) else [spec]
    names = [n for v in values for n in (v if isinstance(v, list) else [v]) if isinstance(n, str)]
    return [Path(n).expanduser() for n in names if "://" not in n and not any(c in n for c in "*?[")]


def cache_dir() -> Path:
    """datasets' cache for local files: `$MMSPEC_CACHE/datasets`, else a per-user temp folder."""
    base = os.environ.get("MMSPEC_CACHE")
    if base:
        return Path(base).expanduser() / "datasets"
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"mmspec-cache-{user}" / "datasets"


def load_data(dataset_path: str, dataset_name: str | None, split: str, dataset_kwargs: dict[str, Any]) -> Any:
    """`datasets.load_dataset(dataset_path, dataset_name, split=split, **dataset_kwargs)`.

    Local builders cache under `cache_dir()` unless `dataset_kwargs` names a `cache_dir`; progress
    bars are off. Without `datasets` installed, a local `json` task is read with the stdlib (a list
    of dicts instead of a `Dataset`); anything else raises `ImportError`.
    """
    try:
        import datasets
    except ImportError:
        files = local_data_files(dataset_path, dataset_kwargs)
        if (
            dataset_path == "json"
            and files
            and split == "train"
            and not isinstance(dataset_kwargs.get("data_files"), dict)
        ):
            return [record for f in files for record in _read_json_records(f)]
        raise ImportError(
            "the `datasets` package is needed to load this task: pip install datasets"
        ) from None
    kwargs = dict(dataset_kwargs)
    if dataset_path in LOCAL_BUILDERS:
        kwargs.setdefault("cache_dir", str(cache_dir()))
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(dataset_path, dataset_name, split=split, **kwargs)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def _read_json_records(path: Path) -> list[Any]:
    """A JSON array file or JSON Lines (one object per non-blank line), as datasets' json builder reads."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: invalid JSON: {exc}") from exc
    return records
