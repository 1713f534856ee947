"""Small training-data files for the ``mmspec-train`` tests, with generated PNG images."""

from __future__ import annotations

import json
from pathlib import Path

from _models import make_image

#: MMSpec-like prompts: multi-turn with an image (and answers that regen must replace), one-turn
#: with an image, text only
PROMPTS = [
    {"id": "c1", "image": "img0.png", "turns": ["What is in the image?", "And which colours?"],
     "answers": ["ORIGINAL ANSWER ONE", "ORIGINAL ANSWER TWO"], "category": "general"},
    {"id": "c2", "image": "img1.png", "turns": ["Describe the picture."], "category": "chart"},
    {"id": "c3", "image": None, "turns": ["Say hello."], "category": "general"},
]  # fmt: skip


def write_images(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_image(seed=i).save(folder / f"img{i}.png")


def write_prompts(folder: Path, records: list[dict] | None = None, name: str = "prompts.jsonl") -> Path:
    """``folder/name`` (JSON Lines) with its images in ``folder/images/``."""
    write_images(folder / "images")
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in (records or PROMPTS)), encoding="utf-8")
    return path


def write_json(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path
