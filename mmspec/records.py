"""Per-sample records: appended as each sample finishes, read back to resume and to aggregate.

``samples.jsonl`` holds one JSON object per finished (or failed) sample. Lines are flushed and
fsynced as they are written, so an interrupted run loses at most the sample in flight. The last
line is special: a whole record without its newline (killed just before writing it) counts and
gets its newline before the next append; anything else there (a torn write, even one cut inside a
multi-byte character) is dropped. A bad line anywhere else is an error naming the file and line.
When an id appears more than once (a failed sample retried), the last line wins.

A data-parallel launch (``accelerate launch``) gives every process its own file beside
``samples.jsonl`` (``samples.rank<N>.jsonl``), so no two processes ever write one file; the main
process merges them into ``samples.jsonl`` when all are done (:func:`merge_shards`). Until then,
and whatever was killed when, a task's records are the union of every file (:func:`read_task`):
an ``ok`` record beats a failed one, and a later failed one replaces an earlier one.
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
    obj = _decode(line)  # its errors say what is wrong with the bytes (UTF-8, JSON)
    try:
        return SampleRecord.from_dict(obj)
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


SAMPLES = "samples.jsonl"
_SHARD_GLOB = "samples.rank*.jsonl"


def shard_path(task_dir: Path, rank: int) -> Path:
    """The records file process ``rank`` of a data-parallel launch appends to."""
    return Path(task_dir) / f"samples.rank{rank}.jsonl"


def shard_files(task_dir: Path) -> list[Path]:
    """The per-process record files of a task folder not merged yet, by rank."""
    found = [p for p in Path(task_dir).glob(_SHARD_GLOB) if p.stem.removeprefix("samples.rank").isdigit()]
    return sorted(found, key=lambda p: int(p.stem.removeprefix("samples.rank")))


def record_path(task_dir: Path, rank: int, world_size: int) -> Path:
    """Where one process appends its records: ``samples.jsonl`` alone, its own file in a launch."""
    return Path(task_dir) / SAMPLES if world_size == 1 else shard_path(task_dir, rank)


def _better(current: SampleRecord | None, new: SampleRecord) -> SampleRecord:
    """The record that stands for a sample: a finished one is kept; a failed one gives way."""
    return current if current is not None and current.status == "ok" else new


def read_task(task_dir: Path) -> dict[str, SampleRecord]:
    """A task folder's records by id: ``samples.jsonl`` and every unmerged per-process file."""
    records = RecordFile(Path(task_dir) / SAMPLES).read()
    for path in shard_files(task_dir):
        for rec in RecordFile(path).read().values():
            records[rec.id] = _better(records.get(rec.id), rec)
    return records


def merge_shards(task_dir: Path, order: Iterable[str] = ()) -> int:
    """Append to ``samples.jsonl`` what the per-process files add to it, then delete them.

    Records go in ``order`` (the task's sample ids), any others after it by id. Only a record that
    changes what ``samples.jsonl`` says is appended (a missing sample, or a finished or newer failed
    one in place of a failed one), so a merge killed before the files were deleted is simply done
    again: nothing is lost and no finished sample is written twice. Returns how many were appended.
    Call it only while no process writes these files (the folder lock is held, the launch is done).
    """
    shards = shard_files(task_dir)
    if not shards:
        return 0
    target = RecordFile(Path(task_dir) / SAMPLES)
    have = target.read()
    found: dict[str, SampleRecord] = {}
    for path in shards:
        for rec in RecordFile(path).read().values():
            found[rec.id] = _better(found.get(rec.id), rec)
    rank = {sample_id: i for i, sample_id in enumerate(dict.fromkeys(order))}
    appended = 0
    for sample_id in sorted(found, key=lambda i: (rank.get(i, len(rank)), i)):
        rec, cur = found[sample_id], have.get(sample_id)
        if cur is not None and (cur.status == "ok" or cur == rec):
            continue
        target.append(rec)
        appended += 1
    for path in shards:
        try:
            path.unlink()
        except OSError as exc:
            raise RecordsError(
                f"{path}: merged into {target.path} but cannot delete it ({exc.strerror or exc})"
            ) from exc
    return appended


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
    """Names of the task folders of a run folder that hold records (merged or not)."""
    run_dir = Path(run_dir)
    return sorted({p.parent.name for p in [*run_dir.glob(f"*/{SAMPLES}"), *run_dir.glob(f"*/{_SHARD_GLOB}")]})


def read_run(run_dir: Path, tasks: Iterable[str] | None = None) -> RunRecords:
    """The records of a run folder (``<output_path>/<model>/<spec>``): of ``tasks``, default all.

    The public way to read what a run wrote (``oracle`` and the results use it); the file layout
    stays private to this module.
    """
    run_dir = Path(run_dir)
    by_task: dict[str, list[SampleRecord]] = {}
    for task in sorted(task_folders(run_dir) if tasks is None else tasks):
        recs = read_task(run_dir / task)
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
