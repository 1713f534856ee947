"""Device-side batches: the pool lives on the device; a step only gathers, pads and preprocesses.

Length-bucketed, no packing (Qwen's 3-D rope positions and image blocks make packing awkward):
sequences are sorted by length plus a seeded jitter each epoch and cut into batches of at most
``batch_tokens`` padded tokens, whose order is shuffled. Images go through the family's own image
processor (torchvision backend) on the device, so pixels match what the processor gives at
inference. Qwen's 3-D positions are computed in closed form (one image block of a fixed grid per
sequence); a test proves them equal to the model's ``get_rope_index``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from mmspec.proxy.pool import Pool
from mmspec.proxy.sequences import ROLE_WEIGHTS


@dataclass
class DevicePool:
    tokens: torch.Tensor
    roles: torch.Tensor
    offsets: torch.Tensor
    lengths: torch.Tensor
    image_slot: torch.Tensor
    image_start: torch.Tensor
    images: torch.Tensor  # uint8 [S, 3, H, W]
    lengths_cpu: np.ndarray
    slots_cpu: np.ndarray

    @classmethod
    def from_pool(cls, pool: Pool, device: torch.device) -> DevicePool:
        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        images = torch.from_numpy(pool.images).to(device).permute(0, 3, 1, 2).contiguous()
        return cls(
            t(pool.tokens.astype(np.int64)),
            t(pool.roles),
            t(pool.offsets),
            t(pool.lengths),
            t(pool.image_slot),
            t(pool.image_start),
            images,
            pool.lengths,
            pool.image_slot,
        )


def epoch_batches(lengths: np.ndarray, batch_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of similar length (jittered sort), each within ``batch_tokens`` padded tokens."""
    order = np.argsort(lengths + rng.uniform(0, 24, size=len(lengths)), kind="stable")
    batches, cur, cur_max = [], [], 0
    for i in order:
        longest = max(cur_max, int(lengths[i]))
        if cur and longest * (len(cur) + 1) > batch_tokens:
            batches.append(np.array(cur))
            cur, longest = [], int(lengths[i])
        cur.append(int(i))
        cur_max = longest
    if cur:
        batches.append(np.array(cur))
    return [batches[k] for k in rng.permutation(len(batches))]


def qwen_positions(
    ids: torch.Tensor, image_start: torch.Tensor, n_image: int, grid_hw: tuple[int, int]
) -> torch.Tensor:
    """Qwen2.5-VL rope positions ``[3, B, L]`` for sequences with at most one image block of ``grid_hw``.

    Text before the image counts 0, 1, ...; the block takes ``start + (0, row, col)``; text after
    resumes at ``start + max(grid) + j`` (the model's ``get_rope_index`` for one image).
    """
    b, length = ids.shape
    j = torch.arange(length, device=ids.device).expand(b, length)
    start = image_start.view(b, 1)
    has = start >= 0
    gh, gw = grid_hw
    rel = j - start
    in_img = has & (rel >= 0) & (rel < n_image)
    after = has & (rel >= n_image)
    text = torch.where(after, j - n_image + max(gh, gw), j)
    t_pos = torch.where(in_img, start, text)
    h_pos = torch.where(in_img, start + rel.clamp(min=0) // gw, text)
    w_pos = torch.where(in_img, start + rel.clamp(min=0) % gw, text)
    return torch.stack([t_pos, h_pos, w_pos])


class Batcher:
    """Builds model inputs for index batches of a :class:`DevicePool`."""

    def __init__(self, dev: DevicePool, family: str, image_processor, pad_id: int, n_image: int, grid_hw):
        self.dev, self.family, self.ip = dev, family, image_processor
        self.pad_id, self.n_image, self.grid_hw = pad_id, n_image, grid_hw
        self.weights = torch.tensor(ROLE_WEIGHTS, device=dev.tokens.device)
        self._cpu_fallback = False

    def _process(self, pix: torch.Tensor) -> dict:
        """The processor's own code on the device; on the CPU (then moved) if that ever fails."""
        if not self._cpu_fallback:
            try:
                return self.ip(images=pix, return_tensors="pt", device=pix.device)
            except Exception as exc:  # keep training; the manifest notes the slower path
                self._cpu_fallback = True
                warnings.warn(
                    f"image processor failed on {pix.device} ({exc}); processing on the CPU", stacklevel=2
                )
        out = self.ip(images=pix.cpu(), return_tensors="pt")
        return {k: v.to(pix.device) for k, v in out.items()}

    def __call__(self, idx: np.ndarray) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """(model inputs, next-token targets ``[B, L-1]``, their loss weights ``[B, L-1]``)."""
        d = self.dev
        device = d.tokens.device
        length = int(d.lengths_cpu[idx].max())
        b = torch.from_numpy(idx).to(device)
        j = torch.arange(length, device=device)
        valid = j.view(1, -1) < d.lengths[b].view(-1, 1)
        flat = (d.offsets[b].view(-1, 1) + j.view(1, -1)).clamp(max=d.tokens.numel() - 1)
        ids = torch.where(valid, d.tokens[flat], torch.full_like(flat, self.pad_id))
        w = torch.where(valid, self.weights[d.roles[flat].long()], torch.zeros((), device=device))
        inputs: dict = {"input_ids": ids, "attention_mask": valid.long()}
        slots = d.slots_cpu[idx]
        with_image = slots >= 0
        if with_image.any():
            pix = d.images[torch.from_numpy(slots[with_image]).to(device)]
            processed = self._process(pix)
            inputs["pixel_values"] = processed["pixel_values"]
            if self.family == "qwen25vl":
                inputs["image_grid_thw"] = processed["image_grid_thw"].to(device)
        if self.family == "qwen25vl":
            inputs["position_ids"] = qwen_positions(ids, d.image_start[b], self.n_image, self.grid_hw)
        return inputs, ids[:, 1:], w[:, 1:]
