"""A pre-allocated KV cache that the engine writes, verifies into and compacts.

Transformers' attention modules call ``past_key_values.update(k, v, layer_idx)`` with no position
argument, so the engine tells the cache *where* the next forward writes (``write_index``, a device
tensor) and *how much* of the buffer attention sees (``view_len``) before each forward. Static
buffers and a device-side write index are what make the decode/verify step capturable in a CUDA
graph. Rejected tree nodes are simply left beyond ``length``; accepted ones are compacted in place.

A target split over several GPUs (``parallelize=True``) keeps each layer's buffers on that layer's
device; the write index then exists once per device, so every layer reads one on its own device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class _CacheState:
    """Shared per-forward bookkeeping for all layers of one cache."""

    def __init__(self, devices: list[torch.device], capacity: int) -> None:
        self.length = 0  # committed tokens (host-side truth)
        self.view_len = 0  # keys/values returned to attention in the current forward
        self.devices = devices  # the distinct devices of the layers' buffers; the cache's own first
        #: where the next forward writes, one copy per device (``write_indices[layer.slot]``)
        self.write_indices = [torch.zeros(0, dtype=torch.long, device=d) for d in devices]
        self.capacity = capacity

    def set_write_index(self, index: torch.Tensor) -> None:
        """``index`` (on the cache's device) and its copies on the other layers' devices."""
        self.write_indices = [index, *(index.to(d) for d in self.devices[1:])]


class EngineCacheLayer(CacheLayerMixin):
    """One decoder layer's static K/V buffers ``[1, kv_heads, capacity, head_dim]``."""

    # False keeps transformers' decode-time mask logic identical to its DynamicCache path
    # (no materialised mask for a single query), which the HF-equality tests rely on.
    is_compileable = False
    is_sliding = False

    def __init__(self, state: _CacheState, keys: torch.Tensor, values: torch.Tensor, slot: int = 0) -> None:
        super().__init__()
        self.state = state
        self.keys = keys
        self.values = values
        self.slot = slot  # which of ``state.devices`` holds this layer
        self.is_initialized = True
        self.dtype, self.device = keys.dtype, keys.device

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("EngineCacheLayer is allocated up front; lazy initialisation is never needed")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        idx = self.state.write_indices[self.slot]
        self.keys.index_copy_(2, idx, key_states.to(self.keys.dtype))
        self.values.index_copy_(2, idx, value_states.to(self.values.dtype))
        n = self.state.view_len
        return self.keys[:, :, :n], self.values[:, :, :n]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.state.view_len, 0

    def get_seq_length(self) -> int:
        return self.state.length

    def get_max_length(self) -> int:
        return self.state.capacity

    def reset(self) -> None:
        self.state.length = 0


class EngineCache(Cache):
    """Static cache for one sequence (batch 1) owned by an adapter or a draft model.

    ``device`` holds the bookkeeping (and, by default, every layer); ``layer_devices`` puts each
    layer's buffers on its own layer's device when the model is split over several."""

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device | str,
        layer_devices: Sequence[torch.device | str] | None = None,
    ) -> None:
        device = torch.device(device)
        placed = (
            [torch.device(d) for d in layer_devices] if layer_devices is not None else [device] * num_layers
        )
        if len(placed) != num_layers:
            raise ValueError(f"{len(placed)} layer devices for {num_layers} layers")
        devices = list(dict.fromkeys([device, *placed]))
        state = _CacheState(devices, capacity)
        shape = (1, num_kv_heads, capacity, head_dim)
        layers = [
            EngineCacheLayer(
                state,
                torch.zeros(shape, dtype=dtype, device=d),
                torch.zeros(shape, dtype=dtype, device=d),
                devices.index(d),
            )
            for d in placed
        ]
        super().__init__(layers=layers)
        self.state = state
        self.device = device
        self.dtype = dtype
        self.shape = (num_layers, num_kv_heads, head_dim)
        self._aranges = [torch.arange(capacity, device=d) for d in devices]

    # ------------------------------------------------------------------ sizes
    @property
    def length(self) -> int:
        return self.state.length

    @property
    def capacity(self) -> int:
        return self.state.capacity

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.state.length

    def reset(self) -> None:
        self.state.length = 0

    def truncate(self, length: int) -> None:
        """Forget everything after ``length`` committed tokens (used by chunked/guarded paths)."""
        if not 0 <= length <= self.state.length:
            raise ValueError(f"cannot truncate a cache of length {self.state.length} to {length}")
        self.state.length = length

    # ------------------------------------------------------------- forwards
    @torch.compiler.disable
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """transformers' ``Cache.update``, as a ``torch.compile`` boundary: a compiled decoder layer
        (:mod:`mmspec.fusion`) stops here and writes the KV eagerly (the write index and view length are
        per-step state a compiled graph must not specialise on)."""
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    def prepare_write(self, n: int, view_len: int | None = None) -> None:
        """Place the next forward's ``n`` new entries right after the committed ones.

        ``view_len`` is how many cache slots attention sees; it defaults to exactly
        ``length + n`` (eager mode). Graph mode passes a fixed bucket size instead.
        """
        start = self.state.length
        if start + n > self.state.capacity:
            raise RuntimeError(
                f"KV cache overflow: {start} committed + {n} new > capacity {self.state.capacity}"
            )
        self.state.write_indices = [a[start : start + n] for a in self._aranges]
        self.state.view_len = start + n if view_len is None else view_len

    def set_write_index(self, index: torch.Tensor, view_len: int) -> None:
        """Graph mode: a static index buffer updated in place by the runner."""
        self.state.set_write_index(index)
        self.state.view_len = view_len

    def commit(self, n_new: int, keep: Sequence[int] | None = None) -> None:
        """Accept entries of the last forward.

        ``keep`` lists the offsets (relative to the old length) of the entries to keep, in
        order; they are moved down to ``[length, length + len(keep))``. ``None`` keeps the
        first ``n_new`` entries, which are already in place.
        """
        start = self.state.length
        if keep is None:
            self.state.length = start + n_new
            return
        keep = list(keep)
        if keep != list(range(len(keep))):
            host = torch.tensor(keep, dtype=torch.long).add_(start)
            srcs = [host.to(d, non_blocking=True) for d in self.state.devices]
            dsts = [a[start : start + len(keep)] for a in self._aranges]
            for layer in self.layers:
                src, dst = srcs[layer.slot], dsts[layer.slot]
                layer.keys.index_copy_(2, dst, layer.keys.index_select(2, src))
                layer.values.index_copy_(2, dst, layer.values.index_select(2, src))
        self.state.length = start + len(keep)

    def compact_(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Device-side compaction with static-size index tensors (graph-capturable)."""
        srcs = [src, *(src.to(d) for d in self.state.devices[1:])]
        dsts = [dst, *(dst.to(d) for d in self.state.devices[1:])]
        for layer in self.layers:
            s, d = srcs[layer.slot], dsts[layer.slot]
            layer.keys.index_copy_(2, d, layer.keys.index_select(2, s))
            layer.values.index_copy_(2, d, layer.values.index_select(2, s))

    def ensure_capacity(self, needed: int) -> bool:
        """Grow the buffers if ``needed`` slots do not fit; returns True when it reallocated."""
        if needed <= self.state.capacity:
            return False
        new_cap = max(needed, int(self.state.capacity * 1.5))
        for layer in self.layers:
            for name in ("keys", "values"):
                old = getattr(layer, name)
                new = torch.zeros((*old.shape[:2], new_cap, old.shape[3]), dtype=old.dtype, device=old.device)
                new[:, :, : old.shape[2]] = old
                setattr(layer, name, new)
        self.state.capacity = new_cap
        self._aranges = [torch.arange(new_cap, device=d) for d in self.state.devices]
        return True
