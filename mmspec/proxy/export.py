"""Generator samples written as files: the ``proxy_test`` task data and draft-training prompts.

Layout (both): a JSON Lines file with one object per sample and an ``images/`` folder beside it::

    {"id": "proxy-1000000-7", "image": "proxy-1000000-7.png" | null, "turns": [user prompts],
     "answers": [generator reference answers], "category": scene kind, "topic": MMSpec topic,
     "answer_logp": [per turn], "checks": [quality family per turn], "facts": [...],
     "generator": "proxy-gen-1"}

``topic`` carries MMSpec's six topic names (``general vqa`` ... ``multi-turn conversation``) or
``text only``; ``category`` is the scene kind (``shapes``, ``caption``, ``sign``, ``chart``,
``none``). Images are PNG (lossless, deterministic encoding). Records are in sample order, so a
file is a pure function of (generator version, seeds, n, size).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmspec.proxy.generator import GENERATOR_VERSION, ProxySample, png_bytes, sample
from mmspec.proxy.splits import TEST_SEED

#: Version of the generated ``proxy_test`` data (names its cache folder).
DATASET_VERSION = f"{GENERATOR_VERSION}-t1"
#: Samples per category in ``proxy_test`` (six image categories; text-only samples are not a task).
TEST_PER_CATEGORY = 30
TEST_IMAGE_SIZE = 448


def write_samples(folder: str | os.PathLike, samples: Iterable[ProxySample], jsonl_name: str) -> Path:
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / jsonl_name
    with path.open("w", encoding="utf-8") as f:
        for s in samples:
            name = None
            if s.image is not None:
                name = f"{s.id}.png"
                (folder / "images" / name).write_bytes(png_bytes(s.image))
            f.write(json.dumps(s.record(name), ensure_ascii=False) + "\n")
    return path


def export_prompts(out_dir: str | os.PathLike, seed_range: Sequence[int], n: int, size: int = 448) -> Path:
    """``n`` samples for draft training: sample ``i`` is ``sample(seed_range[i % k], i // k)``, k = len(range).

    Writes ``<out_dir>/prompts.jsonl`` and ``<out_dir>/images/``; returns the JSONL path. Use seeds
    outside the target's build seed and the test stream (default in the CLI: the draft range).
    """
    seeds = list(seed_range)
    if not seeds:
        raise ValueError("seed_range is empty")
    if TEST_SEED in seeds:
        raise ValueError(f"seed {TEST_SEED} is the held-out test stream; pick another range")
    k = len(seeds)
    return write_samples(
        out_dir, (sample(seeds[i % k], i // k, size=size) for i in range(n)), "prompts.jsonl"
    )


def test_samples(per_category: int = TEST_PER_CATEGORY, size: int = TEST_IMAGE_SIZE) -> list[ProxySample]:
    """The held-out test set: the first ``per_category`` samples of each image category of the test stream."""
    from mmspec.proxy.quality import eval_samples

    return [s for s in eval_samples(TEST_SEED, per_category, size) if s.category != "text only"]


def materialize(folder: str | os.PathLike) -> None:
    """Generated-dataset hook of the task system: ``<folder>/mmspec.jsonl`` + ``images/``."""
    write_samples(folder, test_samples(), "mmspec.jsonl")
