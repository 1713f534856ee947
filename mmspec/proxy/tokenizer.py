"""The proxy's tokenizer: the family's tokenizer kind, trained on generator text.

Reuses :mod:`mmspec.adapters.tiny_tokenizer` (Qwen2 byte-level BPE with the Qwen special tokens, or
the Llama SentencePiece-style BPE with byte fallback) with a corpus of rendered conversations, so the
closed lexicon costs about one token per word. LLaVA's ``<image>``/``<pad>`` are added by the model
builder, as for the tiny models.
"""

from __future__ import annotations

from collections.abc import Iterator

from mmspec.proxy.generator import SYSTEM_PROMPT, sample


def corpus_lines(seed: int, n: int) -> Iterator[str]:
    """Prompts and answers of ``n`` generator samples (text only: no rendering), plus chat role words."""
    yield SYSTEM_PROMPT + "\n"
    yield "system user assistant USER: ASSISTANT: You are a helpful assistant.\n"
    for i in range(n):
        s = sample(seed, i, size=None)
        for t in s.turns:
            yield t.prompt + "\n"
            yield t.answer + "\n"
            yield t.answer.upper() + "\n" if s.category == "multi-turn conversation" else ""


def train_tokenizer(family: str, vocab: int, seed: int, n_samples: int):
    from mmspec.adapters.tiny_tokenizer import train_llama_tokenizer, train_qwen2_tokenizer

    lines = [line for line in corpus_lines(seed, n_samples) if line]
    if family == "qwen25vl":
        return train_qwen2_tokenizer(vocab, corpus=lines)
    return train_llama_tokenizer(vocab, corpus=lines)
