"""Per-sample records: appended as each sample finishes, read back to resume and to aggregate.

``samples.jsonl`` holds one JSON object per finished (or failed) sample. Lines are flushed and
fsynced as they are written, so an interrupted run loses at most the sample in flight; a torn last
line (killed mid-write) is cut off before appending again. When an id appears more than once (a
failed sample retried), the last line wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
        if not self.path.exists():
            return {}
        out: dict[str, SampleRecord] = {}
        lines = self.path.read_text(encoding="utf-8").split("\n")
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = SampleRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                if lineno == len(lines):  # torn last line from an interrupted write
                    break
                raise ValueError(f"{self.path}:{lineno}: not a sample record ({exc})") from exc
            out[rec.id] = rec
        return out

    def _repair_tail(self) -> None:
        """Drop a partial last line so the next append starts on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def append(self, record: SampleRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(record.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())


TurnKey = tuple[str, str, int]  # (task, sample id, turn index)


@dataclass
class RunRecords:
    """All records of one ``<output_path>/<model>/<spec>`` folder, by task."""

    by_task: dict[str, list[SampleRecord]]

    def turns(self) -> dict[TurnKey, TurnRecord]:
        """Every turn of every finished (``ok``) sample, by (task, sample id, turn index)."""
        return {
            (task, rec.id, i): turn
            for task, recs in self.by_task.items()
            for rec in recs
            if rec.status == "ok"
            for i, turn in enumerate(rec.turns)
        }


def task_folders(run_dir: Path) -> list[str]:
    """Names of the task folders of a run folder that hold records."""
    return sorted(p.parent.name for p in Path(run_dir).glob("*/samples.jsonl"))


def read_run(run_dir: Path, tasks: Iterable[str] | None = None) -> RunRecords:
    """The records of a run folder (``<output_path>/<model>/<spec>``): of ``tasks``, default all.

    The public way to read what a run wrote (``oracle`` and the results use it); the file layout
    stays private to this module.
    """
    run_dir = Path(run_dir)
    by_task: dict[str, list[SampleRecord]] = {}
    for task in sorted(task_folders(run_dir) if tasks is None else tasks):
        recs = RecordFile(run_dir / task / "samples.jsonl").read()
        if recs:
            by_task[task] = list(recs.values())
    return RunRecords(by_task)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
