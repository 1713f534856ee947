"""One benchmark sample: a record with its user turns and image files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from mmspec.tasks.errors import SampleError

#: The only formats PIL may decode here: every other plugin (EPS, which runs Ghostscript, among
#: them) is never tried, whatever a file's name says.
IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")


@dataclass
class Sample:
    """A validated record. Images are opened only by `load_images`, so a missing file fails that
    sample alone (the harness records it as failed) instead of the whole task."""

    id: str
    category: str
    subcategory: str | None
    turns: list[str]
    doc: dict[str, Any] = field(repr=False)
    image_paths: list[Path]
    task: str = ""

    def load_images(self) -> list[Image.Image]:
        """The images as RGB, fully read; `SampleError` names the task, the id and the path."""
        images = []
        for path in self.image_paths:
            where = f"task {self.task}: sample {self.id}"
            try:
                with Image.open(path, formats=IMAGE_FORMATS) as im:
                    images.append(im.convert("RGB"))
            except FileNotFoundError:
                raise SampleError(f"{where}: image file not found: {path}") from None
            except UnidentifiedImageError:
                raise SampleError(
                    f"{where}: cannot read image {path}: not an image of an allowed format "
                    f"({', '.join(IMAGE_FORMATS)}), or damaged"
                ) from None
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise SampleError(f"{where}: cannot read image {path}: {exc}") from exc
        return images
