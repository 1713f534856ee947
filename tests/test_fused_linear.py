"""Sibling projections (mmspec.fused_linear): one matmul for q/k/v and for gate/up, same outputs,
same parameters, and one traced matmul per group under torch.compile (no graph break)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmspec import fused_linear
from mmspec.fused_linear import fuse_siblings, unfuse_siblings


class _Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(16, 24, bias=True)
        self.k_proj = nn.Linear(16, 8, bias=True)
        self.v_proj = nn.Linear(16, 8, bias=False)  # a sibling without bias gets zeros in the group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return q.view(*x.shape[:-1], 3, 8).sum(-2) * k + v


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(16, 32), nn.Linear(16, 32), nn.Linear(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn, self.mlp = _Attn(), _MLP()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.self_attn(x).repeat(1, 1, 2)


def _layers():
    torch.manual_seed(0)
    return nn.ModuleList([_Layer(), _Layer()]).double()


def test_fused_siblings_compute_the_same_and_keep_parameters():
    layers = _layers()
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    ref = [layer(x) for layer in layers]
    state = {k: v.clone() for k, v in layers.state_dict().items()}
    calls = []
    real_linear = F.linear

    def counting(*a, **k):
        calls.append(a[1].shape)
        return real_linear(*a, **k)

    assert fuse_siblings(layers) == 4 and fuse_siblings(layers) == 0  # idempotent
    torch.nn.functional.linear = counting
    try:
        got = [layer(x) for layer in layers]
        separate = layers[0].self_attn.k_proj(x + 1)  # another input: the sibling computes itself
    finally:
        torch.nn.functional.linear = real_linear
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    # per layer: one gate/up matmul (64 rows), down_proj, one q/k/v matmul (40 rows); then k_proj alone
    assert [tuple(s) for s in calls] == [(64, 16), (16, 32), (40, 16)] * 2 + [(8, 16)]
    k_weight, k_bias = state["0.self_attn.k_proj.weight"], state["0.self_attn.k_proj.bias"]
    torch.testing.assert_close(separate, real_linear(x + 1, k_weight, k_bias))
    sd = layers.state_dict()
    assert sd.keys() == state.keys() and all(torch.equal(sd[k], v) for k, v in state.items())
    attn = layers[0].self_attn
    fused = attn.q_proj.weight.untyped_storage().data_ptr()
    assert attn.k_proj.weight.untyped_storage().data_ptr() == fused  # views: no second copy
    assert fused_linear._pending == {}  # nothing left behind after a forward
    unfuse_siblings(layers)
    assert "forward" not in attn.q_proj.__dict__ and "sibling_weight" not in layers.state_dict()
    for g, r in zip([layer(x) for layer in layers], ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_fused_siblings_trace_as_one_matmul_without_graph_breaks():
    layers = _layers()
    fuse_siblings(layers)
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    x = torch.randn(1, 3, 16, dtype=torch.float64)
    ref = layers[0](x)
    got = torch.compile(layers[0], backend=backend, fullgraph=True)(x)  # fullgraph: a break would raise
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    linears = [n for gm in graphs for n in gm.graph.nodes if n.target is torch._C._nn.linear]
    assert len(graphs) == 1 and len(linears) == 3  # q/k/v, gate/up, down


def test_fused_layers_share_one_compiled_graph():
    """Per-layer state is buffers and equal ints: compiling each layer's forward compiles once, not
    once per layer (a per-layer Python object would be guarded by identity)."""
    from torch._dynamo.utils import counters

    from mmspec import fusion

    torch._dynamo.reset()
    counters.clear()
    layers = _layers()
    fuse_siblings(layers)
    fusion._configure_dynamo()
    x = torch.randn(1, 3, 16, dtype=torch.float64)
    ref = [layer(x) for layer in layers]
    for layer in layers:
        layer.forward = torch.compile(layer.forward, dynamic=True, backend="eager")
    got = [layer(x) for layer in layers]
    assert counters["stats"]["unique_graphs"] == 1
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
