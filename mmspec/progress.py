"""Per-task progress: a tqdm bar on a terminal, plain log lines otherwise (CI logs, files)."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("mmspec")


class Progress:
    """Shows samples done, live tokens/s and MAT for one task."""

    def __init__(self, task: str, total: int, initial: int = 0) -> None:
        self.task, self.total, self.done = task, total, initial
        self.tokens, self.time, self.forwards, self.failed = 0, 0.0, 0, 0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=task, unit="sample", dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            log.info("%s: %d/%d samples %s", self.task, self.done, self.total, self._stats())

    def _stats(self) -> str:
        tps = f"{self.tokens / self.time:.1f} tok/s" if self.time > 0 else "- tok/s"
        mat = f"MAT {self.tokens / self.forwards:.2f}" if self.forwards else "MAT -"
        failed = f"  failed {self.failed}" if self.failed else ""
        return f"{tps}  {mat}{failed}"

    def update(self, record: Any) -> None:
        self.done += 1
        self.failed += record.status != "ok"
        for t in record.turns:
            self.tokens += t.new_tokens
            self.time += t.wall_time_s
            self.forwards += t.target_forwards
        if self.bar is not None:
            self.bar.set_postfix_str(self._stats(), refresh=False)
            self.bar.update(1)
        else:
            log.info("%s: %d/%d %s  %s", self.task, self.done, self.total, record.id, self._stats())
