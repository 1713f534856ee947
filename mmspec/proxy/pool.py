"""The training pool: scenes rendered once, conversations tokenised once, all as flat arrays.

``n_scenes`` scenes of the build's seed, ``per_scene`` conversations each (variants of one scene
share its image, as real VQA sets reuse images). Worker processes (spawned, so a CUDA context in
the parent is never forked) render into one shared-memory ``uint8`` array and return token arrays;
the result is the same for any number of workers. The trainer moves the arrays to the device once.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from multiprocessing import shared_memory

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


def _encoder(tokenizer, template, family, image_token, n_image):
    return ConversationEncoder(tokenizer, template, family, image_token, n_image)


_STATE: dict = {}


def _init_worker(enc_args, shm_name, shape) -> None:
    _STATE["enc"] = _encoder(*enc_args)
    if shm_name:
        shm = shared_memory.SharedMemory(name=shm_name)
        _STATE["shm"] = shm
        _STATE["images"] = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf)


def _work(job: tuple[int, int, int, int, int]) -> tuple[int, list[tuple[Encoded, str]], float]:
    """Render scene ``index`` into its slot and encode its conversations."""
    seed, index, per_scene, slot, size = job
    enc: ConversationEncoder = _STATE["enc"]
    out, ent = [], 0.0
    for v in range(per_scene):
        s = sample(seed, index, size=size if (v == 0 and slot >= 0) else None, variant=v)
        if v == 0 and s.image is not None:
            _STATE["images"][slot] = np.asarray(s.image, dtype=np.uint8)
        ent -= s.answer_logp
        out += [(e, s.category) for e in enc.encode(s.prompts, s.answers, slot >= 0)]
    return index, out, ent


def build_pool(
    enc_args: tuple, seed: int, n_scenes: int, per_scene: int, size: int, workers: int = 0
) -> Pool:
    """Render and encode the pool; ``workers`` > 0 uses that many spawned processes."""
    kinds = [scene_kind(seed, i)[1] for i in range(n_scenes)]
    slots, n_img = [], 0
    for k in kinds:
        slots.append(n_img if k != "none" else -1)
        n_img += k != "none"
    shape = (max(n_img, 1), size, size, 3)
    shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)))
    try:
        jobs = [(seed, i, per_scene, slots[i], size) for i in range(n_scenes)]
        if workers > 0:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(enc_args, shm.name, shape)) as p:
                results = p.map(_work, jobs, chunksize=max(1, n_scenes // (workers * 8)))
        else:
            _init_worker(enc_args, shm.name, shape)
            try:
                results = [_work(j) for j in jobs]
            finally:
                _STATE.pop("images", None)
                _STATE.pop("shm").close()
        images = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf).copy()
    finally:
        shm.close()
        shm.unlink()
    results.sort(key=lambda r: r[0])
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
