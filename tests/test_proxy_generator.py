"""The proxy corpus generator: determinism (pinned hashes), category mix, answer grammar."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from mmspec.proxy.generator import CATEGORIES, CATEGORY_MIX, sample, sample_digest
from mmspec.proxy.grammar import Chooser
from mmspec.proxy.quality import facts_ok, has_loop

#: sha256 of (pixels, prompts, answers) of seed 0 at 112 px: the first sample of each category. A change here means the
#: generator's output changed: bump GENERATOR_VERSION and update the pins together.
PINNED = {
    0: "23663a06e72b075f8bbd67640f0cd3d58bf4f68ef7b8855a376e3b9c1e65ab84",  # text vqa
    1: "ca4e83dd7a1514cae23f184fd6ab9fac264aaafdd476b87d8682fdf1af5e1bb5",  # complex reasoning pro
    2: "ee22d83bd54462a17446258c7735304e824b5636987a75945be411b4ce483e77",  # text only
    3: "ba49ff89294e530a0096659f0091eac8f93ceeecc873f3e0cbf624e0a776f9a8",  # chart understanding
    4: "892dfcc1d84da8e1d0490cafd18c475c6ca1fb958c8ab8310d84c6fffc0ed7ad",  # general vqa
    6: "a759c16445ed6c1fb6c38c665f36e368b407b434e46605c62a9ac1135ec4cf36",  # image captioning
    19: "99f40567780a0f6eb519e51e1f87f0285c44866356abc651cef356cc6fd1492c",  # multi-turn conversation
}


@pytest.mark.parametrize("index", sorted(PINNED))
def test_pinned_sample_hashes(index: int) -> None:
    assert sample_digest(sample(0, index, size=112)) == PINNED[index]


def test_pure_function_of_seed_and_index() -> None:
    a = [sample_digest(sample(7, i, size=64)) for i in range(6)]
    b = [sample_digest(sample(7, i, size=64)) for i in reversed(range(6))][::-1]
    assert a == b
    assert len(set(a)) == 6
    assert sample_digest(sample(8, 0, size=64)) != a[0]


def test_category_mix_and_text_only_share() -> None:
    n = 1500
    counts = Counter(sample(3, i, size=None).category for i in range(n))
    assert set(counts) == set(CATEGORIES)
    assert 0.15 <= counts["text only"] / n <= 0.25
    for cat, share in CATEGORY_MIX.items():
        assert abs(counts[cat] / n - share) < 0.04, (cat, counts[cat] / n)


def test_variants_share_the_scene_and_ask_new_questions() -> None:
    base = sample(0, 5, size=64)
    other = sample(0, 5, size=64, variant=1)
    assert base.scene == other.scene
    assert (
        base.image is not None and other.image is not None and base.image.tobytes() == other.image.tobytes()
    )
    assert (base.prompts, base.answers) != (other.prompts, other.answers)


def test_multi_turn_and_captions_look_right() -> None:
    multi = [
        s for s in (sample(1, i, size=None) for i in range(300)) if s.category == "multi-turn conversation"
    ]
    assert multi and all(2 <= len(s.turns) <= 3 for s in multi)
    copies = [s for s in multi if len(s.turns) == 3 and s.prompts[2].startswith("Repeat your first answer")]
    assert copies and all(s.answers[2] == s.answers[0].upper() for s in copies)
    captions = [s for s in (sample(1, i, size=None) for i in range(300)) if s.category == "image captioning"]
    words = [len(s.answers[0].split()) for s in captions]
    assert min(words) >= 70 and max(words) <= 320, (min(words), max(words))
    reasoning = [
        s for s in (sample(1, i, size=None) for i in range(300)) if s.category == "complex reasoning pro"
    ]
    assert all(s.answers[0].rsplit("Answer: ", 1)[1] in {f"({c})" for c in "ABCDE"} for s in reasoning)


def test_answer_entropy_is_the_log_probability_of_phrasing_choices() -> None:
    ch = Chooser(random.Random(0))
    ch.pick(["a", "b", "c"])
    ch.maybe(0.25)
    assert ch.logp <= math.log(1 / 3) + math.log(0.75) + 1e-12
    # a sample with no phrasing choice (a verbatim copy turn) has zero entropy
    s = next(s for s in (sample(1, i, size=None) for i in range(300))
             if len(s.turns) == 3 and s.prompts[2].startswith("Repeat your first answer"))  # fmt: skip
    assert s.turns[2].logp == 0.0 and s.turns[0].logp < 0.0


def test_reference_answers_pass_their_own_fact_checks() -> None:
    for i in range(300):
        for t in sample(2, i, size=None).turns:
            if t.facts:
                assert facts_ok(t.answer, t.facts), (t.prompt, t.answer, t.facts)


def test_fact_check_and_loop_detector() -> None:
    assert facts_ok("There are 3 red shapes.", (("3",),))
    assert not facts_ok("There are 13 red shapes.", (("3",),))
    assert facts_ok("None here.", (("no", "None"),))
    assert has_loop([1, 2, 3, 4, 5] + [7, 8, 9, 10] * 4)
    assert not has_loop(list(range(40)))
    assert not has_loop([5, 5, 5, 1, 2, 3])
