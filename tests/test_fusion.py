"""Fusion levels (mmspec.fusion): compiled decoder layers compute what transformers' eager modules
compute, and speculative decoding stays exactly as lossless with them.

The CUDA graph default (``layers``) compiles each whole decoder layer with the KV write and the
attention call as compile boundaries. On the CPU ``torch.compile`` generates C++ instead of Triton,
but dynamo's tracing, the graph breaks and the fused elementwise math are the same code paths, so
these tests check them against the eager reference (float64, and float32 within rounding).
"""

from __future__ import annotations

import pytest
import torch
from _drafts import QUESTIONS, distilled_drafter
from _models import model_args_for_tests, prompt, tiny_adapter

from mmspec import attention, fusion
from mmspec.engine import Engine
from mmspec.methods import get_spec
from mmspec.tree import DraftTree


@pytest.fixture(autouse=True)
def _restore_global_state():
    yield
    attention.use_compiled_math(False)
    attention.set_compile_boundary(False)


def _load(model: str, dtype: str, fusion_level: str):
    from mmspec.adapters import load_model

    return load_model(model, {**model_args_for_tests(dtype), "execution": "static", "fusion": fusion_level})


def test_resolve_fusion_defaults_and_choices():
    assert fusion.resolve_fusion(None, "graph") == fusion.DEFAULT_GRAPH_FUSION == "layers"
    assert fusion.resolve_fusion("auto", "static") == "none"
    assert fusion.resolve_fusion(None, "eager") == "none"
    assert fusion.resolve_fusion("NORMS", "graph") == "norms"
    with pytest.raises(ValueError, match="fusion must be one of"):
        fusion.resolve_fusion("everything", "graph")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_topk_logprobs_equals_log_softmax_topk(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(5, 3001, generator=gen) * 4).to(dtype)
    ref_s, ref_i = torch.log_softmax(logits.float(), dim=-1).topk(7, dim=-1)
    for compiled in (False, True):
        s, i = fusion.draft_topk(logits, 7, compiled)
        assert s.dtype == torch.float32
        torch.testing.assert_close(s, ref_s, rtol=0, atol=2e-6)
        # same order unless two log-probabilities tie after rounding (then either is a valid top-k)
        assert torch.equal(torch.gather(logits, 1, i), torch.gather(logits, 1, ref_i))


def _verify_rows(adapter, p) -> list[torch.Tensor]:
    """Prefill logits, then a one-token step and two trees (decode and tree buckets), with the
    captured final hidden state: everything a round reads from the target."""
    from mmspec.contract import Capture

    cap = Capture(hidden=(adapter.num_layers,))
    outs = [adapter.prefill(p, cap).logits.clone()]
    for n in (1, 3, 6):
        tree = DraftTree(list(range(5, 5 + n)), [-1] + [(i - 1) // 2 for i in range(1, n)])
        out = adapter.forward_tree(tree, cap)
        outs += [out.logits.clone(), out.hidden[adapter.num_layers].clone()]
        adapter.commit(n, [0])
    return outs


@pytest.mark.parametrize("model", ["tiny-qwen25vl", "tiny-llava15"])
@pytest.mark.parametrize("level", ["norms", "layers"])
def test_fused_language_model_matches_eager_modules(model, level):
    """Every fused level gives the eager modules' logits and hidden states to float32 rounding (the
    eager RMSNorm computes in float32 even in a float64 model, and inductor keeps the wider type
    instead of rounding through float32); switching back to ``none`` restores the eager forward."""
    adapter = _load(model, "float64", level)
    assert adapter.fusion == level
    p = prompt(adapter)
    got = _verify_rows(adapter, p)
    assert adapter.set_fusion("none") == "none"
    ref = _verify_rows(adapter, p)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    eager = tiny_adapter(model)  # the shared, never-compiled model: identical weights
    for g, r in zip(_verify_rows(eager, prompt(eager))[:1], ref[:1]):
        assert torch.equal(g, r)


def test_fused_layers_float32_within_rounding():
    adapter = _load("tiny-qwen25vl", "float32", "layers")
    p = prompt(adapter)
    got = _verify_rows(adapter, p)
    adapter.set_fusion("none")
    ref = _verify_rows(adapter, p)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["eagle2", "eagle3", "medusa"])
def test_fused_target_and_draft_stay_lossless(method):
    """Target and draft layers fused (``layers``), static steps: the same tokens and the same
    acceptance, round by round, as the eager target with the eager draft."""
    eager = distilled_drafter("tiny-llava15", method, steps=300)
    adapter = _load("tiny-llava15", "float64", "layers")
    drafter = get_spec(method)(adapter, checkpoint="random")
    inner, trained = getattr(drafter, "inner", drafter), getattr(eager, "inner", eager)
    inner.net.load_state_dict(trained.net.state_dict())
    eager_adapter = tiny_adapter("tiny-llava15")
    ref = Engine(eager_adapter, eager).generate(prompt(eager_adapter, QUESTIONS[0], seed=0), 40)
    got = Engine(adapter, drafter).generate(prompt(adapter, QUESTIONS[0], seed=0), 40)
    assert got.token_ids == ref.token_ids
    assert got.accepted_per_round == ref.accepted_per_round
    assert sum(got.accepted_per_round) > 3
