"""The language model's attention backend: transformers' SDPA path plus two things trees need.

Registered through transformers' public ``AttentionInterface`` / ``AttentionMaskInterface`` hooks
under the name ``mmspec_sdpa`` (no modeling code is touched):

* With no mask (prefill from an empty cache, one-token decode) it *is* transformers' own
  ``sdpa_attention_forward``, so plain decoding stays bit-identical to ``generate``.
* With a 4-D tree mask it folds the query heads that share a KV head into the query-length axis
  (``[b, kv, groups * n, d]``) instead of materialising repeated K/V for every query head, which is
  what transformers does whenever a mask is present. Same arithmetic per query row; far fewer bytes.
* For few query rows (decode and small trees) it uses two batched matmuls and a float32 softmax
  instead of a fused SDPA kernel: fused kernels tile over queries, so with a handful of query rows
  per KV head they run on a handful of SMs; the matmuls spread the keys over the whole GPU.
* It can record the post-rope query rows of one layer (``QueryTap``): ViSkip measures the last
  layer's attention mass on image tokens from one captured row and the cached keys, instead of
  switching the whole model to eager attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

NAME = "mmspec_sdpa"
#: grouped query rows (query heads per KV head x tree nodes) up to which matmul attention is used
MATH_MAX_ROWS = 64


@dataclass
class QueryTap:
    """Copies one layer's post-rope query rows into a fixed buffer on every forward.

    The buffer is allocated once, so a captured CUDA graph writes to the address the reader uses.
    A prefill (``last_only``, or more rows than the buffer holds) records only its last row, at
    row 0: the row that produced the first generated token.
    """

    buffer: torch.Tensor  # [heads, rows, head_dim]
    last_only: bool = False

    def record(self, query: torch.Tensor) -> None:
        q = query[0]  # [heads, n, head_dim]
        n = q.shape[1]
        if self.last_only or n > self.buffer.shape[1]:
            q, n = q[:, -1:], 1
        self.buffer[:, :n].copy_(q)


_taps: dict[int, QueryTap] = {}  # id(module) -> tap


def set_query_tap(module: torch.nn.Module, tap: QueryTap | None) -> None:
    """Attach (or remove) a query tap to one attention module."""
    if tap is None:
        _taps.pop(id(module), None)
    else:
        _taps[id(module)] = tap


class _GroupedMaskCache:
    """The same mask object reaches every layer of one forward: expand it once per forward."""

    src: torch.Tensor | None = None
    groups = 0
    out: torch.Tensor | None = None

    def get(self, mask: torch.Tensor, groups: int) -> torch.Tensor:
        if mask is not self.src or groups != self.groups:
            self.src, self.groups = mask, groups
            self.out = mask.repeat(1, 1, groups, 1)
        return self.out


_grouped = _GroupedMaskCache()


def mmspec_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    tap = _taps.get(id(module))
    if tap is not None:
        tap.record(query)
    if attention_mask is None:
        return sdpa_attention_forward(module, query, key, value, None, dropout, scaling, is_causal, **kwargs)
    b, hq, n, d = query.shape
    hk = key.shape[1]
    groups = hq // hk
    q = query.reshape(b, hk, groups * n, d)  # head h = kv * groups + j shares kv head `kv`
    mask = _grouped.get(attention_mask, groups) if groups > 1 else attention_mask
    if groups * n <= MATH_MAX_ROWS:
        out = _math_attention(q, key, value, mask, scaling if scaling is not None else d**-0.5)
    else:
        out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(b, hq, n, d).transpose(1, 2).contiguous(), None


def math_attention(
    q: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v with a float32 softmax (transformers' eager numerics)."""
    scores = torch.matmul(q, key.transpose(-1, -2)) * scale + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    return torch.matmul(probs, value)


_math_attention = math_attention  # replaced by a compiled version in graph mode (mmspec.fusion)


def use_compiled_math(enabled: bool = True) -> None:
    """Fuse the scale/mask/softmax/cast chain of :func:`math_attention` (GPU graph mode)."""
    global _math_attention
    _math_attention = torch.compile(math_attention, dynamic=True) if enabled else math_attention


def image_attention_share(query: torch.Tensor, keys: torch.Tensor, spans: Sequence[tuple[int, int]]) -> float:
    """Attention mass one query row puts on the image slots ``spans`` of ``keys``, averaged over heads.

    ``query`` [heads, head_dim] (post-rope, as tapped); ``keys`` [kv heads, T, head_dim]. Computed in
    float32 exactly as eager attention would (scaled dot products, softmax over all T keys)."""
    if not spans:
        return 0.0
    q, k = query.float(), keys.float()
    groups = q.shape[0] // k.shape[0]
    scores = torch.einsum("kgd,ktd->kgt", q.view(k.shape[0], groups, -1), k) * q.shape[-1] ** -0.5
    probs = torch.softmax(scores, dim=-1)
    image = torch.zeros(k.shape[1], dtype=torch.bool, device=k.device)
    for a, b in spans:
        image[a:b] = True
    return float(probs[..., image].sum(-1).mean())


_boundary = False  # whether the registered function is a torch.compile boundary (mmspec.fusion)


def register() -> str:
    """Make ``mmspec_sdpa`` available to every transformers model (idempotent)."""
    fn = _compile_boundary_forward if _boundary else mmspec_sdpa_forward
    ALL_ATTENTION_FUNCTIONS.register(NAME, fn)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


_compile_boundary_forward = torch.compiler.disable(mmspec_sdpa_forward)


def set_compile_boundary(enabled: bool = True) -> None:
    """Make the attention function a ``torch.compile`` boundary (fusion level ``layers``).

    A compiled decoder layer then stops at the attention call and runs it eagerly: the KV view
    length and the grouped-mask cache are host-side state a compiled graph would specialise on, and
    the tree-attention math has its own compiled version. Off (the default), nothing changes for
    code that compiles a whole model itself (e.g. transformers' static-cache ``generate``)."""
    global _boundary
    _boundary = bool(enabled)
    register()
