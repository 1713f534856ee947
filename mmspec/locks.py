"""One writer per (model, spec, task) folder: an advisory lock that names its holder.

Two runs of the same command into one output folder would both compute every sample and append
duplicates. Each run takes an exclusive ``flock`` on ``<task folder>/.lock`` before its model
loads and writes who holds it (pid, host, start time, command) into that file; a second run reads
that back and refuses with it. The kernel drops the lock when its process ends, however it ends
(kill -9 included), so there is never a stale lock to clean up. Where ``fcntl`` does not exist
(Windows) the lock is a no-op.
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


class FolderLock:
    """Exclusive lock on a folder for this process; ``HarnessError`` names the holder when taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        if fcntl is None or self._fh is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise HarnessError(f"{self.folder}: cannot create the lock file ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise HarnessError(
                f"{self.folder} is being written by another run ({_describe(holder)}); wait for it to "
                "finish, or use another --output_path"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_holder()) + "\n")
        fh.flush()
        self._fh = fh

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


def _holder() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return holder[:200]
