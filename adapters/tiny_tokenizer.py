"""Small tokenizers for the tiny offline models, trained locally and deterministically.

Both tokenizers are trained with the ``tokenizers`` library on :data:`CORPUS`, a built-in English text
(questions about images, descriptions, numbers, charts, multi-turn chat phrases and the chat-template role
words). Nothing outside this file is read, so every build gives the same vocabulary and merges.

- :func:`train_qwen2_tokenizer` mirrors Qwen2's tokenizer: NFC normaliser, Qwen2's pre-tokenising regex
  followed by byte-level mapping, byte-level BPE with all 256 byte symbols in the base alphabet, and the
  Qwen2-VL special tokens (``<|endoftext|>`` first, then ``<|im_start|>`` ...) appended after the merges.
- :func:`train_llama_tokenizer` mirrors the SentencePiece-converted Llama tokenizer used by llava-hf:
  ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, the 256 byte-fallback tokens ``<0x00>`` ... ``<0xFF>`` at 3..258,
  then the trained pieces; Metaspace (``▁``) pre-tokenisation with a prepended ``▁``; byte fallback; BOS added
  by the post-processor. LLaVA's ``<image>`` (and llava-1.5's ``<pad>``) are added by the caller.

The returned objects are the transformers classes that ``AutoTokenizer`` resolves for the real checkpoints
in transformers 5.x (``Qwen2Tokenizer`` and ``LlamaTokenizer``, both backed by ``tokenizers``), built from the
trained vocabulary and merges so that saving and loading back reproduces the same pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

#: Qwen2's pre-tokenisation regex (``transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

#: Special tokens of Qwen2-VL / Qwen2.5-VL, in the order of the real vocabulary (151643 ... 151656).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: The built-in training text. Varied English: image questions and answers, descriptions, counting,
#: numbers, charts and tables, OCR-like text, multi-turn follow-ups, and the role words of the chat templates.
CORPUS = """\
A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, \
detailed, and polite answers to the human's questions.
You are a helpful assistant.
USER: What is in the image? ASSISTANT: The image shows a red square and a yellow circle on a blue background.
USER: Describe the image in detail. ASSISTANT: In the picture there is a small house next to a tall tree. \
The sky is clear and the grass is green.
system user assistant USER: ASSISTANT: Human: Assistant:
What is shown in this image? What color is the car? How many people are in the photo?
Where is the cat sitting? Is there a dog in the picture? What is the man holding in his hand?
What time of day is it? What is written on the sign? Which object is on the left side of the table?
Can you read the text on the board? What does the chart show? What is the highest value in the graph?
Answer the question using a single word or phrase. Answer with the option's letter from the given choices.
Please describe the scene. Give a short caption for the image. Explain what is happening in the photo.
The photo shows two people walking along a beach at sunset. The water is calm and the sky is orange.
A brown dog is running across a green field with a ball in its mouth.
There are three apples, two bananas and one orange on the wooden table.
A woman is sitting on a bench in the park and reading a book.
The kitchen has white cabinets, a black stove and a large window above the sink.
A group of children are playing football on a sunny afternoon.
The street is busy with cars, buses and bicycles, and the buildings are very tall.
A cat is sleeping on a soft blue blanket near the window.
The train is arriving at the station while passengers wait on the platform.
An old man wearing a hat is fishing from a small boat on the lake.
The bar chart compares sales for four years: 2019, 2020, 2021 and 2022.
The line graph shows the temperature rising from 12 degrees in the morning to 27 degrees in the afternoon.
In the pie chart, the largest slice is 45 percent and the smallest slice is 5 percent.
The table lists the price of each item: bread costs 2.50 dollars, milk costs 1.20 dollars and cheese costs \
6.75 dollars.
The x-axis shows the month and the y-axis shows the number of visitors in thousands.
The value for March is 340, which is higher than February (310) and lower than April (415).
The total is 1,234 and the average is 30.5. The ratio is about 3 to 1.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 15 20 25 30 40 50 64 100 128 256 500 1000 2024.
First, second, third, fourth, fifth. One, two, three, four, five, six, seven, eight, nine, ten.
The sign says "STOP" in large white letters on a red background.
The label on the bottle reads "Fresh Orange Juice, 500 ml".
The screen displays the time 10:45 and the date 12/05/2023.
Question: What is the main subject of the image? Answer: A yellow bus parked in front of a school.
Question: How many birds are on the wire? Answer: There are five birds on the wire.
Question: Is the door open or closed? Answer: The door is open.
Question: What is the color of the umbrella? Answer: The umbrella is red with white stripes.
Yes. No. Maybe. I am not sure. It looks like a small kitchen. It seems to be early morning.
Thank you! Can you tell me more about the building in the background? Sure. The building in the background \
is a church with a tall tower and a large clock.
What else can you see? I can also see a bicycle leaning against the wall and a flower pot by the door.
Why do you think the people are smiling? They are probably happy because they are celebrating a birthday.
Compare the two images. The first image is brighter, while the second image has more people in it.
Summarize the figure in one sentence. The figure shows that the accuracy of the model improves as the size \
of the training data grows.
Which option is correct? (A) red (B) green (C) blue (D) yellow. The correct answer is (B).
The diagram has three parts: the input on the left, the model in the middle and the output on the right.
Look at the map. The river flows from the north to the south and the city is on the east bank.
The man in the white shirt is cooking pasta, and the woman next to him is cutting vegetables.
There is a laptop, a cup of coffee and a notebook on the desk. The lamp is turned on.
The mountain is covered with snow, and a narrow road goes up to a small village.
A plate with a sandwich, some fries and a glass of water is on the table.
The player in the blue jersey is about to kick the ball toward the goal.
The document is a receipt from a grocery store dated June 3, with a total of 42.18 dollars.
Step 1: find the bars for 2021. Step 2: read their values. Step 3: add them together. The sum is 96.
Let me think step by step. The image contains four rows and three columns, so there are 12 cells.
The weather in the image looks cloudy and cold, and the trees have no leaves.
Please answer in English. Please answer briefly. Please give a detailed description of the image.
Describe the colors, shapes, objects, people, animals, text and numbers that you see in the image.
"""


def _bpe_trainer(vocab_size: int, **kwargs) -> trainers.BpeTrainer:
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, **kwargs)


def train_qwen2_tokenizer(vocab_size: int = 640, corpus: Iterable[str] | None = None):
    """A ``Qwen2Tokenizer`` (byte-level BPE) with ``vocab_size`` trained entries plus the Qwen special tokens.

    The byte-level alphabet (256 symbols) is always present, so any text round-trips. Special tokens get the
    ids right after the trained vocabulary, in the order of :data:`QWEN_SPECIAL_TOKENS`. ``corpus`` (lines of
    text; default :data:`CORPUS`) is what the merges are learned from (the proxy targets pass generator text).
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = _bpe_trainer(vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = CORPUS.splitlines(keepends=True) if corpus is None else corpus
    tok.train_from_iterator(lines, trainer=trainer)
    vocab, merges = _vocab_and_merges(tok)
    # Constructed with eos = pad = <|endoftext|> so that it gets the first special id (as 151643 in Qwen2),
    # then the other special tokens in order; the chat models' eos is <|im_end|> (tokenizer_config.json).
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=131072,
        split_special_tokens=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def train_llama_tokenizer(vocab_size: int = 640, corpus: Iterable[str] | None = None):
    """A ``LlamaTokenizer`` (SentencePiece-style BPE with byte fallback), ``vocab_size`` entries in all.

    Ids: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, byte tokens ``<0x00>``..``<0xFF>`` 3..258, trained pieces after.
    ``corpus``: lines to learn the pieces from (default :data:`CORPUS`).
    """
    from transformers import LlamaTokenizer

    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    # Train on whitespace-split words (pieces never cross a word boundary, like SentencePiece); the saved
    # tokenizer uses LlamaTokenizer's own pipeline (Metaspace without split), which applies the same merges.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    n_trained = vocab_size - len(specials) - len(byte_tokens)
    trainer = _bpe_trainer(n_trained)
    tok.train_from_iterator(CORPUS.splitlines() if corpus is None else corpus, trainer=trainer)
    trained, merges = _vocab_and_merges(tok)
    vocab = {t: i for i, t in enumerate(specials + byte_tokens)}
    for token in sorted(trained, key=trained.__getitem__):
        vocab.setdefault(token, len(vocab))
    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        add_bos_token=True,
        add_eos_token=False,
        legacy=False,
        add_prefix_space=None,
        model_max_length=4096,
        padding_side="left",
    )
    return tokenizer


def _vocab_and_merges(tok: Tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    import json

    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges
