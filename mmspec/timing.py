"""Timers that add no device synchronisation inside the decode loop.

Turn wall time is taken between two explicit synchronisations (``synchronize``). Inside the loop,
per-phase durations (drafting, verification) use CUDA events on a GPU — recorded asynchronously and
read only after the turn's closing synchronisation — and ``perf_counter`` on the CPU.
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Accumulates the duration of one phase (e.g. drafting) over the rounds of a turn."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._host = 0.0
        self._open: float | torch.cuda.Event | None = None

    def start(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._open = ev
        else:
            self._open = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._pairs.append((self._open, ev))
        else:
            self._host += time.perf_counter() - self._open
        self._open = None

    def total_s(self) -> float:
        """Seconds spent in the phase; call only after the turn's final synchronisation."""
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in self._pairs) / 1000.0
        return self._host
