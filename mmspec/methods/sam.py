"""``sam``: SAM decoding, retrieval drafting with a suffix automaton over the turn's own tokens.

A suffix automaton (SAM) of the sequence (prompt ids, image placeholders included, then every
committed token) is extended online, one token at a time. Next to it we keep the *match*: the
longest suffix of the sequence that also occurs earlier, found by the standard matching walk
(follow the new token's transition, falling back along suffix links when there is none). Each round
drafts, as a chain, the tokens that followed the first earlier occurrence of that suffix. The
longest match is the most specific context available: unlike PLD's fixed n-gram sizes it grows
without bound on copied or repeated text, and amortised it costs O(1) per token.

Differences from MMSpec's version (protocol notes §3.12, §8 item 10), all on purpose:

* The match is computed *before* the new token enters the automaton (walk on the automaton of
  ``tokens[:-1]`` with ``tokens[-1]``, then extend). Feeding the token first and then looking it up
  (MMSpec) consumes it twice; looking it up after extension would match the current suffix with
  itself. Our match therefore always has an earlier occurrence to copy from.
* No repetition early-stop: the output is exactly the target's; the engine alone decides when to
  stop (stop token or ``max_new_tokens``).
* ``alpha`` (MMSpec's length rule: a match of L tokens drafts at most ``floor(alpha * L)``) is
  off by default (0): the draft is as long as the known continuation, capped by ``n_predicts``;
  ``min_match`` gates drafting on very short matches instead. ``preset=mmspec`` turns it on.

The paper also retrieves from a static corpus automaton; there is none here (MMSpec's was a stub).
"""

from __future__ import annotations

import math
from typing import Any

from mmspec.methods.base import DecodeContext, Drafter, RoundResult, SpecArgError
from mmspec.methods.pld import continuation
from mmspec.tree import DraftTree


class SuffixAutomatonIndex:
    """Online suffix automaton of a token sequence plus the current longest earlier match.

    State ``s`` stands for a set of substrings sharing one set of end positions; ``length[s]`` is
    the longest of them, ``link[s]`` the state of its longest suffix in another class, ``first[s]``
    the smallest (first) exclusive end position of its strings, set when the state is created and
    never changed afterwards (a clone copies it from the state it splits, whose first end comes
    before the new one).

    ``match_state`` / ``match_len``: the longest suffix of the sequence that also ends at an earlier
    position is the length-``match_len`` suffix of the longest string of ``match_state``, so it ends
    at ``first[match_state]`` (< len(tokens)). Extending the automaton can clone ``match_state``;
    :meth:`append` then moves to the clone so that ``length[link[s]] < match_len <= length[s]``
    keeps holding (a later fallback along the suffix link would otherwise overstate the length).
    """

    def __init__(self) -> None:
        self.next: list[dict[int, int]] = [{}]
        self.link: list[int] = [-1]
        self.length: list[int] = [0]
        self.first: list[int] = [0]
        self.last = 0  # state of the whole sequence
        self.size = 0  # tokens added
        self.match_state = 0
        self.match_len = 0

    def append(self, token: int) -> None:
        """Advance the match with ``token`` (on the old automaton), then add ``token``."""
        nxt, link, length = self.next, self.link, self.length
        # 1) matching walk: longest suffix of tokens + [token] occurring in tokens (an earlier end)
        s, m = self.match_state, self.match_len
        while s and token not in nxt[s]:
            s = link[s]
            m = length[s]
        if token in nxt[s]:
            s, m = nxt[s][token], m + 1
        else:
            s, m = 0, 0
        # 2) standard online extension (Blumer et al. 1985)
        self.size += 1
        cur = len(length)
        nxt.append({})
        link.append(0)
        length.append(length[self.last] + 1)
        self.first.append(self.size)
        p = self.last
        while p != -1 and token not in nxt[p]:
            nxt[p][token] = cur
            p = link[p]
        if p != -1:
            q = nxt[p][token]
            if length[p] + 1 == length[q]:
                link[cur] = q
            else:
                clone = len(length)
                nxt.append(dict(nxt[q]))
                link.append(link[q])
                length.append(length[p] + 1)
                self.first.append(self.first[q])
                while p != -1 and nxt[p].get(token) == q:
                    nxt[p][token] = clone
                    p = link[p]
                link[q] = clone
                link[cur] = clone
        self.last = cur
        # 3) keep the match invariant if step 2 split the match state (at most one step up)
        while s and length[link[s]] >= m:
            s = link[s]
        self.match_state, self.match_len = s, m

    def extend(self, tokens: list[int]) -> None:
        for tok in tokens:
            self.append(tok)

    def match(self) -> tuple[int, int]:
        """``(length, end)`` of the longest earlier-occurring suffix; end is exclusive, ``end < size``."""
        return self.match_len, self.first[self.match_state]


