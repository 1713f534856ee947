"""``pld`` (prompt lookup decoding): the n-gram rules on plain token lists, then lossless end to end."""

from __future__ import annotations

import random

import pytest

from mmspec.engine import Engine
from mmspec.methods.base import DecodeContext, RoundResult, SpecArgError
from mmspec.methods.baseline import Baseline
from mmspec.methods.pld import PromptLookup, _NgramIndex
from mmspec.tree import DraftTree

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
    d = PromptLookup(None, **args)
    d.begin(ctx, None)
    tree = d.propose(ctx)
    assert tree.tokens[0] == tokens[-1] and tree.is_chain()
    return tree.tokens[1:]


def brute_force(tokens: list[int], lo: int, hi: int, k: int, stop: frozenset[int] = frozenset()) -> list[int]:
    """The spec, by rescanning: longest n first, newest earlier clean occurrence with a non-empty
    continuation; the continuation stops before an image token and after a stop token."""
    size = len(tokens)
    for n in range(min(hi, size), lo - 1, -1):
        query = tokens[size - n :]
        if IMG in query:
            continue
        for end in range(size - 1, n - 1, -1):
            if tokens[end - n : end] == query and tokens[end] != IMG:
                out = []
                for tok in tokens[end : end + k]:
                    if tok == IMG:
                        break
                    out.append(tok)
                    if tok in stop:
                        break
                return out
    return []


# ------------------------------------------------------------------ parameters
def test_defaults_validation_and_tree_size():
    d = PromptLookup(None)
    assert d.args == {"max_ngram": 4, "min_ngram": 1, "num_draft": 10}
    assert d.max_tree_size() == 11
    assert PromptLookup(None, num_draft="3", max_ngram="2").max_tree_size() == 4  # CLI strings coerced
    for bad in ({"min_ngram": 0}, {"min_ngram": 3, "max_ngram": 2}, {"num_draft": 0}):
        with pytest.raises(SpecArgError):
            PromptLookup(None, **bad)
    with pytest.raises(SpecArgError, match="num_draft"):
        PromptLookup(None, num_drafts=3)  # typo: suggests the real name
    assert PromptLookup.paper and PromptLookup.name == "pld"


# ------------------------------------------------------------------ lookup rules
def test_newest_earlier_occurrence_wins():
    #         0  1  2  3  4  5  6  7  8  9 10 11
    tokens = [1, 2, 3, 7, 1, 2, 3, 8, 5, 1, 2, 3]
    # the 3-gram [1, 2, 3] ends at 3 and at 7 (the current suffix at 12 does not count): newest is 7
    assert draft_of(tokens) == [8, 5, 1, 2, 3]


def test_longest_ngram_first_then_fallback():
    tokens = [9, 1, 2, 3, 4, 50, 4, 60, 9, 1, 2, 3, 4]
    assert draft_of(tokens) == [50, 4, 60, 9, 1, 2, 3, 4]  # 4-gram match, although [4] is newer
    assert draft_of(tokens, max_ngram=1) == [60, 9, 1, 2, 3, 4]  # 1-gram only: the newest [4]
    # no earlier 4-gram or 3-gram: falls back to the 2-gram [3, 4] (newest at end 5 of two)
    tokens = [3, 4, 11, 3, 4, 12, 0, 3, 4]
    assert draft_of(tokens) == [12, 0, 3, 4]
    assert draft_of(tokens, min_ngram=3) == []  # 2-grams not allowed: nothing


def test_no_match_gives_root_only_and_suffix_never_matches_itself():
    d = PromptLookup(None)
    ctx = make_ctx([1, 2, 3, 4, 5])
    d.begin(ctx, None)
    tree = d.propose(ctx)
    assert tree.tokens == [5] and tree.parents == [-1]
    assert draft_of([5, 5]) == [5]  # the only earlier [5] ends at 1
    assert draft_of([5]) == []


def test_num_draft_and_length_budget_cap():
    tokens = list(range(30)) + [0]
    assert draft_of(tokens) == list(range(1, 11))
    assert draft_of(tokens, num_draft=3) == [1, 2, 3]
    d = PromptLookup(None)
    ctx = make_ctx(tokens, max_new_tokens=4)  # 1 generated, 3 left: 2 drafts + the bonus token
    d.begin(ctx, None)
    assert d.propose(ctx).tokens == [0, 1, 2]


def test_stop_token_ends_the_draft():
    tokens = [1, 2, STOP, 3, 1, 2]
    ctx = make_ctx(tokens, stop=frozenset({STOP}))
    d = PromptLookup(None)
    d.begin(ctx, None)
    assert d.propose(ctx).tokens == [2, STOP]  # nothing after a stop token can be kept


def test_image_tokens_are_never_matched_nor_drafted():
    # [IMG, 4] occurs earlier but contains an image token; the 1-gram [4] is used instead
    tokens = [IMG, 4, 8, 5, 4, 6, IMG, 4]
    assert draft_of(tokens, max_ngram=2) == [6]  # and the copy stops before the image
    # an n-gram right before an image run has nothing to copy: the older clean occurrence is used
    tokens = [3, 5, 1, 3, IMG, IMG, 2, 3]
    assert draft_of(tokens) == [5, 1, 3]
    # a suffix that only matches across the image run finds nothing
    assert draft_of([7, IMG, IMG, 7, IMG, 8], max_ngram=3) == []
    for _ in range(3):
        assert IMG not in draft_of([1, 2, IMG, IMG, IMG, 1, 2, 1, 2])


