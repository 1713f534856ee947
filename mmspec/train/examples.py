"""From a conversation to the exact token sequences the target sees, turn by turn.

Turn ``k`` is what the harness prefills for that turn — the system prompt, the image before the
text of the first user message, earlier turns with their answers as text (the chat template
renders them) — followed by the answer's exact token ids. Training on these sequences and decoding
through the engine therefore put every token, image and position in the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from mmspec.contract import PromptInputs
from mmspec.tasks.messages import mmspec_chat
from mmspec.train.data import Conversation, DataError

#: the system prompt of MMSpec's protocol (and of ViSpec's stage-2 data)
VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass
class TurnExample:
    """One training sequence: a turn's prompt followed by its answer."""

    conversation: str
    turn: int
    prompt: PromptInputs  # the whole sequence (prompt + answer), processor tensors extended
    prompt_len: int  # tokens before the answer
    answer_ids: list[int]

    @property
    def length(self) -> int:
        return self.prompt.length


def load_images(conv: Conversation) -> list[Image.Image]:
    images = []
    for path in conv.images:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise DataError(f"conversation {conv.id}: cannot read image {path} ({exc})") from exc
    return images


def turn_prompt(
    adapter: Any,
    conv: Conversation,
    turn: int,
    history: list[str],
    images: list[Image.Image],
    system: str | None,
) -> PromptInputs:
    """The prompt of ``turn`` as the harness builds it (earlier answers as text in ``history``)."""
    messages = mmspec_chat(system, conv.turns[: turn + 1], history[:turn], len(images))
    return adapter.encode(messages, images)


def with_answer(prompt: PromptInputs, answer_ids: list[int]) -> PromptInputs:
    """``prompt`` followed by ``answer_ids``; per-token processor tensors (e.g. Qwen's
    ``mm_token_type_ids``) are extended with text entries."""
    old = prompt.length
    ids = torch.cat([prompt.input_ids, torch.tensor([answer_ids], dtype=prompt.input_ids.dtype)], dim=1)
    extra = {}
    for key, value in prompt.model_inputs.items():
        if torch.is_tensor(value) and value.dim() == 2 and value.shape == (1, old):
            value = torch.cat([value, torch.zeros(1, len(answer_ids), dtype=value.dtype)], dim=1)
        extra[key] = value
    return PromptInputs(ids, extra, prompt.text)


def conversation_examples(
    adapter: Any, conv: Conversation, system: str | None = VICUNA_SYSTEM, max_length: int | None = None
) -> list[TurnExample]:
    """Every answered turn of ``conv`` as a training sequence. Exact ``answer_ids`` are used when
    the data has them (regenerated answers), else the answer text is tokenised."""
    if conv.answers is None:
        raise DataError(f"conversation {conv.id} has no answers: run `mmspec-train regen` on it first")
    images = load_images(conv)
    out = []
    for k, answer in enumerate(conv.answers):
        prompt = turn_prompt(adapter, conv, k, conv.answers, images, system)
        if conv.answer_ids is not None:
            ids = list(conv.answer_ids[k])
        else:
            ids = adapter.tokenizer(answer, add_special_tokens=False)["input_ids"]
            eos = adapter.tokenizer.eos_token_id
            ids = [*ids, eos] if eos is not None else ids
        if not ids:
            continue
        if max_length is not None and prompt.length + len(ids) > max_length:
            ids = ids[: max(max_length - prompt.length, 0)]
            if not ids:
                continue
        out.append(TurnExample(conv.id, k, with_answer(prompt, ids), prompt.length, ids))
    return out
