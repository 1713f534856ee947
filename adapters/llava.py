"""LLaVA-1.5 and LLaVA-1.6 (NeXT): a Llama language model behind a CLIP vision tower.

Both families keep plain 1-D positions; the model's own forward does the vision work
(LLaVA-1.6's any-resolution tiles and newline features included), so the base adapter's
behaviour is all they need. They differ only in the transformers class they load as.
"""

from __future__ import annotations

from mmspec.adapters.base import VLMAdapter


class Llava15Adapter(VLMAdapter):
    """llava-hf/llava-1.5-7b-hf and checkpoints of the same class."""

    family = "llava15"
    architectures = ("LlavaForConditionalGeneration",)


class Llava16Adapter(VLMAdapter):
    """llava-hf/llava-v1.6-vicuna-7b-hf (LLaVA-NeXT) and checkpoints of the same class."""

    family = "llava16"
    architectures = ("LlavaNextForConditionalGeneration",)