class SuffixAutomaton(Drafter):
    """SAM decoding: draft what followed the first earlier occurrence of the longest matching suffix."""

    name = "sam"
    paper = 'Hu et al. 2024, "SAM Decoding: Speculative Decoding via Suffix Automaton" (arXiv 2411.10666)'
    #: n_predicts: most draft tokens per round (the chain's length).
    #: min_match: shortest suffix match (in tokens) worth drafting from; shorter matches give a
    #: root-only round. 1 drafts on any match; raise it to save verification work on noisy matches.
    #: alpha: when > 0, a match of L tokens drafts at most floor(alpha * L) tokens (MMSpec's rule:
    #: short matches are weak evidence); 0 drafts n_predicts whatever the match length.
    defaults = {"n_predicts": 40, "min_match": 1, "alpha": 0.0}
    #: MMSpec: min(40, 1 + floor(4 L)) - 1 drafts per round
    presets = {"mmspec": {"n_predicts": 39, "min_match": 1, "alpha": 4.0}}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        k, lo = self.args["n_predicts"], self.args["min_match"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, lo)):
            raise SpecArgError(f"sam: n_predicts and min_match must be integers, got {self.args}")
        if k < 1:
            raise SpecArgError(f"sam: n_predicts must be >= 1, got {k}")
        if lo < 1:
            raise SpecArgError(f"sam: min_match must be >= 1, got {lo}")
        if not float(self.args["alpha"]) >= 0:
            raise SpecArgError(f"sam: alpha must be >= 0, got {self.args['alpha']}")
        self._sam: SuffixAutomatonIndex | None = None

    def reset(self) -> None:
        self._sam = None

    def begin(self, ctx: DecodeContext, prefill: Any) -> None:
        """Build the automaton of the prompt and the first token (fresh per turn)."""
        self._sam = SuffixAutomatonIndex()
        self._sam.extend(ctx.tokens)

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        if self._sam is not None:
            self._sam.extend(ctx.tokens[self._sam.size :])  # only the tokens committed this round

    def propose(self, ctx: DecodeContext) -> DraftTree:
        sam = self._sam
        if sam is None or sam.size > len(ctx.tokens):  # not begun, or another sequence
            self.begin(ctx, None)
            sam = self._sam
        assert sam is not None
        sam.extend(ctx.tokens[sam.size :])  # no-op after observe
        length, end = sam.match()
        # Drafts past the length budget can never be kept: the bonus token fills the last slot.
        limit = min(self.args["n_predicts"], ctx.remaining - 1)
        if self.args["alpha"] > 0:
            limit = min(limit, math.floor(self.args["alpha"] * length))
        if length < self.args["min_match"] or limit <= 0:
            return DraftTree.root_only(ctx.last_token)
        draft = continuation(ctx.tokens, end, limit, ctx.image_token_ids, ctx.stop_token_ids)
        return DraftTree.chain(ctx.last_token, draft)

    def max_tree_size(self) -> int:
        return 1 + self.args["n_predicts"]
