"""Text-only samples (15-25 % of the corpus): the "ShareGPT" analogue that stage-1 drafts train on.

Four kinds: worked arithmetic word problems, list manipulations, descriptions of an imagined scene
given in the prompt, and short grammar-generated stories (the high-entropy kind).
"""

from __future__ import annotations

import random

from mmspec.proxy.conversations import Turn, _turn, describe_objects
from mmspec.proxy.grammar import Chooser, article, join_list
from mmspec.proxy.scenes import ShapeObject
from mmspec.proxy.words import (
    ANIMALS,
    CELL_PHRASES,
    COLOURS,
    ITEMS,
    OBJECTS,
    PEOPLE,
    PLACES,
    SHAPES,
    SIGN_WORDS,
)


def text_only(q: random.Random, ch: Chooser) -> Turn:
    kind = q.choice(["arith", "arith", "list", "list", "imagine", "story"])
    return {"arith": _arith, "list": _list, "imagine": _imagine, "story": _story}[kind](q, ch)


def _arith(q: random.Random, ch: Chooser) -> Turn:
    p, other = q.sample(PEOPLE, 2)
    item = q.choice(ITEMS)
    a, b = q.randint(2, 20), q.randint(1, 10)
    c = q.randint(1, a + b - 1)
    r = a + b - c
    prompt = (
        f"{p} has {a} {item}. {other} gives {p} {b} more, and then {p} gives {c} to {other}. "
        f"How many {item} does {p} have now?"
    )
    start = ch.logp
    steps = [
        ch.pick(
            [
                "Let's work it out step by step.",
                "Let me solve this step by step.",
                "We can solve it in two steps.",
            ]
        ),
        f"{p} starts with {a} {item}.",
        f"After getting {b} more, {p} has {a} + {b} = {a + b}.",
        f"After giving away {c}, {p} has {a + b} - {c} = {r}.",
        ch.pick([f"So {p} has {r} {item} now.", f"The answer is {r}.", f"{p} now has {r} {item}."]),
    ]
    return _turn(prompt, " ".join(steps), ch, start, "arith", str(r))


def _list(q: random.Random, ch: Chooser) -> Turn:
    op = q.choice(["sort", "reverse", "numbers"])
    start = ch.logp
    if op == "numbers":
        nums = q.sample(range(1, 100), q.randint(3, 7))
        prompt = "Sort these numbers from smallest to largest: " + ", ".join(map(str, nums)) + "."
        out = ", ".join(map(str, sorted(nums)))
        ans = ch.pick([f"From smallest to largest: {out}.", f"Sorted, the numbers are {out}.", f"{out}."])
        return _turn(prompt, ans, ch, start, "list", out)
    words = q.sample(SIGN_WORDS, q.randint(3, 7))
    if op == "sort":
        prompt = "Sort these words in alphabetical order: " + ", ".join(words) + "."
        out = ", ".join(sorted(words))
        ans = ch.pick(
            [f"In alphabetical order: {out}.", f"Sorted alphabetically, the words are: {out}.", f"{out}."]
        )
    else:
        prompt = "Write this list in reverse order: " + ", ".join(words) + "."
        out = ", ".join(reversed(words))
        ans = ch.pick([f"In reverse order: {out}.", f"Reversed, the list is: {out}.", f"{out}."])
    return _turn(prompt, ans, ch, start, "list", out)


def _imagine(q: random.Random, ch: Chooser) -> Turn:
    n = q.randint(2, 4)
    cells = sorted(q.sample(range(9), n))
    objs = tuple(
        ShapeObject(q.choice(SHAPES), q.choice(list(COLOURS)), q.choice(("small", "large")), c) for c in cells
    )
    spec = join_list([f"{article(o.size)} {o.size} {o.name} is {CELL_PHRASES[o.where]}" for o in objs])
    prompt = f"Describe a picture in which {spec}."
    start = ch.logp
    body = describe_objects(objs, ch, None)
    return _turn(prompt, body, ch, start, "caption", *[(o.name,) for o in objs])


def _story(q: random.Random, ch: Chooser) -> Turn:
    animal = q.choice(ANIMALS)
    prompt = q.choice([f"Tell me a short story about a {animal}.", f"Write a short story about a {animal}."])
    start = ch.logp
    adj = ch.pick(["little", "brave", "curious", "clever", "sleepy", "happy"])
    place = ch.pick(PLACES)
    thing = ch.pick(OBJECTS)
    friend = ch.pick([a for a in ANIMALS if a != animal])
    s = [
        ch.pick(
            [
                f"Once upon a time, {article(adj)} {adj} {animal} lived near the {place}.",
                f"There was once {article(adj)} {adj} {animal} who lived by the {place}.",
            ]
        ),
        ch.pick(
            [
                f"One day, the {animal} found {article(thing)} {thing}.",
                f"One morning, the {animal} discovered {article(thing)} {thing} under a tree.",
            ]
        ),
        f"The {animal} showed the {thing} to {article(friend)} {friend}.",
        ch.pick(
            [
                "Together they looked for its owner all day.",
                f"The {friend} said it belonged to an old {ANIMALS[0] if friend != ANIMALS[0] else ANIMALS[1]}.",
                "They decided to keep it safe until someone asked for it.",
            ]
        ),
        ch.pick(
            [
                "In the end, everyone was happy.",
                f"From that day on, the {animal} and the {friend} were best friends.",
                f"And the {animal} never forgot that day at the {place}.",
            ]
        ),
    ]
    return _turn(prompt, " ".join(s), ch, start, None)
