"""Per-sample records: appended as each sample finishes, read back to resume and to aggregate.

``samples.jsonl`` holds one JSON object per finished (or failed) sample. Lines are flushed and
fsynced as they are written, so an interrupted run loses at most the sample in flight. The last
line is special: a whole record without its newline (killed just before writing it) counts and
gets its newline before the next append; anything else there (a torn write, even one cut inside a
multi-byte character) is dropped. A bad line anywhere else is an error naming the file and line.
When an id appears more than once (a failed sample retried), the last line wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmspec.errors import MmspecError


class RecordsError(MmspecError):
    """A records or settings file that cannot be read or written; the message names it."""


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
    run: str | None = None  # the invocation that wrote it (see mmspec.harness.new_run_id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Any) -> SampleRecord:
        """A record from its JSON object; ``ValueError`` says what is wrong with it."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {json.dumps(d)[:40]}")
        missing = [name for name in _REQUIRED if name not in d]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(d["id"], str) or d["status"] not in ("ok", "failed"):
            raise ValueError(f"bad id {d['id']!r} or status {d['status']!r}")
        turns = d.get("turns", [])
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ValueError("`turns` is not a list of objects")
        known = {f.name for f in fields(cls)} - {"turns"}  # fields of newer versions are ignored
        turn_known = {f.name for f in fields(TurnRecord)}
        try:
            return cls(
                **{k: v for k, v in d.items() if k in known},
                turns=[TurnRecord(**{k: v for k, v in t.items() if k in turn_known}) for t in turns],
            )
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_REQUIRED = ("id", "task", "category", "subcategory", "status")


def _parse(line: bytes) -> SampleRecord:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return SampleRecord.from_dict(json.loads(text))
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise ValueError(f"not a sample record ({exc})") from None


class RecordFile:
    """Append-only JSONL of :class:`SampleRecord` for one (model, spec, task)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, SampleRecord]:
        """Records by id (last line wins); see the module docstring for the last line."""
        if not self.path.exists():
            return {}
        out: dict[str, SampleRecord] = {}
        *lines, tail = self._read_bytes().split(b"\n")
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = _parse(line)
            except ValueError as exc:
                raise RecordsError(
                    f"{self.path}:{lineno}: {exc}. Delete that line (its sample then runs again) or the "
                    "file (its task starts over), then rerun"
                ) from None
            out[rec.id] = rec
        last = self._whole_tail(tail)
        if last is not None:
            out[last.id] = last
        return out

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise RecordsError(f"{self.path}: cannot read ({exc.strerror or exc})") from None

    @staticmethod
    def _whole_tail(tail: bytes) -> SampleRecord | None:
        """The record in a last line without its newline, or None for a torn write."""
        if not tail.strip():
            return None
        try:
            return _parse(tail)
        except ValueError:
            return None

    def _repair_tail(self) -> None:
        """End the file on a newline: complete a whole last record, drop a torn one."""
        if not self.path.exists():
            return
        data = self._read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as fh:
            if self._whole_tail(data[cut:]) is not None:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                fh.truncate(cut)

    def append(self, record: SampleRecord) -> None:
        """Add one record durably (flushed and fsynced); a full disk is a `RecordsError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            with open(self.path, "ab") as fh:
                fh.write((record.to_json() + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RecordsError(
                f"{self.path}: cannot write: {exc.strerror or exc}. Finished samples are kept; fix that "
                "(e.g. free disk space) and rerun the same command to resume"
            ) from exc


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


def read_json(path: Path) -> dict[str, Any]:
    """A settings file this package wrote (``run.json``, ``task.json``); a `RecordsError` names it."""
    path = Path(path)
    fix = f"restore it, or delete {path.parent} to start that folder over"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RecordsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RecordsError(f"{path}: not valid UTF-8; {fix}") from None
    if not text.strip():
        raise RecordsError(f"{path}: the file is empty; {fix}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(data, dict):
        raise RecordsError(f"{path}: not a JSON object; {fix}")
    return data


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(
            json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecordsError(f"{path}: cannot write: {exc.strerror or exc}") from exc
