"""Static-shape steps, captured as CUDA graphs on a GPU.

A *step* is a function of fixed-size device buffers (its inputs) that returns device tensors. The
first time a step with a given key runs, its buffers are allocated; in ``graph`` mode it is then
warmed up on a side stream and captured into a CUDA graph, and every later call just refills the
input buffers and replays the graph (one launch instead of hundreds). In ``static`` mode (CPU
tests) the same function runs eagerly on the same buffers, so bucketing, padding and in-step mask
building are tested without a GPU.

Outputs of a replay live in graph memory and are overwritten by the next replay of any step that
shares the memory pool: callers consume or copy them before the next step runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

EXECUTION_MODES = ("eager", "static", "graph")
#: static tree sizes (graph/static execution pads a tree to the next one)
TREE_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)
#: static KV-view lengths are multiples of this
LEN_STEP = 256


def resolve_execution(mode: str | None, device: torch.device, split: bool = False) -> str:
    """The one place the execution mode is decided: ``graph`` on CUDA and ``eager`` on the CPU
    unless asked otherwise; ``graph`` needs CUDA. A target ``split`` over several GPUs runs
    ``static`` instead of ``graph`` (a graph is captured on one device; the same static steps run
    uncaptured)."""
    if mode in (None, "", "auto"):
        mode = "graph" if device.type == "cuda" else "eager"
    if mode not in EXECUTION_MODES:
        raise ValueError(f"execution must be one of {', '.join(EXECUTION_MODES)}; got {mode!r}")
    if mode == "graph" and device.type != "cuda":
        raise ValueError("execution=graph needs a CUDA device; use execution=static or eager on the CPU")
    return "static" if mode == "graph" and split else mode


@dataclass
class StagedBuffer:
    """A device buffer that steps read, and its pinned host twin the host fills before each step.

    Both are allocated once, so a captured graph reads the address the host keeps refilling; one
    non-blocking copy per step moves everything that changes."""

    host: torch.Tensor
    device: torch.Tensor
    copied: torch.cuda.Event | None = None  # recorded after the last upload (CUDA)

    @classmethod
    def zeros(cls, n: int, dtype: torch.dtype, device: torch.device) -> StagedBuffer:
        pinned = device.type == "cuda"
        return cls(torch.zeros(n, dtype=dtype, pin_memory=pinned), torch.zeros(n, dtype=dtype, device=device))

    def writable(self) -> torch.Tensor:
        """The host twin, once the last upload has read it. A copy from pinned memory runs when the
        stream reaches it; refilling the buffer before then would change what that queued copy
        sends (two steps issued without the host reading a result in between). When the host has
        read a result since — every engine round — this waits for nothing."""
        if self.copied is not None:
            self.copied.synchronize()
        return self.host

    def upload(self) -> None:
        self.device.copy_(self.host, non_blocking=True)
        if self.device.is_cuda:
            if self.copied is None:
                self.copied = torch.cuda.Event()
            self.copied.record()


@dataclass
class Step:
    """A static-shape function of device buffers; ``staged`` holds the per-call inputs, if any."""

    fn: Callable[[], Any]
    staged: StagedBuffer | None = None
    graph: torch.cuda.CUDAGraph | None = None
    outputs: Any = None
    calls: int = 0


def visible_keys(
    key_positions: torch.Tensor, start: torch.Tensor | int, ancestors: torch.Tensor
) -> torch.Tensor:
    """``[n, V]``: which of ``V`` cache slots each of ``n`` new rows may attend to.

    Every committed slot before ``start``, plus the slots ``start + j`` of the rows' own ancestors
    (``ancestors[i, j]``: row ``i`` sees the ``j``-th slot written from ``start`` on, itself
    included). Built on the device from device values, so it works inside a captured graph.
    """
    rel = key_positions - start
    width = ancestors.shape[1]
    in_tree = (rel >= 0) & (rel < width)
    return (rel < 0)[None] | (ancestors[:, rel.clamp(0, width - 1)] & in_tree[None])


def additive_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A ``[1, 1, n, V]`` additive attention mask (0 where visible, the dtype's minimum elsewhere)."""
    zero = torch.zeros((), dtype=dtype, device=visible.device)
    return torch.where(visible, zero, torch.finfo(dtype).min)[None, None]


class StepCache:
    """Steps keyed by their static shape (e.g. ``(tree bucket, kv-length bucket)``)."""

    def __init__(self, device: torch.device, mode: str) -> None:
        mode = resolve_execution(mode, device)
        if mode == "eager":
            raise ValueError("eager execution has no static steps")
        self.device = device
        self.mode = mode
        self.steps: dict[Hashable, Step] = {}
        self.pool = torch.cuda.graph_pool_handle() if mode == "graph" else None
        # One warm-up stream for every capture: the caching allocator keeps blocks per stream,
        # so a fresh stream per capture would strand each warm-up's memory.
        self.stream = torch.cuda.Stream(device) if mode == "graph" else None
        self.capture_time_s = 0.0

    def get(self, key: Hashable, make: Callable[[], Step]) -> Step:
        step = self.steps.get(key)
        if step is None:
            step = self.steps[key] = make()
        return step

    def run(self, step: Step) -> Any:
        """Execute ``step`` on its current input buffers."""
        step.calls += 1
        if self.mode != "graph":
            return step.fn()
        if step.graph is None:
            self.capture(step)
        step.graph.replay()
        return step.outputs

    def capture(self, step: Step) -> None:
        """Warm ``step`` up on a side stream and record it (graph mode only; idempotent)."""
        if self.mode != "graph" or step.graph is not None:
            return
        t0 = time.perf_counter()
        stream = self.stream
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up: lazy inits, cuBLAS workspaces, allocator
                step.fn()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # cuBLAS keeps one workspace per (handle, stream), allocated on first use; the warm-up put it
        # in ordinary memory, which anyone may free: torch.compile's CUDA-graph trees clear every
        # workspace when they record, and a graph still pointing at it then writes into memory that
        # is someone else's (an illegal access, or silently wrong results). Dropping the cached
        # workspaces now makes the capture allocate its own, in our graphs' private pool, and
        # dropping them again after keeps that pool's memory out of later eager matmuls.
        torch._C._cuda_clearCublasWorkspaces()
        with torch.cuda.graph(graph, pool=self.pool, stream=stream):  # the warm-up's stream (cuBLAS state)
            step.outputs = step.fn()
        torch._C._cuda_clearCublasWorkspaces()
        step.graph = graph
        torch.cuda.synchronize(self.device)
        self.capture_time_s += time.perf_counter() - t0

    def clear(self) -> None:
        """Drop every step (e.g. after the KV cache was reallocated).

        Their graphs' memory pool dies with them, so later captures get a fresh pool."""
        self.steps.clear()
        if self.mode == "graph":
            torch.cuda.synchronize(self.device)
            self.pool = torch.cuda.graph_pool_handle()


def round_up(n: int, step: int) -> int:
    """Smallest multiple of ``step`` >= n (KV-view buckets)."""
    return -(-n // step) * step


def bucket(n: int, sizes: tuple[int, ...]) -> int:
    """Smallest bucket size >= n (the last size when n is larger: callers must check)."""
    for s in sizes:
        if s >= n:
            return s
    raise ValueError(f"{n} exceeds the largest static size {sizes[-1]}")
