"""Find and read the ``results.json`` files written by the harness.

Every problem with the input is reported as a :class:`LeaderboardError` whose message names the
file (or the folders searched) and what is wrong, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

PathLike: TypeAlias = str | os.PathLike[str]

RESULTS_FILENAME = "results.json"
REQUIRED_KEYS = ("model", "spec", "tasks")
# The metric keys every leaderboard entry carries (null when a results file lacks one).
METRIC_KEYS = (
    "n_samples",
    "n_failed",
    "n_turns",
    "new_tokens",
    "wall_time_s",
    "prefill_time_s",
    "tokens_per_s",
    "mat",
    "speedup_paired",
    "speedup_global",
    "exact_match_rate",
    "n_compared",
)


class LeaderboardError(ValueError):
    """Bad leaderboard input; the message names the file or folders and the problem."""


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    """True for a finite int or float (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clean(value: Any) -> Any:
    """A copy with NaN and infinities replaced by None, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True)
class RunResults:
    """One validated results.json: the (model, spec) run it describes and where it was read."""

    source: str
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RunResults:
        """Validate a parsed results.json; raises LeaderboardError naming ``source``."""
        validate_results(data, source)
        return cls(source=source, data=data)

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def spec(self) -> str:
        return self.data["spec"]

    @property
    def config(self) -> dict[str, Any]:
        return self.data.get("config") or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.data.get("environment") or {}

    def metric_blocks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(scope, name, metrics)`` for the overall block, each category and each task."""
        overall = self.data.get("overall")
        if overall is not None:
            yield "overall", "overall", overall
        for name, block in (self.data.get("categories") or {}).items():
            yield "category", name, block
        for name, block in self.data["tasks"].items():
            yield "task", name, block


def _check_metrics(block: Any, where: str, source: str) -> None:
    if not isinstance(block, dict):
        raise LeaderboardError(f"{source}: {where} must be a JSON object, got {json_type(block)}")
    for key in METRIC_KEYS:
        value = block.get(key)
        if value is not None and not (
            isinstance(value, (int, float)) and not isinstance(value, bool)
        ):  # NaN/inf are accepted here and become null in the leaderboard
            raise LeaderboardError(
                f"{source}: {where}.{key} must be a number or null, got {json_type(value)} {value!r}"
            )


def validate_results(data: Any, source: str) -> None:
    """Check the parts of a results.json the leaderboard relies on; unknown fields pass through."""
    if not isinstance(data, dict):
        raise LeaderboardError(f"{source}: top level must be a JSON object, got {json_type(data)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        keys = ", ".join(repr(k) for k in missing)
        raise LeaderboardError(f"{source}: missing required key{'s' if len(missing) > 1 else ''} {keys}")
    for key in ("model", "spec"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise LeaderboardError(
                f"{source}: key {key!r} must be a non-empty string, got {json_type(data[key])} {data[key]!r}"
            )
    for key in ("tasks", "categories"):
        section = data.get(key)
        if key == "categories" and section is None:
            continue
        if not isinstance(section, dict):
            raise LeaderboardError(f"{source}: key {key!r} must be a JSON object, got {json_type(section)}")
        for name, block in section.items():
            _check_metrics(block, f"{key}.{name}", source)
    if data.get("overall") is not None:
        _check_metrics(data["overall"], "overall", source)
    for key in ("config", "environment"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise LeaderboardError(
                f"{source}: key {key!r} must be a JSON object or null, got {json_type(data[key])}"
            )


def read_results_file(path: PathLike) -> RunResults:
    """Read and validate one results.json; raises LeaderboardError naming the file."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LeaderboardError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise LeaderboardError(f"{source}: cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LeaderboardError(
            f"{source}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise LeaderboardError(f"{source}: not valid JSON: nested too deeply") from None
    return RunResults.from_dict(data, source)


def _as_list(paths: PathLike | Iterable[PathLike]) -> list[PathLike]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def find_results_files(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Every results.json below the given folders (recursive), plus files given directly.

    The order is deterministic: arguments in the order given, files of one folder sorted by path.
    A file reached twice (e.g. a folder and a file inside it) is listed once. A folder holding no
    results.json, or a path that does not exist, is an error.
    """
    items = [Path(p) for p in _as_list(paths)]
    if not items:
        raise LeaderboardError("no results folders or files given")
    found: list[Path] = []
    seen: set[Path] = set()
    empty: list[Path] = []
    for item in items:
        if item.is_file():
            candidates = [item]
        elif item.is_dir():
            candidates = sorted(
                (p for p in item.rglob(RESULTS_FILENAME) if p.is_file()),
                key=lambda p: p.relative_to(item).parts,
            )
            if not candidates:
                empty.append(item)
                continue
        elif not item.exists():
            raise LeaderboardError(f"{item}: no such file or folder")
        else:
            raise LeaderboardError(f"{item}: not a regular file or folder")
        for path in candidates:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    if empty:
        folders = [str(p) for p in items if p.is_dir()]
        raise LeaderboardError(
            f"no {RESULTS_FILENAME} found under {', '.join(str(p) for p in empty)} "
            f"(folders searched recursively: {', '.join(folders)})"
        )
    return found


def load_results(paths: PathLike | Iterable[PathLike]) -> list[RunResults]:
    """Find (see :func:`find_results_files`) and read every results.json under ``paths``."""
    return [read_results_file(p) for p in find_results_files(paths)]
