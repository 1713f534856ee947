"""Disjoint generator seed ranges: target training, draft-training prompts, held-out tests.

A build seed N trains on stream N (0 <= N < 1,000,000). Draft-training exports default to streams
from 1,000,000; the held-out stream (``proxy_test`` tasks and the build's quality gates) is fixed,
so every build of every seed is evaluated on the same samples.
"""

from __future__ import annotations

TRAIN_SEEDS = range(0, 1_000_000)
DRAFT_SEEDS = range(1_000_000, 2_000_000)
TEST_SEED = 2_000_000


def check_build_seed(seed: int) -> int:
    if seed not in TRAIN_SEEDS:
        raise ValueError(
            f"build seed {seed} outside {TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1} (other ranges are "
            "reserved for draft-training prompts and held-out tests)"
        )
    return seed
