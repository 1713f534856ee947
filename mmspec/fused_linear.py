"""One matmul for sibling projections that read the same input (attention q/k/v, MLP gate/up).

At decode batch sizes every projection is a GEMV-shaped matmul that cuBLAS splits over K and then
reduces: two kernels each, and the small ones (a 7B model's k/v: 3.7 MB) far from the memory
bandwidth a large one reaches. Siblings that read the same activations can be one matmul over
their concatenated weights: the same bytes, 3 + 2 matmuls per decoder layer become 2.

Transformers' modules stay the model definition. Each ``nn.Linear``'s weight (and bias) becomes a
view into one concatenated tensor, held by the first sibling as a non-persistent buffer (no extra
memory; ``state_dict`` unchanged; fuse after moving the model, since ``.to()`` would copy the
buffer apart from the views). Each sibling's ``forward`` is replaced by one shared function: the
first sibling (q, gate) computes all of them and leaves the others' slices for their own calls on
the *same* input tensor; called on anything else, a sibling computes itself.

Under ``torch.compile`` every layer runs the same code: the replaced forward is one function bound
to each module, and everything it reads per layer is a module buffer/parameter (a graph input) or
an int that is equal across layers, so one compiled graph still serves all layers (a per-layer
Python object would be guarded by identity and recompile the layer once per layer).

Numerics: each output element is the same dot product, but cuBLAS may choose a different kernel for
the wider matmul, so rounding can differ in reduced precision; fusion levels are part of a target's
identity (:mod:`mmspec.fusion`).
"""

from __future__ import annotations

import types
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

#: (parent attribute, sibling projection names) fused in each decoder layer; the position in this
#: tuple is the group's *role*, the key under which its pending slices wait
SIBLINGS = (("self_attn", ("q_proj", "k_proj", "v_proj")), ("mlp", ("gate_proj", "up_proj")))
_INDEX, _ROLE, _SIZES = "_mmspec_sibling", "_mmspec_sibling_role", "_mmspec_sibling_sizes"

#: role -> (input tensor, {sibling index: its slice of the group's output}) until the siblings take them
_pending: dict[int, tuple[torch.Tensor, dict[int, torch.Tensor]]] = {}


def _sibling_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    index, role, sizes = getattr(self, _INDEX), getattr(self, _ROLE), getattr(self, _SIZES)
    if index == 0:
        parts = F.linear(x, self.sibling_weight, self.sibling_bias).split(sizes, dim=-1)
        _pending[role] = (x, dict(enumerate(parts[1:], start=1)))
        return parts[0]
    waiting = _pending.get(role)
    if waiting is not None and waiting[0] is x and index in waiting[1]:
        out = waiting[1].pop(index)
        if not waiting[1]:
            del _pending[role]
        return out
    return F.linear(x, self.weight, self.bias)


def _fuse(linears: list[nn.Linear], role: int) -> bool:
    first = linears[0]
    if not all(
        type(m) is nn.Linear
        and m.in_features == first.in_features
        and m.weight.dtype == first.weight.dtype
        and m.weight.device == first.weight.device
        for m in linears
    ):
        return False
    with torch.no_grad():
        weight = torch.cat([m.weight for m in linears])
        bias = None
        if any(m.bias is not None for m in linears):
            bias = torch.cat(
                [m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in linears]
            )
    first.register_buffer("sibling_weight", weight, persistent=False)
    first.register_buffer("sibling_bias", bias, persistent=False)
    sizes = tuple(m.out_features for m in linears)
    start = 0
    for i, m in enumerate(linears):
        m.weight = nn.Parameter(weight[start : start + sizes[i]], requires_grad=False)
        if m.bias is not None:
            m.bias = nn.Parameter(bias[start : start + sizes[i]], requires_grad=False)
        start += sizes[i]
        m.__dict__.update({_INDEX: i, _ROLE: role, _SIZES: sizes})
        m.forward = types.MethodType(_sibling_forward, m)
    return True


def fuse_siblings(layers: Iterable[nn.Module]) -> int:
    """Fuse each layer's q/k/v and gate/up projections (where present and compatible); returns how
    many groups were fused. Idempotent: fused projections are left as they are."""
    count = 0
    for layer in layers:
        for role, (parent_name, names) in enumerate(SIBLINGS):
            parent = getattr(layer, parent_name, None)
            linears = [getattr(parent, n, None) for n in names] if parent is not None else []
            if len(linears) < 2 or any(m is None for m in linears) or _INDEX in linears[0].__dict__:
                continue
            count += _fuse(linears, role)
    return count


def unfuse_siblings(modules: Iterable[nn.Module]) -> None:
    """Give every fused projection under ``modules`` its own ``nn.Linear.forward`` back. The weights
    stay views of the concatenated tensor (same values, same memory; fusing again concatenates
    afresh and the old tensor is freed)."""
    for root in modules:
        if not isinstance(root, nn.Module):
            continue
        for m in root.modules():
            if m.__dict__.pop(_INDEX, None) is not None:
                for key in (_ROLE, _SIZES, "forward"):
                    m.__dict__.pop(key, None)
    _pending.clear()
