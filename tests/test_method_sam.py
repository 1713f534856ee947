"""``sam`` (SAM decoding): the suffix automaton's match and drafts on token lists, then end to end."""

from __future__ import annotations

import random

import pytest

from mmspec.engine import Engine
from mmspec.methods.base import DecodeContext, RoundResult, SpecArgError
from mmspec.methods.baseline import Baseline
from mmspec.methods.sam import SuffixAutomaton, SuffixAutomatonIndex

IMG = 99  # image placeholder id in the token-list tests
STOP = 98


def make_ctx(
    tokens: list[int], max_new_tokens: int = 10**6, stop: frozenset[int] = frozenset()
) -> DecodeContext:
    """A context as the engine builds it: the last token is the first generated one."""
    spans: list[tuple[int, int]] = []
    for i, tok in enumerate(tokens):
        if tok == IMG:
            if spans and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
    return DecodeContext(
        tokens=list(tokens),
        prompt_len=len(tokens) - 1,
        image_spans=spans,
        image_token_ids=frozenset({IMG}),
        stop_token_ids=stop,
        temperature=0.0,
        max_new_tokens=max_new_tokens,
    )


def draft_of(tokens: list[int], **args) -> list[int]:
    """Begin a turn on ``tokens`` and return the first proposal's draft (root excluded)."""
    ctx = make_ctx(tokens)
    d = SuffixAutomaton(None, **args)
    d.begin(ctx, None)
    tree = d.propose(ctx)
    assert tree.tokens[0] == tokens[-1] and tree.is_chain()
    return tree.tokens[1:]


def brute_match(tokens: list[int]) -> tuple[int, int]:
    """(length, first exclusive end) of the longest suffix that also ends at an earlier position."""
    size = len(tokens)
    for length in range(size - 1, 0, -1):
        suffix = tokens[size - length :]
        for end in range(length, size):
            if tokens[end - length : end] == suffix:
                return length, end
    return 0, 0


def brute_draft(
    tokens: list[int], k: int, min_match: int = 1, stop: frozenset[int] = frozenset()
) -> list[int]:
    length, end = brute_match(tokens)
    if length < min_match:
        return []
    out = []
    for tok in tokens[end : end + k]:
        if tok == IMG:
            break
        out.append(tok)
        if tok in stop:
            break
    return out


# ------------------------------------------------------------------ parameters
def test_defaults_validation_and_tree_size():
    d = SuffixAutomaton(None)
    assert d.args == {"n_predicts": 40, "min_match": 1, "alpha": 0.0}
    assert d.max_tree_size() == 41
    assert SuffixAutomaton(None, n_predicts="5").max_tree_size() == 6  # CLI strings coerced
    for bad in ({"n_predicts": 0}, {"min_match": 0}):
        with pytest.raises(SpecArgError):
            SuffixAutomaton(None, **bad)
    with pytest.raises(SpecArgError, match="n_predicts"):
        SuffixAutomaton(None, n_predict=3)
    assert SuffixAutomaton.paper and SuffixAutomaton.name == "sam"


# ------------------------------------------------------------------ match and continuation
def test_longest_match_beyond_any_ngram_size():
    #         0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16
    tokens = [1, 2, 3, 4, 5, 6, 9, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6]
    # [1..6] (length 6) ends at 6; the newer [3, 4, 5, 6] at 11 is shorter, so it loses
    assert brute_match(tokens) == (6, 6)
    assert draft_of(tokens, n_predicts=5) == [9, 3, 4, 5, 6]


def test_first_earlier_occurrence_and_no_self_match():
    tokens = [5, 1, 2, 5, 1, 3, 5, 1]
    assert draft_of(tokens) == [2, 5, 1, 3, 5, 1]  # [5, 1] ends at 2 and 5: the first one
    assert draft_of([1, 2, 1]) == [2, 1]  # the last token is looked up once, before it is added
    assert draft_of([1, 1]) == [1]
    assert draft_of([1]) == []


def test_no_match_and_min_match_give_root_only():
    d = SuffixAutomaton(None)
    ctx = make_ctx([1, 2, 3, 4])
    d.begin(ctx, None)
    tree = d.propose(ctx)
    assert tree.tokens == [4] and tree.parents == [-1]
    tokens = [7, 8, 0, 7, 8]  # match length 2
    assert draft_of(tokens, min_match=2) == [0, 7, 8]
    assert draft_of(tokens, min_match=3) == []


def test_n_predicts_length_budget_and_stop_caps():
    tokens = list(range(60)) + [0]
    assert draft_of(tokens) == list(range(1, 41))
    assert draft_of(tokens, n_predicts=4) == [1, 2, 3, 4]
    d = SuffixAutomaton(None)
    ctx = make_ctx(tokens, max_new_tokens=3)  # 1 generated, 2 left: 1 draft + the bonus token
    d.begin(ctx, None)
    assert d.propose(ctx).tokens == [0, 1]
    ctx = make_ctx([1, 2, STOP, 3, 1], stop=frozenset({STOP}))
    d.begin(ctx, None)
    assert d.propose(ctx).tokens == [1, 2, STOP]


