"""Engine and adapter units: trees, masks, positions (Qwen 3-D), KV compaction, stops, lengths."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from _models import TINY_MODELS, prompt, tiny_adapter

from mmspec.acceptance import greedy_walk
from mmspec.engine import Engine, emit
from mmspec.methods.baseline import Baseline
from mmspec.methods.oracle import Oracle
from mmspec.tree import DraftTree, dedupe_siblings


def test_tree_structure_and_ancestor_mask():
    tree = DraftTree([10, 11, 12, 13, 14, 15], [-1, 0, 0, 1, 1, 3])
    assert tree.depths() == [0, 1, 1, 2, 2, 3]
    assert tree.children() == [[1, 2], [3, 4], [], [5], [], []]
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0],
            [1, 1, 0, 1, 0, 0],
            [1, 1, 0, 0, 1, 0],
            [1, 1, 0, 1, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(tree.ancestor_mask(), expected)
    assert tree.path_to(5) == [0, 1, 3, 5]
    assert DraftTree.chain(7, [1, 2, 3]).is_chain()
    with pytest.raises(ValueError):
        DraftTree([1, 2], [-1, 1])  # a node cannot be its own parent


def test_from_paths_merges_prefixes_and_dedupe():
    tree = DraftTree.from_paths(0, [[1, 2, 3], [1, 2, 4], [5]])
    assert tree.tokens == [0, 1, 2, 3, 4, 5]
    assert tree.parents == [-1, 0, 1, 2, 2, 0]
    dup = DraftTree([0, 1, 1, 2, 3], [-1, 0, 0, 1, 2])
    merged = dedupe_siblings(dup)
    assert merged.tokens == [0, 1, 2, 3] and merged.parents == [-1, 0, 1, 1]


def test_greedy_walk_picks_longest_valid_path():
    tree = DraftTree([10, 11, 12, 13, 14, 15], [-1, 0, 0, 1, 1, 3])
    # target argmax per node: root->11, node1->14, node4->99 (bonus)
    argmax = [11, 14, 0, 0, 99, 0]
    assert greedy_walk(tree, argmax) == ([0, 1, 4], 99)
    assert greedy_walk(tree, [42, 0, 0, 0, 0, 0]) == ([0], 42)


def test_emit_cuts_at_stop_and_length():
    assert emit([1, 2, 3], frozenset({9}), 10) == ([1, 2, 3], None)
    assert emit([1, 9, 3], frozenset({9}), 10) == ([1, 9], "stop")
    assert emit([1, 2, 3], frozenset({9}), 2) == ([1, 2], "length")
    assert emit([1, 2], frozenset({9}), 2) == ([1, 2], "length")


@pytest.fixture(scope="module", params=TINY_MODELS)
def adapter(request):
    return tiny_adapter(request.param)


@contextmanager
def no_stops(adapter):
    """Disable stop tokens so a test controls the output length by itself."""
    saved = adapter.stop_token_ids
    adapter.stop_token_ids = frozenset({-1})
    try:
        yield
    finally:
        adapter.stop_token_ids = saved


def sequential(adapter, p, n):
    """Reference: plain one-token-per-forward greedy decoding of n tokens."""
    with no_stops(adapter):
        return Engine(adapter, Baseline(adapter)).generate(p, n).token_ids


def test_tree_mask_layout(adapter):
    anc = DraftTree([1, 2, 3], [-1, 0, 0]).ancestor_mask()
    mask = adapter.tree_attention_mask(anc, start=5)
    assert mask.shape == (1, 1, 3, 8)
    assert torch.all(mask[0, 0, :, :5] == 0)  # whole prefix visible
    visible = mask[0, 0, :, 5:] == 0
    assert torch.equal(visible.cpu(), anc)


def test_tree_verification_equals_sequential_decoding(adapter):
    """One forward over a tree with wrong branches gives, on the true path, sequential argmaxes."""
    p = prompt(adapter)
    ref = sequential(adapter, p, 6)
    pre = adapter.prefill(p)
    assert int(pre.logits[-1].argmax()) == ref[0]
    wrong = (ref[1] + 1) % adapter.vocab_size
    tree = DraftTree([ref[0], ref[1], wrong, ref[2], wrong, ref[3], ref[3]], [-1, 0, 0, 1, 1, 3, 2])
    out = adapter.forward_tree(tree)
    argmax = out.logits.argmax(-1).tolist()
    assert [argmax[0], argmax[1], argmax[3], argmax[5]] == ref[1:5]
    path, bonus = greedy_walk(tree, argmax)
    assert path == [0, 1, 3, 5] and bonus == ref[4]
    adapter.commit(len(tree), path)
    nxt = adapter.forward_tree(DraftTree.root_only(bonus))
    assert int(nxt.logits[-1].argmax()) == ref[5]


def test_kv_compaction_equals_sequential_cache(adapter):
    """After committing a non-contiguous path, the cache holds the sequential KV.

    Tolerance: transformers' RMSNorm computes in float32 even for float64 inputs, and fused (graph
    mode) reductions may round differently for different token counts; a wrong slot would differ by
    O(1), far above 1e-4.
    """
    p = prompt(adapter, seed=1)
    ref = sequential(adapter, p, 4)
    adapter.prefill(p)
    for tok in ref[:3]:  # sequential reference cache
        adapter.forward_tree(DraftTree.root_only(tok))
        adapter.commit(1)
    want = [(layer.keys[:, :, : adapter.cache_len].clone(), layer.values[:, :, : adapter.cache_len].clone())
            for layer in adapter.cache.layers]  # fmt: skip
    adapter.prefill(p)
    wrong = (ref[1] + 7) % adapter.vocab_size
    tree = DraftTree([ref[0], wrong, ref[1], wrong, ref[2]], [-1, 0, 0, 2, 2])
    adapter.forward_tree(tree)
    adapter.commit(len(tree), [0, 2, 4])
    assert adapter.cache_len == want[0][0].shape[2]
    for layer, (k, v) in zip(adapter.cache.layers, want):
        n = adapter.cache_len
        torch.testing.assert_close(layer.keys[:, :, :n], k, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(layer.values[:, :, :n], v, rtol=1e-4, atol=1e-5)


def test_qwen_tree_positions_continue_3d_rope():
    """Our decode positions equal the model's own 3-D rope index over the extended sequence."""
    adapter = tiny_adapter("tiny-qwen25vl")
    p = prompt(adapter)
    adapter.prefill(p)
    assert adapter.rope_delta != 0  # the image makes text positions differ from token indices
    depths = torch.tensor([0, 1, 1, 2])
    ours = adapter.position_ids(depths.to(adapter.device) + adapter.cache_len)
    assert ours.shape == (3, 1, 4)
    extra = torch.tensor([[5, 6, 7]])
    ids = torch.cat([p.input_ids, extra], dim=1)
    mm = torch.cat([p.model_inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    full, _ = adapter.model.model.get_rope_index(ids, mm, image_grid_thw=p.model_inputs["image_grid_thw"])
    L = p.length
    # sequential positions of tokens L..L+2 == tree positions at depth 0..2 on every axis
    assert torch.equal(full[:, 0, L : L + 3].cpu(), ours[:, 0, [0, 1, 3]].cpu())


def test_stop_token_inside_accepted_block_ends_output():
    adapter = tiny_adapter("tiny-qwen25vl")
    p = prompt(adapter, "Tell me about the picture.")
    ref = Engine(adapter, Baseline(adapter)).generate(p, 24).token_ids
    stop_at = next(i for i in range(4, len(ref)) if ref[i] not in ref[:i])
    saved = adapter.stop_token_ids
    adapter.stop_token_ids = frozenset({ref[stop_at]})
    try:
        oracle = Oracle(adapter, k=10, wrong_tail=2)
        oracle.references = {("t", "s", 0): ref}
        res = Engine(adapter, oracle).generate(p, 24, key=("t", "s", 0))
        base = Engine(adapter, Baseline(adapter)).generate(p, 24)
    finally:
        adapter.stop_token_ids = saved
    assert res.token_ids == ref[: stop_at + 1] == base.token_ids
    assert res.stop_reason == "stop" and res.new_tokens == stop_at + 1
    assert max(res.accepted_per_round) == 10  # the stop token sat inside an accepted block
    assert res.rounds < base.rounds


@pytest.mark.parametrize("max_new", [1, 2, 3, 7, 11])
def test_max_new_tokens_is_exact(max_new):
    adapter = tiny_adapter("tiny-llava15")
    p = prompt(adapter)
    with no_stops(adapter):  # test the length budget alone
        ref = Engine(adapter, Baseline(adapter)).generate(p, 16).token_ids
        oracle = Oracle(adapter, k=6)
        oracle.references = {("t", "s", 0): ref}
        res = Engine(adapter, oracle).generate(p, max_new, key=("t", "s", 0))
        base = Engine(adapter, Baseline(adapter)).generate(p, max_new)
    assert res.token_ids == ref[:max_new] == base.token_ids
    assert res.new_tokens == max_new and res.stop_reason == "length"
    assert base.target_forwards == max_new  # plain decoding: MAT exactly 1
    assert res.target_forwards == 1 + -(-(max_new - 1) // 7)  # k=6 drafts + 1 bonus per round


def test_oracle_padded_tree_accepts_exactly_k():
    """The benchmark oracle: k correct drafts per round, wrong branches padding the tree to size."""
    adapter = tiny_adapter("tiny-qwen25vl")
    p = prompt(adapter, seed=2)
    with no_stops(adapter):
        ref = Engine(adapter, Baseline(adapter)).generate(p, 30).token_ids
        oracle = Oracle(adapter, k=3, tree_nodes=20)
        oracle.references = {("t", "s", 0): ref}
        res = Engine(adapter, oracle).generate(p, 30, key=("t", "s", 0))
    assert res.token_ids == ref
    assert set(res.tree_size_per_round) == {20}
    assert res.accepted_per_round[:-1] == [3] * (len(res.accepted_per_round) - 1)


class _RoundByRound(Baseline):
    """The baseline without chained decoding: one host round per forward."""

    plain_decoding = False


@pytest.mark.parametrize("name", TINY_MODELS)
def test_chained_decode_equals_round_by_round(name, monkeypatch):
    """Forwards queued ahead of the host (static/graph execution) give the same tokens, rounds and
    committed cache; a stop token mid-chain cuts the output there and leaves nothing committed past it."""
    from _models import model_args_for_tests

    from mmspec.adapters import load_model

    args = model_args_for_tests()
    if args.get("execution", "eager") == "eager" and args["device"] == "cpu":
        args["execution"] = "static"
    adapter = load_model(name, args)
    assert adapter.chained is not None
    calls = []
    tokens = adapter.chained.tokens
    monkeypatch.setattr(adapter.chained, "tokens", lambda *a: calls.append(a) or tokens(*a))
    p = prompt(adapter, seed=3)
    with no_stops(adapter):
        slow = Engine(adapter, _RoundByRound(adapter)).generate(p, 12)
        slow_len = adapter.cache_len
        assert not calls
        fast = Engine(adapter, Baseline(adapter)).generate(p, 12)
        assert len(calls) == 1
    assert fast.token_ids == slow.token_ids and fast.rounds == slow.rounds == 11
    assert fast.tree_size_per_round == [1] * 11 and fast.stop_reason == "length"
    assert adapter.cache_len == slow_len == p.length + 11
    stop_at = next(i for i in range(3, 12) if slow.token_ids[i] not in slow.token_ids[:i])
    saved = adapter.stop_token_ids
    adapter.stop_token_ids = frozenset({slow.token_ids[stop_at]})
    try:
        cut = Engine(adapter, Baseline(adapter)).generate(p, 12)
    finally:
        adapter.stop_token_ids = saved
    assert cut.token_ids == slow.token_ids[: stop_at + 1] and cut.stop_reason == "stop"
    assert cut.rounds == stop_at and adapter.cache_len == p.length + stop_at
