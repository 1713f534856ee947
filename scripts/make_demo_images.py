"""Write the built-in `mmspec_demo` task data: `tasks/demo/mmspec.jsonl` and `tasks/demo/images/*.jpg`.

The images are drawn with PIL (a street scene, a shop sign, a beach, a bar chart, a triangle, a
table, a notice) so the demo runs without downloads; the output is committed, so rerun this only
after changing it:  python scripts/make_demo_images.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEMO_DIR = Path(__file__).resolve().parents[1] / "tasks" / "demo"
SKY, GRASS, SAND, SEA = (150, 200, 240), (90, 160, 80), (230, 210, 160), (40, 110, 180)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def centered(d: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill: tuple) -> None:
    d.text(xy, text, font=font(size), fill=fill, anchor="mm")


def street() -> Image.Image:
    im = Image.new("RGB", (448, 336), SKY)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 240, 448, 336), fill=GRASS)
    d.ellipse((370, 20, 420, 70), fill=(250, 220, 60))
    d.rectangle((60, 140, 220, 250), fill=(220, 190, 150))
    d.polygon([(50, 140), (140, 80), (230, 140)], fill=(150, 60, 50))
    d.rectangle((125, 190, 155, 250), fill=(110, 70, 40))
    for x in (80, 175):
        d.rectangle((x, 160, x + 30, 185), fill=(200, 230, 250), outline=(80, 80, 80))
    d.rectangle((250, 215, 370, 250), fill=(200, 30, 30))
    d.polygon([(270, 215), (290, 192), (335, 192), (355, 215)], fill=(200, 30, 30))
    for x in (275, 345):
        d.ellipse((x - 13, 238, x + 13, 264), fill=(30, 30, 30))
    d.rectangle((398, 170, 410, 250), fill=(110, 75, 45))
    d.ellipse((370, 110, 438, 185), fill=(40, 120, 50))
    return im


def bakery_sign() -> Image.Image:
    im = Image.new("RGB", (384, 288), (170, 90, 70))
    d = ImageDraw.Draw(im)
    for y in range(0, 288, 24):
        for x in range((y // 24) % 2 * 24, 384, 48):
            d.rectangle((x, y, x + 44, y + 20), fill=(185, 105, 80))
    d.rectangle((32, 50, 352, 200), fill=(250, 245, 225), outline=(60, 40, 30), width=6)
    centered(d, (192, 100), "SUNRISE BAKERY", 34, (120, 40, 20))
    centered(d, (192, 155), "OPEN 7 AM - 6 PM", 26, (30, 30, 30))
    d.rectangle((150, 230, 234, 288), fill=(90, 60, 40))
    return im


def beach() -> Image.Image:
    im = Image.new("RGB", (448, 336), SKY)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 150, 448, 230), fill=SEA)
    d.rectangle((0, 230, 448, 336), fill=SAND)
    for x, y in ((60, 50), (250, 35)):
        d.ellipse((x, y, x + 90, y + 35), fill=(255, 255, 255))
    d.polygon([(300, 140), (340, 140), (320, 100)], fill=(250, 250, 250))
    d.rectangle((295, 140, 350, 150), fill=(120, 80, 40))
    d.line((120, 320, 120, 230), fill=(90, 90, 90), width=4)
    d.pieslice((50, 200, 190, 270), 180, 360, fill=(230, 60, 60))
    for x, color in ((210, (250, 150, 40)), (250, (60, 160, 200))):
        d.ellipse((x, 250, x + 20, 270), fill=(240, 200, 170))
        d.rectangle((x + 2, 270, x + 18, 305), fill=color)
    d.rectangle((340, 285, 420, 300), fill=(250, 230, 60))
    return im


def bar_chart() -> Image.Image:
    months, values = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"], [12, 18, 9, 22, 15, 27]
    im = Image.new("RGB", (448, 336), (255, 255, 255))
    d = ImageDraw.Draw(im)
    centered(d, (224, 22), "Monthly sales (units)", 20, (20, 20, 20))
    x0, y0, top = 50, 290, 50
    d.line((x0, top, x0, y0), fill=(0, 0, 0), width=2)
    d.line((x0, y0, 430, y0), fill=(0, 0, 0), width=2)
    scale = (y0 - top - 20) / 30
    for tick in range(0, 31, 10):
        y = y0 - tick * scale
        d.line((x0 - 5, y, x0, y), fill=(0, 0, 0))
        d.text((x0 - 10, y), str(tick), font=font(12), fill=(0, 0, 0), anchor="rm")
    for i, (m, v) in enumerate(zip(months, values)):
        x = x0 + 15 + i * 62
        d.rectangle((x, y0 - v * scale, x + 40, y0), fill=(70, 110, 190))
        centered(d, (x + 20, y0 - v * scale - 10), str(v), 13, (20, 20, 20))
        centered(d, (x + 20, y0 + 14), m, 14, (20, 20, 20))
    return im


def triangle() -> Image.Image:
    im = Image.new("RGB", (336, 336), (255, 255, 255))
    d = ImageDraw.Draw(im)
    a, b, c = (60, 280), (60, 80), (300, 280)
    d.polygon([a, b, c], outline=(0, 0, 0), width=3)
    d.rectangle((60, 260, 80, 280), outline=(0, 0, 0), width=2)
    centered(d, (38, 180), "6", 24, (200, 30, 30))
    centered(d, (180, 305), "8", 24, (200, 30, 30))
    centered(d, (200, 160), "?", 28, (30, 30, 200))
    return im


def table() -> Image.Image:
    im = Image.new("RGB", (448, 336), (235, 225, 205))
    d = ImageDraw.Draw(im)
    d.rectangle((30, 220, 418, 240), fill=(140, 90, 50))
    for x in (50, 390):
        d.rectangle((x, 240, x + 12, 336), fill=(120, 75, 40))
    d.rectangle((70, 160, 115, 220), fill=(40, 90, 200))
    d.arc((105, 172, 135, 205), 270, 90, fill=(40, 90, 200), width=6)
    d.ellipse((160, 175, 205, 220), fill=(210, 30, 40))
    d.line((183, 175, 187, 162), fill=(90, 60, 30), width=3)
    d.rectangle((240, 195, 330, 220), fill=(40, 140, 70))
    d.rectangle((240, 195, 330, 201), fill=(245, 245, 235))
    d.polygon([(350, 220), (395, 220), (388, 185), (357, 185)], fill=(170, 100, 60))
    for dx in (-18, 0, 18):
        d.ellipse((365 + dx, 130, 385 + dx, 190), fill=(60, 150, 60))
    return im


def notice() -> Image.Image:
    im = Image.new("RGB", (384, 288), (120, 130, 140))
    d = ImageDraw.Draw(im)
    d.rectangle((24, 24, 360, 264), fill=(255, 255, 250), outline=(30, 30, 30), width=4)
    centered(d, (192, 60), "NOTICE", 30, (190, 20, 20))
    for i, line in enumerate(
        ["Please keep this door", "closed at all times.", "Deliveries use the", "rear entrance."]
    ):
        centered(d, (192, 115 + i * 38), line, 22, (20, 20, 20))
    return im


NOTICE_TEXT = "Please keep this door closed at all times. Deliveries use the rear entrance."
OPTIONS = "['A. 7', 'B. 9', 'C. 10', 'D. 11', 'E. 12', 'F. 13', 'G. 14', 'H. 8.5', 'I. 9.5', 'J. 10.5']"

# (id suffix, drawing, topic, category, turns)
RECORDS: list[tuple[str, Callable[[], Image.Image], str, str, list[str]]] = [
    ("001", street, "general vqa", "default", ["What color is the car parked next to the house?"]),
    (
        "002",
        bakery_sign,
        "text vqa",
        "text reading",
        ["What are the opening hours written on the bakery sign?"],
    ),
    ("003", beach, "image captioning", "image captioning", ["Describe this image in detail."]),
    (
        "004",
        bar_chart,
        "chart understanding",
        "chart reasoning",
        [
            "Which month has the highest sales in the chart, and how many more units were sold "
            "that month than in the month with the lowest sales?"
        ],
    ),
    (
        "005",
        triangle,
        "complex reasoning pro",
        "Math",
        [
            "<image 1> The figure shows a right triangle whose legs have lengths 6 and 8. "
            f"What is the length of the side marked with a question mark?\nOptions: {OPTIONS}"
        ],
    ),
    (
        "006",
        table,
        "multi-turn conversation",
        "daily life",
        [
            "What objects can you see on the table?",
            "Which of these objects could you drink from, and what color is it?",
            "Write a short story of three sentences about someone using the objects on this table.",
        ],
    ),
    (
        "007",
        notice,
        "text vqa",
        "text reading",
        [
            f'The notice in the image should read: "{NOTICE_TEXT}" Repeat the text of the notice '
            "exactly as it appears in the image, then say in one sentence what it asks visitors to do."
        ],
    ),
]


def main() -> None:
    (DEMO_DIR / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for suffix, draw, topic, category, turns in RECORDS:
        image = f"demo_{suffix}.jpg"
        draw().save(DEMO_DIR / "images" / image, format="JPEG", quality=85, optimize=True)
        record = {
            "id": f"demo_{suffix}",
            "image": image,
            "turns": turns,
            "category": category,
            "topic": topic,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    (DEMO_DIR / "mmspec.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records and images to {DEMO_DIR}")


if __name__ == "__main__":
    main()
