"""Chat message builders: the `mmspec_chat` protocol in Hugging Face chat format.

Content is always a list of `{"type": ...}` items, which is what HF processors' chat templates
expect; the adapter turns `{"type": "image"}` into the model's image placeholder.
"""

from __future__ import annotations

from typing import Any


def mmspec_chat(
    system_prompt: str | None, user_texts: list[str], history: list[str], num_images: int
) -> list[dict[str, Any]]:
    """Messages for turn `len(user_texts) - 1` of a sample, following the MMSpec protocol.

    System message first (when set); then each user turn, with the image entries before the text
    in the first user message only; earlier turns are followed by their assistant answer
    (`history[k]`, the run's own answer), so the last message is the current user turn.
    """
    if len(history) < len(user_texts) - 1:
        raise ValueError(
            f"turn {len(user_texts) - 1} needs {len(user_texts) - 1} earlier answers, got {len(history)}"
        )
    messages: list[dict[str, Any]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    for k, text in enumerate(user_texts):
        images = [{"type": "image"} for _ in range(num_images if k == 0 else 0)]
        messages.append({"role": "user", "content": [*images, {"type": "text", "text": text}]})
        if k < len(user_texts) - 1:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": history[k]}]})
    return messages
