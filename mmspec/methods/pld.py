"""``pld``: prompt lookup decoding (training-free n-gram copying from the context).

The draft is what followed the newest earlier occurrence of the sequence's last n-gram, tried for
``n = max_ngram .. min_ngram`` (longer contexts first, because they predict better). It costs no
model call, so every hit is nearly free speed-up on text that copies the prompt or repeats itself.

Differences from MMSpec's version (protocol notes §3.9, §8 item 15), all on purpose:

* The lookup is incremental. :class:`_NgramIndex` maps every n-gram to its newest end position and
  is updated from the newly committed tokens only, so a round costs O(max_ngram² + num_draft)
  instead of a rescan of the whole (image-heavy) sequence.
* ``max_ngram``, ``min_ngram`` and ``num_draft`` are real parameters (MMSpec ignored its flags and
  tried one n-gram size only).
* Verification is the engine's single forward over ``[root, *draft]``; there is no repetition
  early-stop, so the output is exactly the target's greedy (or sampled) output.

Image placeholders never take part: an n-gram containing one is neither indexed nor looked up, and
a draft stops before the first placeholder (copying thousands of ``<image>`` ids is never useful).
"""

from __future__ import annotations

from typing import Any

from mmspec.methods.base import DecodeContext, Drafter, RoundResult, SpecArgError
from mmspec.tree import DraftTree


class _NgramIndex:
    """n-gram -> newest *earlier* end position, for every ``n`` in ``[min_n, max_n]``.

    Positions are exclusive ends: the n-gram ``tokens[e - n : e]`` "ends at" ``e`` and its
    continuation starts at ``tokens[e]``. The index deliberately lags one token behind the
    sequence: after :meth:`sync` on a sequence of length ``L`` it holds the n-grams ending at
    ``e <= L - 1`` only. So the n-gram ending at ``L`` (the current suffix, the query itself) is
    never its own match, and every indexed n-gram has at least one known continuation token.

    An n-gram is skipped when it contains an image placeholder, or when the token right after it is
    one (its continuation would be empty); the dict then keeps the newest *usable* occurrence.
    Later occurrences overwrite earlier ones, so a lookup returns the newest usable occurrence.
    """

    def __init__(self, min_n: int, max_n: int, image_ids: frozenset[int]) -> None:
        self.min_n, self.max_n = min_n, max_n
        self.image_ids = image_ids
        self.maps: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in range(min_n, max_n + 1)}
        self.upto = 0  # end positions < upto are indexed
        self.last_image = -1  # index of the newest image placeholder among tokens[:upto]

    def sync(self, tokens: list[int]) -> None:
        """Index the n-grams ending at ``upto .. len(tokens) - 1`` (the newly usable ends)."""
        image_ids, maps = self.image_ids, self.maps
        for e in range(self.upto, len(tokens)):
            # tokens[e - 1] just became the last token of the n-grams ending at e.
            if e > 0 and tokens[e - 1] in image_ids:
                self.last_image = e - 1
            if tokens[e] in image_ids:
                continue  # nothing to copy after this n-gram
            for n in range(self.min_n, min(self.max_n, e - self.last_image - 1) + 1):
                maps[n][tuple(tokens[e - n : e])] = e
        self.upto = max(self.upto, len(tokens))

    def lookup(self, tokens: list[int]) -> tuple[int, int] | None:
        """``(n, end)`` of the longest usable n-gram size whose last n-gram occurred earlier."""
        size = len(tokens)
        for n in range(min(self.max_n, size), self.min_n - 1, -1):
            query = tokens[size - n :]
            if any(t in self.image_ids for t in query):
                continue  # never match across an image; a shorter suffix may still be clean
            end = self.maps[n].get(tuple(query))
            if end is not None:
                return n, end
        return None


def continuation(
    tokens: list[int], start: int, limit: int, image_ids: frozenset[int], stop_ids: frozenset[int]
) -> list[int]:
    """Up to ``limit`` tokens from ``tokens[start:]``: stop before an image placeholder (never
    drafted) and after a stop token (the engine ends the output there, so later drafts are waste)."""
    out: list[int] = []
    for tok in tokens[start : start + limit]:
        if tok in image_ids:
            break
        out.append(tok)
        if tok in stop_ids:
            break
    return out


class PromptLookup(Drafter):
    """Prompt lookup decoding: draft the continuation of the newest earlier n-gram match."""

    name = "pld"
    paper = 'Saxena 2023, "Prompt Lookup Decoding" (github.com/apoorvumang/prompt-lookup-decoding)'
    defaults = {"max_ngram": 4, "min_ngram": 1, "num_draft": 10}
    #: MMSpec matched only the last 4 tokens (no shorter n-grams) and drafted up to 10
    presets = {"mmspec": {"max_ngram": 4, "min_ngram": 4, "num_draft": 10}}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        lo, hi, k = self.args["min_ngram"], self.args["max_ngram"], self.args["num_draft"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi, k)):
            raise SpecArgError(f"pld: max_ngram, min_ngram and num_draft must be integers, got {self.args}")
        if not 1 <= lo <= hi:
            raise SpecArgError(f"pld: need 1 <= min_ngram <= max_ngram, got min_ngram={lo}, max_ngram={hi}")
        if k < 1:
            raise SpecArgError(f"pld: num_draft must be >= 1, got {k}")
        self._index: _NgramIndex | None = None

    def reset(self) -> None:
        self._index = None

    def begin(self, ctx: DecodeContext, prefill: Any) -> None:
        """Index the prompt and the first token (a fresh index per turn: no cross-sample state)."""
        self._index = _NgramIndex(self.args["min_ngram"], self.args["max_ngram"], ctx.image_token_ids)
        self._index.sync(ctx.tokens)

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        if self._index is not None:
            self._index.sync(ctx.tokens)  # only the tokens committed this round

    def propose(self, ctx: DecodeContext) -> DraftTree:
        index = self._index
        if index is None or index.upto > len(ctx.tokens):  # not begun, or another sequence
            self.begin(ctx, None)
            index = self._index
        assert index is not None
        index.sync(ctx.tokens)  # no-op after observe; keeps propose correct if called directly
        # Drafts past the length budget can never be kept: the bonus token fills the last slot.
        limit = min(self.args["num_draft"], ctx.remaining - 1)
        hit = index.lookup(ctx.tokens) if limit > 0 else None
        if hit is None:
            return DraftTree.root_only(ctx.last_token)
        draft = continuation(ctx.tokens, hit[1], limit, ctx.image_token_ids, ctx.stop_token_ids)
        return DraftTree.chain(ctx.last_token, draft)

    def max_tree_size(self) -> int:
        return 1 + self.args["num_draft"]
