"""Conversations -> training token sequences with a role per token (what the loss weighs).

A sequence is exactly what the harness feeds the model: the family's chat template rendered over
the MMSpec protocol messages (:func:`mmspec.tasks.messages.mmspec_chat`, Vicuna system prompt, image
before the text of the first user turn), the image placeholder expanded to the model's image-token
count as the processor does, then the reference answer and the stop token. Later turns extend the
same sequence when the template renders the earlier turns as a prefix (Qwen: ``...<|im_end|>``);
otherwise (LLaVA's template drops ``</s>`` from past answers) each turn starts its own sequence, so
training never shows the model a context it will not see at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmspec.proxy.generator import SYSTEM_PROMPT
from mmspec.tasks.messages import mmspec_chat

#: Token roles and their loss weights: system/template 0, user 0.1, assistant (answer + EOS) 1, image 0.
SYSTEM, USER, ASSISTANT, IMAGE = 0, 1, 2, 3
ROLE_WEIGHTS = (0.0, 0.1, 1.0, 0.0)


@dataclass
class Encoded:
    ids: np.ndarray  # int32 [L]
    roles: np.ndarray  # uint8 [L]
    image_start: int  # index of the first image token, -1 when none


class ConversationEncoder:
    """Renders and tokenises conversations for one family's tokenizer and chat template."""

    def __init__(
        self, tokenizer, chat_template: str, family: str, image_token: str, n_image_tokens: int
    ) -> None:
        self.tok = tokenizer
        self.template = chat_template
        self.family = family
        self.image_id = tokenizer.convert_tokens_to_ids(image_token)
        self.n_image = n_image_tokens
        self.eos_id = (
            tokenizer.convert_tokens_to_ids("<|im_end|>") if family == "qwen25vl" else tokenizer.eos_token_id
        )
        a = self._ids(self._render(["alpha"], [], 0, True))
        b = self._ids(self._render(["beta"], [], 0, True))
        self.system_len = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    def _render(self, prompts, answers, n_images, generation_prompt: bool) -> str:
        msgs = mmspec_chat(SYSTEM_PROMPT, list(prompts), list(answers), n_images)
        if not generation_prompt:
            msgs.append(
                {"role": "assistant", "content": [{"type": "text", "text": answers[len(prompts) - 1]}]}
            )
        return self.tok.apply_chat_template(
            msgs, chat_template=self.template, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _ids(self, text: str) -> list[int]:
        return (
            self.tok(text, add_special_tokens=True).input_ids
            if self.family != "qwen25vl"
            else self.tok(text).input_ids
        )

    def answer_ids(self, prompt_ids: list[int], prompts, answers, n_images: int) -> list[int]:
        """The tokens a perfect model generates after ``prompt_ids``: the answer, then the stop token."""
        full = self._ids(self._render(prompts, answers, n_images, False))
        if full[: len(prompt_ids)] != prompt_ids:
            raise ValueError("chat template does not extend the prompt with the answer")
        rest = full[len(prompt_ids) :]
        if self.eos_id in rest:
            rest = rest[: rest.index(self.eos_id)]
        while rest and not self.tok.decode(rest[-1:]).strip():  # template whitespace after the answer
            rest = rest[:-1]
        return [*rest, self.eos_id]

    def encode(self, prompts: list[str], answers: list[str], has_image: bool) -> list[Encoded]:
        """One or more sequences covering every turn's answer once (as role ASSISTANT)."""
        n_img = 1 if has_image else 0
        out: list[Encoded] = []
        ids: list[int] = []
        roles: list[int] = []
        for k in range(len(prompts)):
            prompt = self._ids(self._render(prompts[: k + 1], answers[:k], n_img, True))
            if ids and prompt[: len(ids)] != ids:
                out.append(self._finish(ids, roles))
                ids, roles = [], []
            new = prompt[len(ids) :]
            first = not ids
            roles += [USER] * len(new)
            if first:
                roles[: self.system_len] = [SYSTEM] * min(self.system_len, len(roles))
            ids = list(prompt)
            ans = self.answer_ids(prompt, prompts[: k + 1], answers[: k + 1], n_img)
            ids += ans
            roles += [ASSISTANT] * len(ans)
        out.append(self._finish(ids, roles))
        return out

    def _finish(self, ids: list[int], roles: list[int]) -> Encoded:
        """Expand the single image placeholder to ``n_image`` tokens (as the processor does)."""
        if self.image_id in ids:
            i = ids.index(self.image_id)
            ids = ids[:i] + [self.image_id] * self.n_image + ids[i + 1 :]
            roles = roles[:i] + [IMAGE] * self.n_image + roles[i + 1 :]
            start = i
        else:
            start = -1
        return Encoded(np.asarray(ids, dtype=np.int32), np.asarray(roles, dtype=np.uint8), start)
