"""The real chat templates of the model families that mmspec benchmarks (used by the tiny models).

Chat templates are part of the prompt format, so the tiny offline models must render exactly what the real
checkpoints render. The strings below are byte-for-byte copies of the published templates:

``QWEN25VL_CHAT_TEMPLATE``
    ``chat_template.json`` of ``Qwen/Qwen2.5-VL-7B-Instruct`` (1.05 kB; identical to the original
    ``Qwen/Qwen2-VL-7B-Instruct`` one). Copies checked: the ``chat_template.json`` of
    ``optimum-intel-internal-testing/tiny-random-qwen2.5-vl`` on the Hugging Face Hub, the Qwen2-VL entry of
    ``chat_template_fallback_map`` in openvinotoolkit/openvino.genai ``src/cpp/src/tokenizer.cpp``, and
    several ``qwen2_5_vl`` fine-tunes' ``chat_template.jinja``. When the conversation has no system message
    it inserts ``You are a helpful assistant.``; an image entry renders
    ``<|vision_start|><|image_pad|><|vision_end|>``.

``LLAVA15_CHAT_TEMPLATE``
    ``chat_template.json`` of ``llava-hf/llava-1.5-7b-hf`` (700 bytes, after the "Fix system message" and
    "incorporate `generation` tag" updates). Copies checked: ``FriendliAI/llava-1.5-7b-hf`` ("Duplicate from
    llava-hf/llava-1.5-7b-hf") and the ``add remaining llava-1.5-7b-hf files`` commit of
    ``JanEbigt/LLaVA-att-test`` on the Hub; the llava-1.5 / llava-v1.6-vicuna entry of openvino.genai's
    ``chat_template_fallback_map``; ``prepare_processor_dict`` of huggingface/transformers
    ``tests/models/llava_next/test_processing_llava_next.py``. The system text is emitted without a role
    prefix: ``{system} USER: <image>\\n{question} ASSISTANT:``; past answers end with a space, no ``</s>``.

``LLAVA16_VICUNA_CHAT_TEMPLATE``
    ``chat_template.json`` of ``llava-hf/llava-v1.6-vicuna-7b-hf`` (700 bytes). It is the same string as
    llava-1.5-hf's (openvino.genai lists both checkpoints under one entry, and transformers' LLaVA-NeXT
    processor test uses it).
"""

from __future__ import annotations

QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

LLAVA16_VICUNA_CHAT_TEMPLATE = LLAVA15_CHAT_TEMPLATE

__all__ = ["LLAVA15_CHAT_TEMPLATE", "LLAVA16_VICUNA_CHAT_TEMPLATE", "QWEN25VL_CHAT_TEMPLATE"]
