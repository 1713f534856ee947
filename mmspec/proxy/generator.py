"""The synthetic corpus: ``sample(seed, index)`` is a pure function of (version, seed, index).

Each sample is one scene (or none, for text-only samples), rendered at a fixed square size, and a
conversation of 1-3 turns with the generator's reference answers, the category (MMSpec's topic
names), and per turn the log-probability of the answer's phrasing choices, the facts a correct
answer states, and which quality family checks it. Three independent ``random.Random`` streams,
seeded from strings (stable across platforms and Python versions): ``scene`` (what the image
shows), ``question`` (what is asked) and ``answer`` (how it is phrased; the only one whose
log-probability is answer entropy). ``variant > 0`` asks further questions about the same scene,
so training can reuse each rendered image several times.

Bump :data:`GENERATOR_VERSION` whenever any output could change; tests pin sample hashes.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field

from PIL import Image

from mmspec.proxy import conversations as conv
from mmspec.proxy.grammar import Chooser
from mmspec.proxy.scenes import Scene, draw_chart_scene, draw_shape_scene, draw_sign_scene, render
from mmspec.proxy.textonly import text_only

GENERATOR_VERSION = "proxy-gen-1"

#: The MMSpec topics (same strings as MMSpec's ``topic`` field) plus text-only, and their shares.
CATEGORY_MIX: dict[str, float] = {
    "general vqa": 0.15,
    "text vqa": 0.13,
    "image captioning": 0.12,
    "chart understanding": 0.14,
    "complex reasoning pro": 0.12,
    "multi-turn conversation": 0.14,
    "text only": 0.20,
}
CATEGORIES = tuple(CATEGORY_MIX)
IMAGE_CATEGORIES = tuple(c for c in CATEGORIES if c != "text only")
#: Which scene kinds a category can use (and how often).
SCENE_KINDS: dict[str, dict[str, float]] = {
    "general vqa": {"shapes": 1.0},
    "text vqa": {"sign": 1.0},
    "image captioning": {"caption": 1.0},
    "chart understanding": {"chart": 1.0},
    "complex reasoning pro": {"shapes": 0.5, "chart": 0.5},
    "multi-turn conversation": {"shapes": 0.4, "sign": 0.3, "chart": 0.3},
    "text only": {"none": 1.0},
}

#: Vicuna system prompt (MMSpec's protocol): training renders every conversation with it.
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass
class ProxySample:
    seed: int
    index: int
    variant: int
    category: str
    scene_kind: str
    scene: Scene | None
    turns: list[conv.Turn]
    image: Image.Image | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        suffix = f"-v{self.variant}" if self.variant else ""
        return f"proxy-{self.seed}-{self.index}{suffix}"

    @property
    def prompts(self) -> list[str]:
        return [t.prompt for t in self.turns]

    @property
    def answers(self) -> list[str]:
        return [t.answer for t in self.turns]

    @property
    def answer_logp(self) -> float:
        return sum(t.logp for t in self.turns)

    def record(self, image_name: str | None) -> dict:
        """The JSONL record of the task/export layout (see :mod:`mmspec.proxy.export`)."""
        return {
            "id": self.id,
            "image": image_name,
            "turns": self.prompts,
            "answers": self.answers,
            "category": self.scene_kind,
            "topic": self.category,
            "answer_logp": [round(t.logp, 6) for t in self.turns],
            "checks": [t.check for t in self.turns],
            "facts": [[list(s) for s in t.facts] for t in self.turns],
            "generator": GENERATOR_VERSION,
        }


def _rng(seed: int, index: int, stream: str) -> random.Random:
    return random.Random(f"{GENERATOR_VERSION}|{seed}|{index}|{stream}")


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def scene_kind(seed: int, index: int) -> tuple[str, str]:
    """(category of variant 0, scene kind) of sample ``index``."""
    rng = _rng(seed, index, "category")
    category = _pick(rng, CATEGORY_MIX)
    return category, _pick(rng, SCENE_KINDS[category])


def make_scene(seed: int, index: int, kind: str) -> Scene | None:
    rng = _rng(seed, index, "scene")
    if kind == "shapes":
        return draw_shape_scene(rng, 2, 8)
    if kind == "caption":
        return draw_shape_scene(rng, 6, 9)
    if kind == "sign":
        return draw_sign_scene(rng)
    if kind == "chart":
        return draw_chart_scene(rng)
    return None


def _variant_category(rng: random.Random, kind: str) -> str:
    """A category whose scene kinds include ``kind`` (for extra questions about one scene)."""
    options = {c: SCENE_KINDS[c][kind] * CATEGORY_MIX[c] for c in CATEGORIES if kind in SCENE_KINDS[c]}
    if kind == "caption":  # a captioning scene also serves the shape-scene categories
        options.update(
            {c: CATEGORY_MIX[c] for c in ("general vqa", "complex reasoning pro", "multi-turn conversation")}
        )
    return _pick(rng, options)


def conversation(category: str, scene: Scene | None, q: random.Random, ch: Chooser) -> list[conv.Turn]:
    if category == "text only":
        return [text_only(q, ch)]
    if category == "general vqa":
        return [conv.general_vqa(scene, q, ch)]
    if category == "text vqa":
        return [conv.text_vqa(scene, q, ch)]
    if category == "image captioning":
        return [conv.captioning(scene, q, ch)]
    if category == "chart understanding":
        return [conv.chart_vqa(scene, q, ch)]
    if category == "complex reasoning pro":
        return [conv.reasoning(scene, q, ch)]
    return conv.multi_turn(scene, q, ch)


def sample(seed: int, index: int, size: int | None = 448, variant: int = 0) -> ProxySample:
    """Sample ``index`` of stream ``seed``; ``size=None`` skips rendering (text and facts only)."""
    category, kind = scene_kind(seed, index)
    scene = make_scene(seed, index, kind)
    stream = f"v{variant}"
    if variant:
        category = _variant_category(_rng(seed, index, f"{stream}|category"), kind)
    q = _rng(seed, index, f"{stream}|question")
    ch = Chooser(_rng(seed, index, f"{stream}|answer"))
    turns = conversation(category, scene, q, ch)
    image = render(scene, size) if scene is not None and size else None
    return ProxySample(seed, index, variant, category, kind, scene, turns, image)


def png_bytes(image: Image.Image) -> bytes:
    """Deterministic PNG encoding (no timestamps or text chunks; fixed compression)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def sample_digest(s: ProxySample) -> str:
    """sha256 over the raw pixels and the conversation text (what the pinned-hash test checks)."""
    h = hashlib.sha256()
    if s.image is not None:
        h.update(s.image.tobytes())
    for t in s.turns:
        h.update(t.prompt.encode() + b"\x00" + t.answer.encode() + b"\x01")
    return h.hexdigest()
