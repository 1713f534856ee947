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
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from mmspec.errors import MmspecError

T = TypeVar("T")


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


def _decode(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return json.loads(text)  # JSONDecodeError is a ValueError


def _json_object(line: bytes) -> dict[str, Any]:
    obj = _decode(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def _parse(line: bytes) -> SampleRecord:
    try:
        return SampleRecord.from_dict(_decode(line))
    except ValueError as exc:
        raise ValueError(f"not a sample record ({exc})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RecordsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_lines(path: Path, parse: Callable[[bytes], T], fix: str) -> list[tuple[int, T]]:
    """``(line number, parse(line))`` for every line of an append-only JSONL file.

    The last line is special (see the module docstring): a whole object without its newline counts,
    a torn write is ignored. A bad line anywhere else is a `RecordsError` naming the file and line,
    followed by ``fix``."""
    path = Path(path)
    if not path.exists():
        return []
    *lines, tail = _read_bytes(path).split(b"\n")
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, parse(line)))
        except ValueError as exc:
            raise RecordsError(f"{path}:{lineno}: {exc}. {fix}") from None
    if tail.strip():
        with suppress(ValueError):  # else a write the process did not finish
            out.append((len(lines) + 1, parse(tail)))
    return out


def append_line(path: Path, line: str, parse: Callable[[bytes], Any] = _json_object) -> None:
    """Add one line durably (flushed and fsynced). The file first ends on a newline: a whole last
    object is completed, a torn one dropped. A full disk is a `RecordsError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_bytes(path) if path.exists() else b""
        with open(path, "ab" if not data or data.endswith(b"\n") else "r+b") as fh:
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                try:
                    parse(data[cut:])
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
                except ValueError:
                    fh.truncate(cut)
                    fh.seek(cut)
            fh.write((line + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise RecordsError(
            f"{path}: cannot write: {exc.strerror or exc}. Finished work is kept; fix that "
            "(e.g. free disk space) and rerun the same command to resume"
        ) from exc


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of an append-only JSONL file (the same last-line rules as records)."""
    return read_lines(path, _json_object, "Delete that line, then rerun")


def append_jsonl(path: Path, line: str) -> None:
    """Append one JSON line durably (see :func:`append_line`)."""
    append_line(path, line, _json_object)


class RecordFile:
    """Append-only JSONL of :class:`SampleRecord` for one (model, spec, task)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, SampleRecord]:
        """Records by id (last line wins); see the module docstring for the last line."""
        fix = "Delete that line (its sample then runs again) or the file (its task starts over), then rerun"
        return {rec.id: rec for _, rec in read_lines(self.path, _parse, fix)}

    def append(self, record: SampleRecord) -> None:
        """Add one record durably (flushed and fsynced); a full disk is a `RecordsError`."""
        append_line(self.path, record.to_json(), _parse)


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


def check_settings(path: Path, identity: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The resume guard of an output folder or file: write ``identity`` to ``path`` when it is new;
    otherwise the first ``(key, recorded, given)`` that differs (None when they agree). Values are
    compared as they read back from JSON (a tuple is a list there)."""
    path = Path(path)
    if not path.exists():
        write_json_atomic(path, identity)
        return None
    old = read_json(path)
    for key, value in json.loads(json.dumps(identity)).items():
        if old.get(key) != value:
            return key, old.get(key), value
    return None


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