def test_image_tokens_are_never_drafted():
    assert draft_of([4, 5, IMG, IMG, 6, 4]) == [5]  # stops before the image run
    assert draft_of([4, IMG, IMG, 6, 4]) == []  # nothing before the image: root only
    tokens = [1, 2, IMG, IMG, IMG, 3, 1, 2, 7, 1, 2]
    assert draft_of(tokens) == []  # first [1, 2] ends at 2, followed by the image
    rng = random.Random(5)
    for _ in range(200):
        seq = [rng.choice([0, 1, 2, IMG]) for _ in range(rng.randint(2, 30))]
        if seq[-1] != IMG:
            assert IMG not in draft_of(seq)


def test_begin_forgets_the_previous_turn():
    d = SuffixAutomaton(None)
    first = make_ctx([1, 2, 3, 1, 2])
    d.begin(first, None)
    assert d.propose(first).tokens == [2, 3, 1, 2]
    d.reset()
    second = make_ctx([9, 2])  # [2] occurred in the other sample only
    d.begin(second, None)
    assert d.propose(second).tokens == [2]


# ------------------------------------------------------------------ automaton == brute force
def test_match_equals_brute_force_on_every_prefix():
    rng = random.Random(2024)
    for _ in range(300):
        tokens = [rng.randrange(rng.randint(1, 4)) for _ in range(rng.randint(1, 50))]
        sam = SuffixAutomatonIndex()
        for i, tok in enumerate(tokens):
            sam.append(tok)
            length, end = brute_match(tokens[: i + 1])
            got_length, got_end = sam.match()
            assert got_length == length, tokens[: i + 1]
            if length:
                assert got_end == end, tokens[: i + 1]
        assert sam.size == len(tokens) and len(sam.length) <= max(2, 2 * len(tokens) - 1)


def test_incremental_drafts_equal_brute_force_on_random_decoding():
    """Drive begin/propose/observe like the engine (random acceptance, variable-size appends)."""
    rng = random.Random(99)
    for _ in range(300):
        k = rng.randint(1, 12)
        min_match = rng.randint(1, 3)
        alphabet = rng.randint(2, 5)
        prompt = [IMG if rng.random() < 0.1 else rng.randrange(alphabet) for _ in range(rng.randint(0, 30))]
        truth = [rng.randrange(alphabet) for _ in range(rng.randint(1, 50))]
        stop = frozenset({0}) if rng.random() < 0.3 else frozenset()
        ctx = make_ctx([*prompt, truth[0]], max_new_tokens=len(truth), stop=stop)
        d = SuffixAutomaton(None, n_predicts=k, min_match=min_match)
        d.begin(ctx, None)
        while len(ctx.generated) < len(truth):
            tree = d.propose(ctx)
            cap = min(k, ctx.remaining - 1)
            assert tree.tokens[1:] == brute_draft(ctx.tokens, cap, min_match, stop), ctx.tokens
            g = len(ctx.generated)
            acc = 0
            while acc < len(tree) - 1 and tree.tokens[1 + acc] == truth[g + acc]:
                acc += 1
            ctx.tokens.extend(truth[g : g + acc + 1])  # accepted drafts + the bonus token
            result = RoundResult(tree=tree, path=list(range(acc + 1)), bonus=truth[g + acc], verify=None)
            d.observe(ctx, result)
        assert d._sam is not None and d._sam.size == len(ctx.tokens)


# ------------------------------------------------------------------ end to end (tiny model)
QUESTIONS = ("What is in the image? Describe it.", "Tell me about the picture.")


def test_sam_output_equals_baseline_on_the_tiny_model():
    from _models import prompt, tiny_adapter

    adapter = tiny_adapter("tiny-qwen25vl")
    for i, question in enumerate(QUESTIONS):
        p = prompt(adapter, question, seed=i)
        base = Engine(adapter, Baseline(adapter)).generate(p, max_new_tokens=48)
        res = Engine(adapter, SuffixAutomaton(adapter)).generate(p, max_new_tokens=48)
        assert res.token_ids == base.token_ids
        assert max(res.tree_size_per_round) > 1  # drafts were verified (and rejected) on the way


def test_sam_hits_on_repetitive_output_and_stays_lossless():
    from _models import looping_adapter, prompt

    adapter = looping_adapter()
    mats = []
    for i, question in enumerate(QUESTIONS):
        p = prompt(adapter, question, seed=i)
        base = Engine(adapter, Baseline(adapter)).generate(p, max_new_tokens=64)
        res = Engine(adapter, SuffixAutomaton(adapter)).generate(p, max_new_tokens=64)
        assert res.token_ids == base.token_ids
        assert res.new_tokens == 64 and sum(res.accepted_per_round) == 64 - res.target_forwards
        mats.append(res.new_tokens / res.target_forwards)
    assert max(mats) > 1.1, mats
