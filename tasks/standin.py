"""A stand-in MMSpec data root: the real question files with small generated images.

The MMSpec images are not redistributable here, but the tasks, the harness and the adapters only
need *an* image per record. Tests and smoke runs use this to exercise the real question files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw


def standin_image(key: str) -> Image.Image:
    """A deterministic image for `key`: 64-256 px per side (varied aspect), a few colored shapes."""
    h = hashlib.sha256(key.encode()).digest()
    width, height = 64 + h[0] % 25 * 8, 64 + h[1] % 25 * 8
    im = Image.new("RGB", (width, height), (h[2], h[3], h[4]))
    d = ImageDraw.Draw(im)
    for i in range(3):
        b = h[5 + 6 * i : 11 + 6 * i]
        x0, y0 = b[0] * width // 512, b[1] * height // 512
        x1, y1 = x0 + width // 4 + b[2] % (width // 2), y0 + height // 4 + b[2] % (height // 2)
        shape = d.ellipse if i % 2 else d.rectangle
        shape((x0, y0, x1, y1), fill=(b[3], b[4], b[5]))
    return im


def make_standin_dataset(
    src_dir: str | Path, dst_root: str | Path, splits: tuple[str, ...] = ("test", "testmini")
) -> Path:
    """Copy `<src_dir>/<split>/mmspec.jsonl` to `<dst_root>/<split>/` and write one JPEG per record.

    Returns `dst_root`, usable as `--dataset_root` / `MMSPEC_ROOT`. Existing images are kept, so
    calling it again on the same folder is cheap.
    """
    src_dir, dst_root = Path(src_dir), Path(dst_root)
    for split in splits:
        src = src_dir / split / "mmspec.jsonl"
        if not src.is_file():
            raise FileNotFoundError(f"MMSpec question file not found: {src}")
        images = dst_root / split / "images"
        images.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst_root / split / "mmspec.jsonl")
        for line in src.read_text(encoding="utf-8").splitlines():
            if line.strip():
                name = json.loads(line)["image"]
                if not (images / name).exists():
                    standin_image(name).save(images / name, format="JPEG", quality=80)
    return dst_root
