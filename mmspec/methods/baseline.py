"""Plain autoregressive decoding: the drafter that proposes nothing (one token per forward)."""

from __future__ import annotations

from mmspec.methods.base import Drafter


class Baseline(Drafter):
    """Greedy/sampled decoding through the same engine, cache and execution mode as every method."""

    name = "baseline"
    paper = "autoregressive decoding (reference for speedups and the lossless check)"
    defaults = {}
    presets = {"mmspec": {}}  # plain greedy decoding; MMSpec's repetition penalty is never applied
    plain_decoding = True
