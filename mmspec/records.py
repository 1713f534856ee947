"""Per-sample records: appended as each sample finishes, read back to resume and to aggregate.

``samples.jsonl`` holds one JSON object per finished (or failed) sample. Lines are flushed and
fsynced as they are written, so an interrupted run loses at most the sample in flight; a torn last
line (killed mid-write) is cut off before appending again. When an id appears more than once (a
failed sample retried), the last line wins.

The append/read-back rules (``append_jsonl``, ``read_jsonl``) and the settings guard of a resumable
output (``check_settings``) are shared with every other resumable writer (``mmspec-train regen``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmspec.errors import MmspecError


class RecordsError(MmspecError, ValueError):
    """A records file that cannot be read back (a corrupt line before the last); names file and line."""


@dataclass
class TurnRecord:
    prompt_tokens: int
    text: str
    token_ids: list[int]
    new_tokens: int
    wall_time_s: float
    prefill_time_s: float
    rounds: int
    target_forwards: int
    accepted_per_round: list[int]
    tree_size_per_round: list[int]
    skipped_rounds: int
    draft_time_s: float
    verify_time_s: float
    stop_reason: str


@dataclass
class SampleRecord:
    id: str
    task: str
    category: str
    subcategory: str | None
    status: str  # "ok" or "failed"
    turns: list[TurnRecord] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleRecord:
        turns = [TurnRecord(**t) for t in d.get("turns", [])]
        return cls(**{**d, "turns": turns})


class RecordFile:
    """Append-only JSONL of :class:`SampleRecord` for one (model, spec, task)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, SampleRecord]:
        """Records by id (last line wins). A torn final line is ignored; a bad middle line is an error."""
        out: dict[str, SampleRecord] = {}
        for lineno, obj in read_jsonl(self.path):
            try:
                rec = SampleRecord.from_dict(obj)
            except (TypeError, KeyError) as exc:
                raise RecordsError(f"{self.path}:{lineno}: not a sample record ({exc})") from exc
            out[rec.id] = rec
        return out

    def append(self, record: SampleRecord) -> None:
        append_jsonl(self.path, record.to_json())


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every complete line of a file written by :func:`append_jsonl`.

    Text after the last newline is a write the process did not finish (it is ignored here and cut
    off by the next append); any other line that is not a JSON object is an error.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    out = []
    for lineno, line in enumerate(text[: text.rfind("\n") + 1].split("\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordsError(f"{path}:{lineno}: not a JSON line ({exc})") from exc
        if not isinstance(obj, dict):
            raise RecordsError(f"{path}:{lineno}: not a JSON object")
        out.append((lineno, obj))
    return out


def append_jsonl(path: Path, line: str) -> None:
    """Append one line, flushed and fsynced; a torn last line is cut off first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def check_settings(path: Path, identity: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The resume guard of an output: write ``identity`` to ``path`` when it is new; otherwise the
    first ``(key, recorded, given)`` that differs from what ``path`` holds (None when they agree)."""
    path = Path(path)
    if not path.exists():
        write_json_atomic(path, identity)
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{path}: not a JSON settings file ({exc})") from exc
    for key, value in json.loads(json.dumps(identity)).items():  # as it reads back (tuples: lists)
        if old.get(key) != value:
            return key, old.get(key), value
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
