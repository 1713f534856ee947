"""A draft network's own KV cache and the per-round state its device steps read.

Rows ``[0, stable)`` of the draft cache hold accepted (token, feature) pairs; a proposal writes its
tree rows after them and the next append overwrites those. ``next_pos`` is the draft position of
the next pair (the tree root's); it is kept apart from ``stable`` because ViSpec replaces image
spans by a few rows, so its cache is shorter than the sequence.

In ``static``/``graph`` execution every step reads the changing values (stable length, next
position, accepted ids and rows) from one staged device buffer, views the cache through a length
bucket and builds its masks on the device, so the same function can be captured as a CUDA graph.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from mmspec.graphs import LEN_STEP, StagedBuffer, Step, StepCache, additive_mask, round_up, visible_keys
from mmspec.kv_cache import EngineCache
from mmspec.target import TargetView


class DraftRunner:
    """Runs a one-layer draft network over its own cache for one target."""

    def __init__(self, net: torch.nn.Module, target: TargetView, path_max: int, feature_width: int) -> None:
        cfg = net.config
        dev, dtype = target.device, target.dtype
        capacity = target.kv_capacity
        self.net, self.device, self.dtype = net, dev, dtype
        self.cache = EngineCache(1, cfg.num_key_value_heads, cfg.head_dim, capacity, dtype, dev)
        self.path_max = path_max  # most pairs one round appends
        self.state = StagedBuffer.zeros(3 + 2 * path_max, torch.long, dev)  # stable, pos, n, ids, rows
        self.last = torch.zeros(1, cfg.hidden_size, dtype=dtype, device=dev)  # newest draft output
        self.accepted = torch.zeros(path_max, feature_width, dtype=dtype, device=dev)  # their features
        self.tril = torch.ones(path_max, path_max, dtype=torch.bool, device=dev).tril()
        self.arange = torch.arange(capacity, device=dev)
        self.stable = 0  # cache rows holding accepted pairs (host truth)
        self.next_pos = 0  # draft position of the next pair
        self.steps = None if target.execution == "eager" else StepCache(dev, target.execution)

    # ---------------------------------------------------------------- device state
    @property
    def stable_dev(self) -> torch.Tensor:
        return self.state.device[0]

    @property
    def pos_dev(self) -> torch.Tensor:
        return self.state.device[1]

    @property
    def valid_dev(self) -> torch.Tensor:
        return self.state.device[2]

    def ids_dev(self, n: int) -> torch.Tensor:
        return self.state.device[3 : 3 + n]

    def rows_dev(self, n: int) -> torch.Tensor:
        return self.state.device[3 + self.path_max : 3 + self.path_max + n]

    def sync(self, n: int = 0, ids: Sequence[int] = (), rows: Sequence[int] = ()) -> None:
        """One host->device copy of what the next steps read (``n`` accepted ids and tree rows)."""
        host, p = self.state.writable(), self.path_max
        host[:3] = torch.tensor([self.stable, self.next_pos, n])
        if n:
            host[3 : 3 + n] = torch.tensor(list(ids))
            host[3 + p : 3 + p + n] = torch.tensor(list(rows))
        self.state.upload()

    def advance(self, n: int) -> None:
        """``n`` pairs were appended (their rows now part of the stable prefix)."""
        self.stable += n
        self.next_pos += n
        self.cache.state.length = self.stable

    # ---------------------------------------------------------------- cache and steps
    def reserve(self, tokens: int) -> None:
        """Room for ``tokens`` rows; a reallocation drops the captured steps (they point at the old one)."""
        if self.cache.ensure_capacity(tokens):
            self.arange = torch.arange(self.cache.capacity, device=self.device)
            if self.steps is not None:
                self.steps.clear()

    def view(self, entries: int) -> int | None:
        """KV view of a step writing ``entries`` rows: a bucket in static/graph mode, exact eagerly."""
        if self.steps is None:
            return None
        return min(round_up(self.stable + entries, LEN_STEP), self.cache.capacity)

    def step(self, key: Hashable, fn: Callable[[], Any]) -> Step:
        return self.steps.get(key, lambda: Step(fn))

    def views(self, need: int) -> range:
        """Every KV view a step writing ``need`` rows can use (graph capture before timing)."""
        return range(round_up(need, LEN_STEP), self.cache.capacity + 1, LEN_STEP)

    # ---------------------------------------------------------------- running the network
    def visible(self, ancestors: torch.Tensor, view: int) -> torch.Tensor:
        """``[n, view]``: the stable prefix, plus tree rows ``ancestors`` [n, A] past it."""
        return visible_keys(self.arange[:view], self.stable_dev, ancestors)

    def run(
        self, x: Any, positions: torch.Tensor, visible: torch.Tensor, write: torch.Tensor, view: int
    ) -> torch.Tensor:
        """Rows ``x`` at draft ``positions``, written at cache rows ``write`` [n], attending to ``visible``."""
        self.cache.set_write_index(write, view)
        batched = tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]
        return self.net.run(batched, positions[None], additive_mask(visible, self.dtype), self.cache)[0]

    def run_prompt(self, x: Any, positions: torch.Tensor) -> torch.Tensor:
        """The causal pass over a whole prompt into the empty cache; it becomes the stable prefix."""
        n = int(positions.shape[0])
        self.cache.reset()
        self.cache.prepare_write(n)
        batched = tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]
        out = self.net.run(batched, positions[None], None, self.cache)[0]
        self.cache.commit(n)
        self.last.copy_(out[-1:])
        self.stable = n
        return out