def test_begin_forgets_the_previous_turn():
    d = PromptLookup(None)
    first = make_ctx([1, 2, 3, 4, 1, 2])
    d.begin(first, None)
    assert d.propose(first).tokens == [2, 3, 4, 1, 2]
    second = make_ctx([7, 1, 2])  # [1, 2] occurred in the other sample only
    d.reset()
    d.begin(second, None)
    assert d.propose(second).tokens == [2]


# ------------------------------------------------------------------ incremental == rescan
def brute_index(tokens: list[int], lo: int, hi: int) -> dict[int, dict[tuple[int, ...], int]]:
    maps: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in range(lo, hi + 1)}
    for end in range(len(tokens)):  # ends < len(tokens): the current suffix is not indexed
        for n in range(lo, min(hi, end) + 1):
            gram = tokens[end - n : end]
            if IMG not in gram and tokens[end] != IMG:
                maps[n][tuple(gram)] = end
    return maps


def random_sequence(rng: random.Random, length: int, alphabet: int) -> list[int]:
    out: list[int] = []
    while len(out) < length:
        if rng.random() < 0.05:
            out.extend([IMG] * rng.randint(1, 4))
        else:
            out.append(rng.randrange(alphabet))
    return out[:length]


def test_incremental_index_equals_rescan_on_random_decoding():
    """Drive begin/propose/observe like the engine (random acceptance, variable-size appends)."""
    rng = random.Random(1234)
    for _ in range(300):
        lo = rng.randint(1, 3)
        hi = rng.randint(lo, 5)
        k = rng.randint(1, 8)
        alphabet = rng.randint(2, 6)
        prompt = random_sequence(rng, rng.randint(0, 30), alphabet)
        truth = [rng.randrange(alphabet) for _ in range(rng.randint(1, 40))]  # what the "target" emits
        stop = frozenset({0}) if rng.random() < 0.3 else frozenset()
        ctx = make_ctx([*prompt, truth[0]], max_new_tokens=len(truth), stop=stop)
        d = PromptLookup(None, min_ngram=lo, max_ngram=hi, num_draft=k)
        d.begin(ctx, None)
        while len(ctx.generated) < len(truth):
            tree = d.propose(ctx)
            cap = min(k, ctx.remaining - 1)
            assert tree.tokens[1:] == brute_force(ctx.tokens, lo, hi, cap, stop), ctx.tokens
            g = len(ctx.generated)
            acc = 0
            while acc < len(tree) - 1 and tree.tokens[1 + acc] == truth[g + acc]:
                acc += 1
            ctx.tokens.extend(truth[g : g + acc + 1])  # accepted drafts + the bonus token
            d.observe(
                ctx, RoundResult(tree=tree, path=list(range(acc + 1)), bonus=truth[g + acc], verify=None)
            )
        assert d._index is not None
        assert d._index.maps == brute_index(ctx.tokens, lo, hi)


def test_index_sync_in_arbitrary_chunks_equals_one_shot():
    rng = random.Random(7)
    for _ in range(200):
        tokens = random_sequence(rng, rng.randint(1, 60), rng.randint(2, 5))
        chunked = _NgramIndex(1, 4, frozenset({IMG}))
        cut = 0
        while cut < len(tokens):
            cut = min(len(tokens), cut + rng.randint(1, 5))
            chunked.sync(tokens[:cut])
        assert chunked.maps == brute_index(tokens, 1, 4)
        assert chunked.upto == len(tokens)


def test_chain_tree_shape():
    d = PromptLookup(None)
    ctx = make_ctx([4, 5, 6, 4])
    d.begin(ctx, None)
    tree = d.propose(ctx)
    assert tree.tokens == DraftTree.chain(4, [5, 6, 4]).tokens and tree.parents == [-1, 0, 1, 2]


# ------------------------------------------------------------------ end to end (tiny model)
QUESTIONS = ("What is in the image? Describe it.", "Tell me about the picture.")


def test_pld_output_equals_baseline_on_the_tiny_model():
    from _models import prompt, tiny_adapter

    adapter = tiny_adapter("tiny-qwen25vl")
    for i, question in enumerate(QUESTIONS):
        p = prompt(adapter, question, seed=i)
        base = Engine(adapter, Baseline(adapter)).generate(p, max_new_tokens=48)
        res = Engine(adapter, PromptLookup(adapter)).generate(p, max_new_tokens=48)
        assert res.token_ids == base.token_ids
        assert max(res.tree_size_per_round) > 1  # drafts were verified (and rejected) on the way


def test_pld_hits_on_repetitive_output_and_stays_lossless():
    from _models import looping_adapter, prompt

    adapter = looping_adapter()
    mats = []
    for i, question in enumerate(QUESTIONS):
        p = prompt(adapter, question, seed=i)
        base = Engine(adapter, Baseline(adapter)).generate(p, max_new_tokens=64)
        res = Engine(adapter, PromptLookup(adapter)).generate(p, max_new_tokens=64)
        assert res.token_ids == base.token_ids
        assert res.new_tokens == 64 and sum(res.accepted_per_round) == 64 - res.target_forwards
        mats.append(res.new_tokens / res.target_forwards)
    assert max(mats) > 1.1, mats
