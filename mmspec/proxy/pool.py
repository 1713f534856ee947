"""The training pool: scenes rendered once, conversations tokenised once, all as flat arrays.

``n_scenes`` scenes of the build's seed, ``per_scene`` conversations each (variants of one scene
share its image, as real VQA sets reuse images). Worker processes (spawned, so a CUDA context in
the parent is never forked) render and tokenise; results are collected in scene order, so the pool
is the same for any number of workers. The trainer moves the arrays to the device once.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from mmspec.proxy.generator import sample, scene_kind
from mmspec.proxy.sequences import ConversationEncoder, Encoded


@dataclass
class Pool:
    tokens: np.ndarray  # int32 [T] all sequences back to back
    roles: np.ndarray  # uint8 [T]
    offsets: np.ndarray  # int64 [N]
    lengths: np.ndarray  # int64 [N]
    image_slot: np.ndarray  # int64 [N], -1 = text only
    image_start: np.ndarray  # int64 [N], -1 = text only
    images: np.ndarray  # uint8 [S, H, W, 3]
    entropy: float  # sum over conversations of -log p(answer phrasing)
    categories: list[str]  # per sequence

    @property
    def n(self) -> int:
        return len(self.lengths)


_STATE: dict = {}


def _init_worker(enc_args) -> None:
    _STATE["enc"] = ConversationEncoder(*enc_args)


def _work(job: tuple[int, int, int, bool, int]) -> tuple[int, bytes | None, list[tuple[Encoded, str]], float]:
    """Render scene ``index`` (raw RGB bytes) and encode its ``per_scene`` conversations."""
    seed, index, per_scene, has_image, size = job
    enc: ConversationEncoder = _STATE["enc"]
    out, ent, pixels = [], 0.0, None
    for v in range(per_scene):
        s = sample(seed, index, size=size if (v == 0 and has_image) else None, variant=v)
        if v == 0 and s.image is not None:
            pixels = s.image.tobytes()
        ent -= s.answer_logp
        out += [(e, s.category) for e in enc.encode(s.prompts, s.answers, has_image)]
    return index, pixels, out, ent


def build_pool(
    enc_args: tuple, seed: int, n_scenes: int, per_scene: int, size: int, workers: int = 0
) -> Pool:
    """Render and encode the pool; ``workers`` > 0 uses that many spawned processes (same result).

    Pixels come back through the pool's pipes (about 1-3 GB/s) rather than shared memory, whose
    size is often capped in containers.
    """
    kinds = [scene_kind(seed, i)[1] for i in range(n_scenes)]
    slots, n_img = [], 0
    for k in kinds:
        slots.append(n_img if k != "none" else -1)
        n_img += k != "none"
    images = np.zeros((max(n_img, 1), size, size, 3), dtype=np.uint8)
    jobs = [(seed, i, per_scene, slots[i] >= 0, size) for i in range(n_scenes)]
    results: list[tuple[int, list[tuple[Encoded, str]], float]] = []

    def collect(it) -> None:
        for index, pixels, out, ent in it:
            if pixels is not None:
                images[slots[index]] = np.frombuffer(pixels, dtype=np.uint8).reshape(size, size, 3)
            results.append((index, out, ent))

    if workers > 0:
        ctx = mp.get_context("spawn")  # never fork a process that may hold a CUDA context
        with ctx.Pool(workers, initializer=_init_worker, initargs=(enc_args,)) as p:
            collect(p.imap(_work, jobs, chunksize=max(1, n_scenes // (workers * 16))))
    else:
        _init_worker(enc_args)
        collect(map(_work, jobs))
    seqs = [(e, cat, slots[i]) for i, out, _ in results for e, cat in out]
    lengths = np.array([len(e.ids) for e, _, _ in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return Pool(
        tokens=np.concatenate([e.ids for e, _, _ in seqs]),
        roles=np.concatenate([e.roles for e, _, _ in seqs]),
        offsets=offsets,
        lengths=lengths,
        image_slot=np.array([slot if e.image_start >= 0 else -1 for e, _, slot in seqs], dtype=np.int64),
        image_start=np.array([e.image_start for e, _, _ in seqs], dtype=np.int64),
        images=images,
        entropy=float(sum(r[2] for r in results)),
        categories=[cat for _, cat, _ in seqs],
    )
