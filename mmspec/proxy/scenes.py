"""Scene facts and their rendering: shape scenes, signs with words, bar and line charts.

A scene is drawn from a ``random.Random`` (the *scene* stream: everything here is visible in the
image, so it adds no irreducible entropy to answers) and rendered with PIL only: a fixed square
size, no anti-aliasing (polygons and ellipses are aliased in PIL; text uses ``fontmode = "1"``) and
Pillow's bundled default font, so the same (scene, size) always gives the same bytes. Coordinates
are laid out on a 448-unit canvas and scaled to the requested size.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from mmspec.proxy.words import (
    BACKGROUNDS,
    CELLS,
    CHART_AXES,
    CHART_METRICS,
    COLOURS,
    ORDERED_AXES,
    SHAPES,
    SIGN_WORDS,
)

CANVAS = 448


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str  # "small" | "large"
    cell: int  # 0..8, row-major in a 3x3 grid
    outlined: bool = False

    @property
    def row(self) -> int:
        return self.cell // 3

    @property
    def col(self) -> int:
        return self.cell % 3

    @property
    def where(self) -> str:
        return CELLS[self.cell]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class ShapeScene:
    background: str
    objects: tuple[ShapeObject, ...]
    kind: str = "shapes"


@dataclass(frozen=True)
class SignScene:
    background: str
    sign_colour: str
    lines: tuple[str, ...]  # words separated by spaces; a line may be a number
    kind: str = "sign"

    @property
    def words(self) -> list[str]:
        return [w for line in self.lines for w in line.split()]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True)
class ChartScene:
    chart: str  # "bar" | "line"
    axis: str
    metric: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    colour: str
    kind: str = "chart"

    @property
    def title(self) -> str:
        return f"{self.metric.capitalize()} by {self.axis}"

    def value(self, label: str) -> int:
        return self.values[self.labels.index(label)]


Scene = ShapeScene | SignScene | ChartScene


# ----------------------------------------------------------------------------- drawing scenes
def draw_shape_scene(rng: random.Random, n_min: int, n_max: int) -> ShapeScene:
    """2-9 objects in distinct cells of a 3x3 grid."""
    n = rng.randint(n_min, n_max)
    cells = rng.sample(range(9), n)
    objects = tuple(
        ShapeObject(
            shape=rng.choice(SHAPES),
            colour=rng.choice(list(COLOURS)),
            size=rng.choice(("small", "large")),
            cell=c,
            outlined=rng.random() < 0.2,
        )
        for c in sorted(cells)
    )
    return ShapeScene(background=rng.choice(list(BACKGROUNDS)), objects=objects)


def draw_sign_scene(rng: random.Random) -> SignScene:
    """A sign with 1-3 lines of 1-3 words (one line may be a number)."""
    n_lines = rng.choice((1, 2, 2, 3))
    lines = []
    for _ in range(n_lines):
        if rng.random() < 0.2:
            lines.append(str(rng.randint(1, 999)))
        else:
            lines.append(" ".join(rng.sample(SIGN_WORDS, rng.choice((1, 2, 2, 3)))))
    # Keep each line short enough to fit the sign at the chosen font size.
    lines = [line if len(line) <= 16 else line.split()[0] for line in lines]
    sign = rng.choice(("black", "blue", "green", "white", "yellow"))
    return SignScene(background=rng.choice(list(BACKGROUNDS)), sign_colour=sign, lines=tuple(lines))


def draw_chart_scene(rng: random.Random) -> ChartScene:
    chart = rng.choice(("bar", "line"))
    axis = rng.choice(list(CHART_AXES))
    pool = CHART_AXES[axis]
    n = rng.randint(3, 7) if chart == "bar" else rng.randint(4, 7)
    if axis in ORDERED_AXES:
        start = rng.randint(0, len(pool) - n)
        labels = pool[start : start + n]
    else:
        labels = tuple(rng.sample(pool, n))
    values = tuple(rng.sample(range(5, 96), n))  # distinct: max/min/compare are never ties
    colour = rng.choice(("blue", "green", "orange", "purple", "red"))
    return ChartScene(
        chart=chart,
        axis=axis,
        metric=rng.choice(CHART_METRICS),
        labels=tuple(labels),
        values=values,
        colour=colour,
    )


# ----------------------------------------------------------------------------- rendering
@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, px))


def _canvas(size: int, background: str) -> tuple[Image.Image, ImageDraw.ImageDraw, float]:
    img = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"  # no anti-aliasing: byte-stable text
    return img, draw, size / CANVAS


def _polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float | None = None):
    pts = []
    steps = n * 2 if inner else n
    for k in range(steps):
        rad = r if (inner is None or k % 2 == 0) else r * inner
        a = rot + 2 * math.pi * k / steps
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return [(round(x), round(y)) for x, y in pts]


def _shape_points(shape: str, cx: float, cy: float, r: float):
    up = -math.pi / 2
    if shape == "triangle":
        return _polygon(cx, cy + r * 0.15, r, 3, up)
    if shape == "square":
        return _polygon(cx, cy, r * 1.2, 4, math.pi / 4)
    if shape == "diamond":
        return _polygon(cx, cy, r, 4, up)
    if shape == "pentagon":
        return _polygon(cx, cy, r, 5, up)
    if shape == "hexagon":
        return _polygon(cx, cy, r, 6, 0.0)
    if shape == "star":
        return _polygon(cx, cy, r, 5, up, inner=0.45)
    if shape == "cross":
        a, b = r * 0.33, r
        rel = [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
        return [(round(cx + x), round(cy + y)) for x, y in rel]
    raise ValueError(shape)


def render_shapes(scene: ShapeScene, size: int) -> Image.Image:
    img, draw, s = _canvas(size, scene.background)
    cell = CANVAS / 3
    for obj in scene.objects:
        cx, cy = (obj.col + 0.5) * cell * s, (obj.row + 0.5) * cell * s
        r = (0.40 if obj.size == "large" else 0.22) * cell * s
        fill = COLOURS[obj.colour]
        width = max(1, round(r / 4))
        if obj.shape == "circle":
            box = [round(cx - r), round(cy - r), round(cx + r), round(cy + r)]
            if obj.outlined:
                draw.ellipse(box, outline=fill, width=width)
            else:
                draw.ellipse(box, fill=fill)
        else:
            pts = _shape_points(obj.shape, cx, cy, r)
            if obj.outlined:
                draw.line([*pts, pts[0]], fill=fill, width=width, joint="curve")
            else:
                draw.polygon(pts, fill=fill)
    return img


#: Text colour on each sign colour.
SIGN_INK = {"black": "white", "blue": "white", "green": "white", "white": "black", "yellow": "black"}
_RGB = {**COLOURS, "white": (255, 255, 255)}


def render_sign(scene: SignScene, size: int) -> Image.Image:
    img, draw, s = _canvas(size, scene.background)
    px = round(34 * s)
    font = _font(px)
    line_h = round(px * 1.35)
    width = max(draw.textlength(line, font=font) for line in scene.lines)
    box_w, box_h = width + 40 * s, line_h * len(scene.lines) + 36 * s
    x0, y0 = (size - box_w) / 2, (size - box_h) / 2 - 20 * s
    # post under the sign, then the board, then the text lines centred
    draw.rectangle(
        [round(size / 2 - 6 * s), round(y0 + box_h), round(size / 2 + 6 * s), size], fill=(110, 80, 50)
    )
    draw.rectangle(
        [round(x0), round(y0), round(x0 + box_w), round(y0 + box_h)],
        fill=_RGB[scene.sign_colour],
        outline=(60, 60, 60),
        width=max(1, round(3 * s)),
    )
    ink = _RGB[SIGN_INK[scene.sign_colour]]
    for k, line in enumerate(scene.lines):
        w = draw.textlength(line, font=font)
        draw.text((round((size - w) / 2), round(y0 + 18 * s + k * line_h)), line, fill=ink, font=font)
    return img


def render_chart(scene: ChartScene, size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    s = size / CANVAS
    title_font, label_font = _font(round(24 * s)), _font(round(18 * s))
    tw = draw.textlength(scene.title, font=title_font)
    draw.text((round((size - tw) / 2), round(12 * s)), scene.title, fill=(0, 0, 0), font=title_font)
    left, right, top, bottom = 30 * s, CANVAS * s - 20 * s, 80 * s, CANVAS * s - 50 * s
    axis = (0, 0, 0)
    draw.line(
        [(round(left), round(top)), (round(left), round(bottom))], fill=axis, width=max(1, round(2 * s))
    )
    draw.line(
        [(round(left), round(bottom)), (round(right), round(bottom))], fill=axis, width=max(1, round(2 * s))
    )
    n = len(scene.labels)
    slot = (right - left) / n
    fill = COLOURS[scene.colour]
    points = []
    for i, (label, value) in enumerate(zip(scene.labels, scene.values)):
        cx = left + slot * (i + 0.5)
        y = bottom - (bottom - top) * value / 100
        if scene.chart == "bar":
            half = slot * 0.32
            draw.rectangle([round(cx - half), round(y), round(cx + half), round(bottom)], fill=fill)
        points.append((round(cx), round(y)))
        text = str(value)
        w = draw.textlength(text, font=label_font)
        draw.text((round(cx - w / 2), round(y - 24 * s)), text, fill=(0, 0, 0), font=label_font)
        w = draw.textlength(label, font=label_font)
        drop = 20 * s if n >= 6 and i % 2 else 0.0  # stagger crowded labels
        draw.text((round(cx - w / 2), round(bottom + 6 * s + drop)), label, fill=(0, 0, 0), font=label_font)
    if scene.chart == "line":
        draw.line(points, fill=fill, width=max(1, round(3 * s)))
        r = max(1, round(5 * s))
        for x, y in points:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    return img


def render(scene: Scene, size: int) -> Image.Image:
    if isinstance(scene, ShapeScene):
        return render_shapes(scene, size)
    if isinstance(scene, SignScene):
        return render_sign(scene, size)
    return render_chart(scene, size)
