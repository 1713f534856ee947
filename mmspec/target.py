"""``TargetView``: everything a drafter may know or ask of the target model, and only that.

A drafter gets one of these instead of the adapter, so a method can never reach into the model,
its cache or its processor: what it needs from verification arrives through ``Capture`` requests
in :class:`~mmspec.contract.ForwardOutput`; what it needs to build and run a draft network is here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmspec.timing import synchronize
from mmspec.tree import DraftTree

if TYPE_CHECKING:
    from mmspec.adapters.base import VLMAdapter


class TargetView:
    """A read-only facade over a loaded :class:`~mmspec.adapters.base.VLMAdapter`."""

    def __init__(self, adapter: VLMAdapter) -> None:
        self._adapter = adapter

    # ---------------------------------------------------------------- identity and shape
    @property
    def pretrained(self) -> str:
        """Hub id or folder the target was loaded from (finds the default draft checkpoints)."""
        return self._adapter.pretrained

    @property
    def family(self) -> str:
        """``qwen25vl``, ``llava15`` or ``llava16``: decides family conventions of published drafts."""
        return self._adapter.family

    @property
    def text_config(self) -> Any:
        """The language model's transformers config (draft shapes follow it)."""
        return self._adapter.text_config

    @property
    def hidden_size(self) -> int:
        return self._adapter.hidden_size

    @property
    def num_layers(self) -> int:
        return self._adapter.num_layers

    @property
    def vocab_size(self) -> int:
        return self._adapter.vocab_size

    @property
    def device(self) -> torch.device:
        return self._adapter.device

    @property
    def dtype(self) -> torch.dtype:
        return self._adapter.dtype

    @property
    def execution(self) -> str:
        """``eager``, ``static`` or ``graph``: drafters run their own steps the same way."""
        return self._adapter.execution

    @property
    def fusion(self) -> str:
        """How much of the target ``torch.compile`` fuses (:mod:`mmspec.fusion`): drafters fuse their own
        draft layers the same way."""
        return getattr(self._adapter, "fusion", "none")

    @property
    def kv_capacity(self) -> int:
        """Current KV-cache capacity in tokens (a draft cache starts the same size)."""
        return int(self._adapter.cache.capacity)

    # ---------------------------------------------------------------------- tokens
    @property
    def image_token_ids(self) -> frozenset[int]:
        return self._adapter.image_token_ids

    @property
    def stop_token_ids(self) -> frozenset[int]:
        return self._adapter.stop_token_ids

    @property
    def pad_token_id(self) -> int | None:
        """The target tokenizer's pad id (MMSpec's EAGLE-3 embeds it at image positions)."""
        return getattr(self._adapter.tokenizer, "pad_token_id", None)

    # ---------------------------------------------------------------------- weights
    @property
    def embedding_weight(self) -> torch.Tensor:
        """The input embedding matrix ``[V, H]`` (published drafts carry a frozen copy of it)."""
        return self._adapter.embed_tokens.weight

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._adapter.embed(ids)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._adapter.lm_head(hidden)

    # ---------------------------------------------------------------------- ViSkip
    def enable_query_tap(self) -> None:
        """Record the last layer's query rows on every forward (ViSkip's attention gate)."""
        self._adapter.enable_query_tap()

    def visual_attention_mass(self, node: int, spans: Sequence[tuple[int, int]]) -> float:
        """Last-layer attention share on image tokens of tree node ``node`` of the last forward."""
        return self._adapter.visual_attention_mass(node, spans)

    # ---------------------------------------------------------------------- cost
    def verify_seconds(self, tree_size: int, repeats: int, seed: int = 0) -> float:
        """Seconds for ``repeats`` verifications of a ``tree_size``-token chain on an empty cache
        (after one warm-up); the cache is left empty. For methods that size trees by timing."""
        adapter = self._adapter
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, max(self.vocab_size - 200, 1), (tree_size,), generator=gen).tolist()
        tree = DraftTree.chain(ids[0], ids[1:])
        adapter.reserve(tree_size + 1)
        adapter.cache.reset()
        adapter.forward_tree(tree)
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(repeats):
            adapter.forward_tree(tree)
            synchronize(self.device)
        adapter.cache.reset()
        return time.perf_counter() - start
