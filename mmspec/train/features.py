"""What the target computes over one training sequence, through the adapter's own capture path.

``target_pass`` is the adapter's ``prefill`` of the whole sequence (prompt + answer) with the
drafter's own ``capture_prefill`` request, plus every position's logits and final hidden state —
the very tensors the drafter gets at inference, for every position at once. The context it builds
is the one ``FeatureDrafter.begin`` would see if the whole sequence were a prompt: every pair
(token ``t+1``, feature ``t``) for ``t < N - 1``, so ``FeatureDrafter.pair_inputs`` gives the
training rows with exactly the inference rules (image rows, compressed spans, positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmspec.contract import Capture, DecodeContext
from mmspec.train.examples import TurnExample


@dataclass
class TargetPass:
    """The target's view of one sequence (no gradients)."""

    example: TurnExample
    ctx: DecodeContext  # tokens = the sequence, prompt_len = N - 1: every pair
    hidden: dict[int, torch.Tensor]  # layer -> [N, H]
    logits: torch.Tensor  # [N, V]
    embeds: torch.Tensor  # [N, H] merged input embeddings
    final_layer: int

    @property
    def length(self) -> int:
        return len(self.ctx.tokens)

    @property
    def ids(self) -> torch.Tensor:
        return torch.tensor(self.ctx.tokens, device=self.logits.device)

    def rows(self, layers: dict[int, torch.Tensor] | None = None) -> dict[int, torch.Tensor]:
        """Hidden states of the pair rows (positions ``0 .. N - 2``)."""
        return {k: v[: self.length - 1] for k, v in (layers or self.hidden).items()}

    def supervised(self, predicted: torch.Tensor) -> torch.Tensor:
        """Which predicted token positions are answer tokens (EOS included): the loss mask."""
        return (predicted >= self.example.prompt_len) & (predicted < self.length)


@torch.no_grad()
def target_pass(adapter, capture: Capture, example: TurnExample) -> TargetPass:
    """Prefill ``example``'s sequence with ``capture`` plus all logits, the final state and embeddings."""
    final = adapter.num_layers
    out = adapter.prefill(
        example.prompt, capture.merge(Capture(hidden=(final,), all_logits=True, embeds=True))
    )
    ids = example.prompt.ids
    n = len(ids)
    ctx = DecodeContext(
        tokens=ids, prompt_len=n - 1, image_spans=adapter.image_spans(ids), image_token_ids=adapter.image_token_ids,
        stop_token_ids=adapter.stop_token_ids, temperature=0.0, max_new_tokens=1, prompt_embeds=out.inputs_embeds[: n - 1],
    )  # fmt: skip
    return TargetPass(example, ctx, out.hidden, out.logits, out.inputs_embeds, final)
