"""The types that pass between the engine, the adapters and the drafters (and nothing else).

Adapters produce :class:`PromptInputs` and :class:`ForwardOutput` and honour :class:`Capture`
requests; the engine hands drafters a :class:`DecodeContext` and a :class:`RoundResult` each round;
drafters see the target model only through :class:`~mmspec.target.TargetView`. Keeping the
contract in one small module is what lets a method be one Python file that never touches model
internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmspec.tree import DraftTree


@dataclass(frozen=True)
class Capture:
    """What a forward must hand back besides logits.

    ``hidden``: decoder-layer indices whose *input* hidden states are wanted (transformers'
    ``hidden_states`` numbering: 0 = embeddings, ``num_layers`` = final normed output).
    ``all_logits``: prefill only; logits for every prompt position instead of only the last.
    ``embeds``: prefill only; the merged input embeddings (text + projected image features).
    """

    hidden: tuple[int, ...] = ()
    all_logits: bool = False
    embeds: bool = False

    def merge(self, other: Capture) -> Capture:
        return Capture(
            tuple(sorted(set(self.hidden) | set(other.hidden))),
            self.all_logits or other.all_logits,
            self.embeds or other.embeds,
        )


@dataclass
class PromptInputs:
    """A rendered, tokenised prompt with its processor tensors (on the CPU until prefill)."""

    input_ids: torch.Tensor  # [1, L]
    model_inputs: dict[str, Any]
    text: str

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def ids(self) -> list[int]:
        return self.input_ids[0].tolist()


@dataclass
class ForwardOutput:
    """Logits ``[n, V]`` of the positions asked for, plus captured extras."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [n, H]
    inputs_embeds: torch.Tensor | None = None  # prefill: [L, H]
    argmax: torch.Tensor | None = None  # [n] when the step computed it on the device already


@dataclass
class DecodeContext:
    """The engine's view of one turn, shared with the drafter (read-only for drafters)."""

    tokens: list[int]  # prompt ids + generated ids; the last one is the root of the next tree
    prompt_len: int
    image_spans: list[tuple[int, int]]
    image_token_ids: frozenset[int]
    stop_token_ids: frozenset[int]
    temperature: float
    max_new_tokens: int
    prompt_embeds: Any = None  # [L, H] merged input embeddings when the drafter asked for them
    key: tuple[str, str, int] | None = None  # (task, sample id, turn index) when run by the harness
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def last_token(self) -> int:
        return self.tokens[-1]

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - len(self.tokens) + self.prompt_len


@dataclass
class RoundResult:
    """What the engine tells the drafter after verification."""

    tree: DraftTree
    path: list[int]  # accepted node indices, root first
    bonus: int  # the target's token after the last accepted node (the next root)
    verify: ForwardOutput  # logits/hidden for every tree node


@dataclass(frozen=True)
class RunInfo:
    """Where the harness writes, for drafters that read earlier runs (e.g. ``oracle``)."""

    output_path: Path
    model: str
