"""One writer per (model, spec, task) folder: an advisory lock that names its holder.

Two runs of the same command into one output folder would both compute every sample and append
duplicates. Each run takes an exclusive ``flock`` on ``<task folder>/.lock`` before its model
loads and writes who holds it (pid, host, start time, command) into that file; a second run reads
that back and refuses with it. The kernel drops the lock when its process ends, however it ends
(kill -9 included), so there is never a stale lock to clean up. Where ``fcntl`` does not exist
(Windows) the lock is a no-op.

A data-parallel launch is one run: its main process holds ``.lock`` (so a second, unrelated run is
refused as before) and process N holds ``.lock.rank<N>`` for the records file it alone writes. The
main process also checks that no ``.lock.rank<N>`` is still held: a process of an earlier launch
that outlived its main process (its launcher was killed) would otherwise write beside this run.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO

from mmspec.plan import HarnessError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_RANK_PREFIX = ".lock.rank"


def lock_name(rank: int) -> str:
    """The lock file of process ``rank`` of a run (the main process's is the folder lock)."""
    return LOCK_NAME if rank == 0 else f"{_RANK_PREFIX}{rank}"


class FolderLock:
    """Exclusive lock on a folder for this process; ``HarnessError`` names the holder when taken.

    ``rank``/``world_size``: this process's place in a data-parallel launch (see the module
    docstring); the defaults are a single-process run."""

    def __init__(self, folder: Path, rank: int = 0, world_size: int = 1) -> None:
        self.folder = Path(folder)
        self.rank, self.world_size = rank, world_size
        self.path = self.folder / lock_name(rank)
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        if fcntl is None or self._fh is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise HarnessError(f"{self.folder}: cannot create the lock file ({exc.strerror or exc})") from exc
        holder = _try_flock(fh)
        if holder is not None:
            fh.close()
            if self.rank == 0:
                raise HarnessError(
                    f"{self.folder} is being written by another run ({_describe(holder)}); wait for it "
                    "to finish, or use another --output_path"
                )
            raise HarnessError(
                f"{self.folder}: process {self.rank} of this launch cannot take its records file: a process "
                f"of another launch still writes it ({_describe(holder)}); wait for it to end, then rerun"
            )
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_holder(self.rank, self.world_size)) + "\n")
        fh.flush()
        self._fh = fh
        if self.rank == 0:
            try:
                _check_no_stray_writers(self.folder)
            except HarnessError:
                self.release()
                raise

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock; the file stays (empty locks are harmless)
            self._fh = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _try_flock(fh: IO[str]) -> str | None:
    """Take an exclusive lock on ``fh`` without waiting: None when taken, else what the holder wrote."""
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        return fh.read().strip() or "unknown"
    return None


def _check_no_stray_writers(folder: Path) -> None:
    """Refuse when a process of an earlier launch still holds its ``.lock.rank<N>`` in ``folder``."""
    for path in sorted(folder.glob(f"{_RANK_PREFIX}*")):
        try:
            fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            continue
        with fh:
            holder = _try_flock(fh)  # closing the file drops the probe's lock again
        if holder is not None:
            rank = path.name.removeprefix(_RANK_PREFIX)
            raise HarnessError(
                f"{folder} is still being written by process {rank} of an earlier launch "
                f"({_describe(holder)}); wait for it to end (or end it), then rerun"
            )


def _holder(rank: int = 0, world_size: int = 1) -> dict[str, object]:
    info: dict[str, object] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    if world_size > 1:
        info["process"] = f"{rank} of {world_size}"
    return info


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        process = f", process {info['process']} of a launch" if info.get("process") else ""
        return f"pid {info['pid']} on {info['host']}{process}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return holder[:200]
