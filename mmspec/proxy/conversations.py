"""Questions and answers about a scene: the probabilistic answer grammar of each category.

Every builder takes the scene, a question ``random.Random`` (what is asked is visible in the
prompt, so it is not answer entropy) and a :class:`~mmspec.proxy.grammar.Chooser` for the answer's
phrasing, whose log-probability is the answer's irreducible entropy. Each turn records the facts a
correct answer must state (``facts``: slots of alternatives) and which quality family checks it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from mmspec.proxy.grammar import Chooser, article, capitalize, join_list, plural
from mmspec.proxy.scenes import SIGN_INK, ChartScene, ShapeObject, ShapeScene, SignScene
from mmspec.proxy.words import CELL_PHRASES, COLOURS, SHAPES

#: Quality families (what ``Turn.check`` may name) and what they measure.
CHECKS = {
    "attribute": "colour / shape / yes-no answers about one object",
    "position": "where an object is, above / below",
    "count": "how many objects, lines or words",
    "text": "words and numbers read from a sign",
    "chart": "values and labels read from a chart",
    "choice": "the letter of a multiple-choice answer",
    "caption": "share of the scene's objects named (colour and shape) in a description",
    "arith": "final number of a worked word problem (text only)",
    "list": "a sorted or reversed list (text only)",
}


@dataclass
class Turn:
    """One user prompt and the generator's reference answer."""

    prompt: str
    answer: str
    logp: float = 0.0  # log-probability of the answer's phrasing choices (entropy = -logp)
    check: str | None = None
    facts: tuple[tuple[str, ...], ...] = field(default_factory=tuple)  # all slots; any alternative each


def _turn(prompt: str, answer: str, ch: Chooser, start: float, check: str | None, *facts) -> Turn:
    slots = tuple(tuple(f) if isinstance(f, (tuple, list)) else (str(f),) for f in facts)
    return Turn(prompt, answer, ch.logp - start, check, slots)


def _cell(obj: ShapeObject) -> str:
    return CELL_PHRASES[obj.where]


def _a(obj: ShapeObject, with_size: bool = False) -> str:
    words = f"{obj.size} {obj.colour} {obj.shape}" if with_size else obj.name
    return f"{article(words)} {words}"


def _reading(objects) -> list[ShapeObject]:
    return sorted(objects, key=lambda o: o.cell)


def _left_to_right(objects) -> list[ShapeObject]:
    return sorted(objects, key=lambda o: (o.col, o.row))


def _unique(objects, key) -> list[ShapeObject]:
    counts = Counter(key(o) for o in objects)
    return [o for o in objects if counts[key(o)] == 1]


# ----------------------------------------------------------------------------- general VQA
def general_vqa(scene: ShapeScene, q: random.Random, ch: Chooser) -> Turn:
    objs = scene.objects
    kinds = ["count_colour", "count_shape", "count_all", "exists"]
    if _unique(objs, lambda o: o.shape):
        kinds.append("colour_of")
    if _unique(objs, lambda o: o.colour):
        kinds.append("shape_of")
    if _unique(objs, lambda o: o.name):
        kinds += ["position", "position"]
        pairs = [
            (a, b)
            for a in _unique(objs, lambda o: o.name)
            for b in _unique(objs, lambda o: o.name)
            if a.row != b.row
        ]
        if pairs:
            kinds.append("relation")
    kind = q.choice(kinds)
    start = ch.logp
    if kind == "colour_of":
        o = q.choice(_unique(objs, lambda o: o.shape))
        prompt = q.choice(
            [
                f"What color is the {o.shape}?",
                f"What is the color of the {o.shape}?",
                f"Which color does the {o.shape} have?",
            ]
        )
        ans = ch.pick(
            [
                f"The {o.shape} is {o.colour}.",
                f"It is {o.colour}.",
                f"The color of the {o.shape} is {o.colour}.",
                f"{capitalize(o.colour)}.",
            ]
        )
        if ch.maybe(0.3):
            ans += f" It is {o.size} and sits {_cell(o)}."
        return _turn(prompt, ans, ch, start, "attribute", o.colour)
    if kind == "shape_of":
        o = q.choice(_unique(objs, lambda o: o.colour))
        prompt = q.choice(
            [
                f"What shape is the {o.colour} object?",
                f"Which shape is {o.colour}?",
                f"What is the {o.colour} shape?",
            ]
        )
        ans = ch.pick(
            [
                f"The {o.colour} object is {article(o.shape)} {o.shape}.",
                f"It is {article(o.shape)} {o.shape}.",
                f"It's {article(o.shape)} {o.shape}.",
                f"{capitalize(article(o.shape))} {o.shape}.",
            ]
        )
        if ch.maybe(0.3):
            ans += f" It is {_cell(o)}."
        return _turn(prompt, ans, ch, start, "attribute", o.shape)
    if kind in ("count_colour", "count_shape"):
        if kind == "count_colour":
            c = q.choice([o.colour for o in objs] * 3 + list(COLOURS))
            members, noun = [o for o in objs if o.colour == c], f"{c} shapes"
            prompt = q.choice(
                [
                    f"How many {c} shapes are there?",
                    f"How many shapes are {c}?",
                    f"Count the {c} shapes in the image.",
                ]
            )
            parts = [f"{article(o.shape)} {o.shape}" for o in _reading(members)]
        else:
            s = q.choice([o.shape for o in objs] * 3 + list(SHAPES))
            members, noun = [o for o in objs if o.shape == s], plural(s, 2)
            prompt = q.choice(
                [
                    f"How many {plural(s, 2)} are there?",
                    f"How many {plural(s, 2)} can you see?",
                    f"Count the {plural(s, 2)} in the image.",
                ]
            )
            parts = [f"{article(o.colour)} {o.colour} one" for o in _reading(members)]
        return _count_answer(prompt, members, noun, parts, ch, start)
    if kind == "count_all":
        prompt = q.choice(
            [
                "How many shapes are in the image?",
                "How many objects can you see?",
                "How many shapes are there in total?",
            ]
        )
        n = len(objs)
        ans = ch.pick([f"There are {n} shapes.", f"I can see {n} shapes.", f"The image contains {n} shapes."])
        if ch.maybe(0.5):
            ans = ans[:-1] + ": " + join_list([_a(o) for o in _reading(objs)]) + "."
        return _turn(prompt, ans, ch, start, "count", str(n))
    if kind == "exists":
        present = q.random() < 0.5
        if present:
            o = q.choice(list(objs))
            colour, shape = o.colour, o.shape
        else:
            names = {x.name for x in objs}
            options = [(c, s) for c in COLOURS for s in SHAPES if f"{c} {s}" not in names]
            colour, shape = q.choice(options)
        name = f"{colour} {shape}"
        prompt = q.choice(
            [
                f"Is there {article(name)} {name} in the image?",
                f"Can you see {article(name)} {name}?",
                f"Does the picture contain {article(name)} {name}?",
            ]
        )
        if present:
            ans = ch.pick(
                [
                    f"Yes, there is {article(name)} {name} {_cell(o)}.",
                    f"Yes. It is {_cell(o)}.",
                    f"Yes, I can see one {_cell(o)}.",
                ]
            )
            return _turn(prompt, ans, ch, start, "attribute", ("Yes",))
        ans = ch.pick(
            [f"No, there is no {name} in the image.", f"No, I don't see {article(name)} {name}.", "No."]
        )
        return _turn(prompt, ans, ch, start, "attribute", ("No",))
    if kind == "position":
        o = q.choice(_unique(objs, lambda o: o.name))
        prompt = q.choice(
            [
                f"Where is the {o.name}?",
                f"Where is the {o.name} located?",
                f"In which part of the image is the {o.name}?",
            ]
        )
        ans = ch.pick([f"The {o.name} is {_cell(o)}.", f"It is {_cell(o)}.", f"You can find it {_cell(o)}."])
        if ch.maybe(0.3):
            ans = ans[:-1] + " of the image."
        return _turn(prompt, ans, ch, start, "position", _cell(o))
    # relation
    uniq = _unique(objs, lambda o: o.name)
    a, b = q.choice([(a, b) for a in uniq for b in uniq if a.row != b.row])
    rel = "above" if a.row < b.row else "below"
    prompt = q.choice(
        [
            f"Is the {a.name} above or below the {b.name}?",
            f"Is the {a.name} higher or lower than the {b.name}?",
        ]
    )
    ans = ch.pick(
        [f"The {a.name} is {rel} the {b.name}.", f"It is {rel} the {b.name}.", f"{capitalize(rel)}."]
    )
    if ch.maybe(0.4):
        ans += f" The {a.name} is {_cell(a)} and the {b.name} is {_cell(b)}."
    return _turn(prompt, ans, ch, start, "position", rel)


def _count_answer(prompt: str, members, noun: str, parts: list[str], ch: Chooser, start: float) -> Turn:
    n = len(members)
    if n == 0:
        ans = ch.pick([f"There are no {noun}.", f"I don't see any {noun}.", f"There are zero {noun}."])
        return _turn(prompt, ans, ch, start, "count", ("no", "any", "zero"))
    if n == 1:
        ans = ch.pick(
            [f"There is one: {parts[0]}.", f"Only one, {parts[0]}.", f"Just one. It is {parts[0]}."]
        )
        return _turn(prompt, ans, ch, start, "count", ("one", "One"))
    ans = ch.pick(
        [
            f"There are {n} {noun}: {join_list(parts)}.",
            f"I count {n} {noun}: {join_list(parts)}.",
            f"There are {n}.",
        ]
    )
    return _turn(prompt, ans, ch, start, "count", str(n))


# ----------------------------------------------------------------------------- captioning
_ORDER_INTRO = {
    "reading": ["Going row by row from the top left:", "From the top left to the bottom right:"],
    "size": ["Starting with the large shapes:", "First the large shapes, then the small ones:"],
    "columns": ["From left to right:", "Going column by column from the left:"],
}


def _object_sentence(o: ShapeObject, ch: Chooser, neighbours: list[str]) -> str:
    what = _a(o, with_size=True)
    s = ch.pick(
        [
            f"There is {what} {_cell(o)}.",
            f"{capitalize(_cell(o))}, there is {what}.",
            f"{capitalize(what)} sits {_cell(o)}.",
            f"We can also see {what} {_cell(o)}.",
        ]
    )
    if o.outlined:
        s += ch.pick([" It is drawn only as an outline.", f" It is hollow, with just a {o.colour} outline."])
    if neighbours and ch.maybe(0.4):
        s += " " + ch.pick(neighbours)
    return s


def _neighbours(o: ShapeObject, objs) -> list[str]:
    out = []
    for other in objs:
        if other.row == o.row and other.col == o.col + 1:
            out.append(f"It is just left of the {other.name}.")
        if other.col == o.col and other.row == o.row + 1:
            out.append(f"It is directly above the {other.name}.")
    return out


def describe_objects(objs, ch: Chooser, background: str | None) -> str:
    """The caption body shared by image captioning and imagined-scene descriptions."""
    n = len(objs)
    intro = (
        ch.pick(
            [
                f"The image shows {n} shapes on a {background} background.",
                f"This picture contains {n} colorful shapes on a {background} background.",
                f"In this image, there are {n} shapes arranged on a {background} background.",
                f"We can see {n} shapes placed on a plain {background} background.",
            ]
        )
        if background
        else ch.pick([f"The picture shows {n} shapes.", f"In this picture there are {n} shapes."])
    )
    orders = {
        "reading": _reading(objs),
        "size": sorted(objs, key=lambda o: (o.size != "large", o.cell)),
        "columns": _left_to_right(objs),
    }
    kinds = list(orders)
    distinct = ch.order([orders[k] for k in kinds])
    kind = next(k for k in kinds if orders[k] == distinct)
    sentences = [intro, ch.pick(_ORDER_INTRO[kind])]
    sentences += [_object_sentence(o, ch, _neighbours(o, objs)) for o in distinct]
    summary = ch.pick(["colour", "shape"])
    counts = Counter(o.colour if summary == "colour" else o.shape for o in _reading(objs))
    items = [
        f"{k} {c} {plural('shape', k)}" if summary == "colour" else f"{k} {plural(c, k)}"
        for c, k in counts.items()
    ]
    sentences.append(f"In total there {'is' if len(objs) == 1 else 'are'} {join_list(items)}.")
    if ch.maybe(0.5):
        sentences.append(
            ch.pick(
                [
                    "The scene is simple and clean.",
                    "Overall, the picture looks bright and colorful.",
                    "No other objects or text appear in the image.",
                ]
            )
        )
    return " ".join(sentences)


def captioning(scene: ShapeScene, q: random.Random, ch: Chooser) -> Turn:
    prompt = q.choice(
        [
            "Describe this image in detail.",
            "Give a detailed description of the image.",
            "Describe everything you see in this picture.",
            "Write a detailed caption for this image.",
        ]
    )
    start = ch.logp
    ans = describe_objects(scene.objects, ch, scene.background)
    return _turn(prompt, ans, ch, start, "caption", *[(o.name,) for o in scene.objects])


# ----------------------------------------------------------------------------- text VQA


def text_vqa(scene: SignScene, q: random.Random, ch: Chooser) -> Turn:
    kinds = ["read", "read", "first", "lines", "colour"]
    numbers = [line for line in scene.lines if line.isdigit()]
    if numbers:
        kinds.append("number")
    if len(scene.words) > 1:
        kinds.append("last")
    kind = q.choice(kinds)
    start = ch.logp
    text = scene.text
    if kind == "read":
        prompt = q.choice(
            ["What does the sign say?", "What is written on the sign?", "Read the text on the sign."]
        )
        ans = ch.pick(
            [
                f'The sign says "{text}".',
                f'It says "{text}".',
                f'The text on the sign reads "{text}".',
                f'"{text}"',
            ]
        )
        if ch.maybe(0.3):
            ans += f" The words are written in {SIGN_INK[scene.sign_colour]} on a {scene.sign_colour} sign."
        return _turn(prompt, ans, ch, start, "text", f'"{text}"')
    if kind in ("first", "last"):
        w = scene.words[0] if kind == "first" else scene.words[-1]
        prompt = f"What is the {kind} word on the sign?"
        ans = ch.pick([f'The {kind} word is "{w}".', f'It is "{w}".', f'"{w}"'])
        return _turn(prompt, ans, ch, start, "text", f'"{w}"')
    if kind == "number":
        num = numbers[0]
        prompt = q.choice(["What number is on the sign?", "Which number can you read on the sign?"])
        ans = ch.pick(
            [f"The number on the sign is {num}.", f"It is {num}.", f"The sign shows the number {num}."]
        )
        return _turn(prompt, ans, ch, start, "text", num)
    if kind == "lines":
        n = len(scene.lines)
        prompt = q.choice(["How many lines of text are on the sign?", "How many lines does the sign have?"])
        word = "one line" if n == 1 else f"{n} lines"
        ans = ch.pick([f"The sign has {word} of text.", f"There {'is' if n == 1 else 'are'} {word}."])
        if ch.maybe(0.4):
            ans += " " + " ".join(f'Line {k + 1} says "{line}".' for k, line in enumerate(scene.lines))
        return _turn(prompt, ans, ch, start, "count", ("one line",) if n == 1 else f"{n} lines")
    prompt = q.choice(["What color is the sign?", "What is the color of the sign?"])
    c = scene.sign_colour
    ans = ch.pick([f"The sign is {c}.", f"It is {c}.", f"{capitalize(c)}."])
    if ch.maybe(0.4):
        ans += f" The text on it is {SIGN_INK[c]}."
    return _turn(prompt, ans, ch, start, "attribute", c)


# ----------------------------------------------------------------------------- charts
def chart_vqa(scene: ChartScene, q: random.Random, ch: Chooser) -> Turn:
    kinds = ["max", "min", "read", "read", "compare", "describe"]
    if scene.chart == "line" or scene.axis in ("month", "day", "year"):
        kinds.append("trend")
    kind = q.choice(kinds)
    start = ch.logp
    labels, values, metric = scene.labels, scene.values, scene.metric
    if kind in ("max", "min"):
        v = max(values) if kind == "max" else min(values)
        lab = labels[values.index(v)]
        word = "highest" if kind == "max" else "lowest"
        prompt = q.choice(
            [f"Which {scene.axis} has the {word} {metric}?", f"What is the {word} value in the chart?"]
        )
        ans = ch.pick(
            [
                f"{capitalize(lab)} has the {word} {metric}, with {v}.",
                f"The {word} value is {v}, for {lab}.",
                f"{capitalize(lab)}, with a value of {v}.",
            ]
        )
        return _turn(prompt, ans, ch, start, "chart", lab, str(v))
    if kind == "read":
        lab = q.choice(labels)
        v = scene.value(lab)
        prompt = q.choice([f"What is the {metric} for {lab}?", f"What value does the chart show for {lab}?"])
        ans = ch.pick(
            [
                f"The {metric} for {lab} is {v}.",
                f"It is {v}.",
                f"{capitalize(lab)} has a value of {v}.",
                f"The chart shows {v} for {lab}.",
            ]
        )
        return _turn(prompt, ans, ch, start, "chart", str(v))
    if kind == "compare":
        a, b = q.sample(list(labels), 2)
        va, vb = scene.value(a), scene.value(b)
        rel = "higher" if va > vb else "lower"
        prompt = f"Is the {metric} for {a} higher or lower than for {b}?"
        ans = ch.pick(
            [
                f"It is {rel}: {a} has {va} and {b} has {vb}.",
                f"{capitalize(a)} ({va}) is {rel} than {b} ({vb}).",
                f"{capitalize(rel)}. The chart shows {va} for {a} and {vb} for {b}.",
            ]
        )
        return _turn(prompt, ans, ch, start, "chart", rel, str(va), str(vb))
    if kind == "trend":
        first, last = labels[0], labels[-1]
        v0, vn = values[0], values[-1]
        move = "rises" if vn > v0 else "falls"
        prompt = q.choice(
            [
                f"How does the {metric} change from {first} to {last}?",
                f"Describe the change in {metric} from {first} to {last}.",
            ]
        )
        ans = ch.pick(
            [
                f"It {move} from {v0} in {first} to {vn} in {last}.",
                f"The {metric} {move} from {v0} to {vn} between {first} and {last}.",
            ]
        )
        if ch.maybe(0.4):
            peak = labels[values.index(max(values))]
            ans += f" The peak is {max(values)} in {peak}."
        return _turn(prompt, ans, ch, start, "chart", str(v0), str(vn), move)
    prompt = q.choice(["What does this chart show?", "Summarize the chart.", "Describe this chart."])
    hi, lo = max(values), min(values)
    body = [
        ch.pick(
            [
                f"This is a {scene.chart} chart of {metric} by {scene.axis}.",
                f"The {scene.chart} chart shows the {metric} for each {scene.axis}.",
            ]
        ),
        f"It covers {join_list(list(labels))}.",
    ]
    if ch.maybe(0.5):
        body.append("The values are " + join_list([f"{v} for {lab}" for lab, v in zip(labels, values)]) + ".")
    body.append(
        ch.pick(
            [
                f"The highest value is {hi} for {labels[values.index(hi)]} and the lowest is {lo} for "
                f"{labels[values.index(lo)]}.",
                f"{capitalize(labels[values.index(hi)])} is the highest with {hi}, and {labels[values.index(lo)]} is "
                f"the lowest with {lo}.",
            ]
        )
    )
    return _turn(prompt, " ".join(body), ch, start, "chart", scene.chart, str(hi), str(lo))


# ----------------------------------------------------------------------------- reasoning
LETTERS = "ABCDE"


def _options(q: random.Random, correct: str, distractors: list[str], k: int = 5) -> tuple[list[str], str]:
    pool = [d for d in dict.fromkeys(distractors) if d != correct]
    opts = [*q.sample(pool, min(k - 1, len(pool))), correct]
    q.shuffle(opts)
    return opts, LETTERS[opts.index(correct)]


def _mc_prompt(question: str, opts: list[str]) -> str:
    lines = [
        question,
        *(f"({LETTERS[i]}) {o}" for i, o in enumerate(opts)),
        "Explain your reasoning, then answer.",
    ]
    return "\n".join(lines)


def reasoning(scene: ShapeScene | ChartScene, q: random.Random, ch: Chooser) -> Turn:
    start = ch.logp
    if isinstance(scene, ShapeScene):
        objs = _reading(scene.objects)
        counts = Counter(o.colour for o in objs)
        top = counts.most_common()
        kinds = ["large"]
        if len(top) == 1 or top[0][1] > top[1][1]:
            kinds.append("mode")
        kind = q.choice(kinds)
        intro = ch.pick(
            [
                "Let me look at each shape.",
                "First, I list the shapes in the image.",
                "Let me go through the shapes one by one.",
            ]
        )
        items = [
            ch.pick(
                [f"{capitalize(_cell(o))} there is {_a(o, True)}.", f"There is {_a(o, True)} {_cell(o)}."]
            )
            for o in objs
        ]
        if kind == "mode":
            mode = top[0][0]
            opts, letter = _options(q, mode, list(COLOURS))
            question = q.choice(
                ["Which color appears most often among the shapes?", "Which color do the most shapes have?"]
            )
            tally = join_list([f"{c} appears {k} {'time' if k == 1 else 'times'}" for c, k in top])
            concl = f"Counting by color, {tally}. So {mode} appears most often."
        else:
            n = sum(o.size == "large" for o in objs)
            opts, letter = _options(q, str(n), [str(k) for k in range(0, 10)])
            question = q.choice(
                ["How many large shapes are in the image?", "How many of the shapes are large?"]
            )
            large = [o.name for o in objs if o.size == "large"]
            concl = (
                f"The large ones are the {join_list(large)}, so there {'is' if n == 1 else 'are'} {n}."
                if large
                else "None of them is large, so there are 0."
            )
    else:
        pairs = list(zip(scene.labels, scene.values))
        kind = q.choice(["second", "above"])
        intro = ch.pick(
            [
                f"Let me read the {scene.metric} for each {scene.axis}.",
                "First, I read every value in the chart.",
            ]
        )
        items = [ch.pick([f"{capitalize(lab)} is {v}.", f"{capitalize(lab)} has {v}."]) for lab, v in pairs]
        if kind == "second":
            ranked = sorted(pairs, key=lambda p: -p[1])
            correct = ranked[1][0]
            opts, letter = _options(q, correct, list(scene.labels))
            question = f"Which {scene.axis} has the second highest {scene.metric}?"
            concl = (
                f"The highest is {ranked[0][0]} with {ranked[0][1]}, and the next one is {ranked[1][0]} "
                f"with {ranked[1][1]}."
            )
        else:
            above = [lab for lab, v in pairs if v > 50]
            n = len(above)
            opts, letter = _options(q, str(n), [str(k) for k in range(0, 8)])
            question = "How many values in the chart are above 50?"
            concl = (
                f"The values above 50 are for {join_list(above)}, so there {'is' if n == 1 else 'are'} {n}."
                if above
                else "No value is above 50, so the answer is 0."
            )
    ans = " ".join([intro, *items, concl, f"Answer: ({letter})"])
    return _turn(_mc_prompt(question, opts), ans, ch, start, "choice", f"({letter})")


# ----------------------------------------------------------------------------- multi-turn
def multi_turn(scene, q: random.Random, ch: Chooser) -> list[Turn]:
    """2-3 turns whose later answers list, filter or copy earlier ones."""
    n_turns = q.choice((2, 3))
    if isinstance(scene, ShapeScene):
        turns = _multi_shapes(scene, q, ch)
    elif isinstance(scene, SignScene):
        turns = _multi_sign(scene, q, ch)
    else:
        turns = _multi_chart(scene, q, ch)
    return turns[:n_turns]


def _multi_shapes(scene: ShapeScene, q: random.Random, ch: Chooser) -> list[Turn]:
    objs = scene.objects
    c = q.choice([o.colour for o in objs])
    members = [o for o in objs if o.colour == c]
    start = ch.logp
    t1 = _count_answer(
        f"How many {c} shapes are there?",
        members,
        f"{c} shapes",
        [f"{article(o.shape)} {o.shape}" for o in _reading(members)],
        ch,
        start,
    )
    start = ch.logp
    ordered = _left_to_right(members)
    if len(ordered) == 1:
        a2 = ch.pick(
            [
                f"There is only one: the {ordered[0].name} {_cell(ordered[0])}.",
                f"It is just the {ordered[0].name}, {_cell(ordered[0])}.",
            ]
        )
    else:
        a2 = "From left to right: " + ", then ".join(f"the {o.name}" for o in ordered) + "."
    t2 = _turn("List them from left to right.", a2, ch, start, "position", *[(o.name,) for o in ordered])
    start = ch.logp
    if q.random() < 0.5:
        large = [o for o in ordered if o.size == "large"]
        if large:
            a3 = " ".join(f"The {o.name} is large and sits {_cell(o)}." for o in large)
        else:
            a3 = ch.pick([f"None of the {c} shapes are large.", "There are no large ones among them."])
        t3 = _turn("Now describe only the large ones.", a3, ch, start, None)
    else:
        t3 = _turn("Repeat your first answer in capital letters.", t1.answer.upper(), ch, start, None)
    return [t1, t2, t3]


def _multi_sign(scene: SignScene, q: random.Random, ch: Chooser) -> list[Turn]:
    start = ch.logp
    text = scene.text
    a1 = ch.pick([f'The sign says "{text}".', f'It says "{text}".', f'"{text}"'])
    t1 = _turn("What does the sign say?", a1, ch, start, "text", f'"{text}"')
    start = ch.logp
    a2 = ch.pick([f'"{text.upper()}"', f'In capital letters: "{text.upper()}".'])
    t2 = _turn("Write the text again in capital letters.", a2, ch, start, "text", text.upper())
    start = ch.logp
    words = scene.words
    n = len(words)
    quoted = join_list(['"' + w + '"' for w in words])
    a3 = f"I read {n} {plural('word', n)}: {quoted}."
    t3 = _turn("How many words did you read?", a3, ch, start, "count", f"{n} {plural('word', n)}")
    return [t1, t2, t3]


def _multi_chart(scene: ChartScene, q: random.Random, ch: Chooser) -> list[Turn]:
    a, b = q.sample(list(scene.labels), 2)
    va, vb = scene.value(a), scene.value(b)
    start = ch.logp
    a1 = ch.pick(
        [f"The {scene.metric} for {a} is {va}.", f"It is {va}.", f"{capitalize(a)} has a value of {va}."]
    )
    t1 = _turn(f"What is the {scene.metric} for {a}?", a1, ch, start, "chart", str(va))
    start = ch.logp
    a2 = ch.pick([f"For {b} it is {vb}.", f"{capitalize(b)} has {vb}.", f"It is {vb} for {b}."])
    t2 = _turn(f"And for {b}?", a2, ch, start, "chart", str(vb))
    start = ch.logp
    hi, lo, vh, vl = (a, b, va, vb) if va > vb else (b, a, vb, va)
    a3 = ch.pick(
        [
            f"{capitalize(hi)} is larger: {vh} is more than {vl}.",
            f"{capitalize(hi)}, because {vh} is greater than {vl}.",
        ]
    )
    t3 = _turn("Which of the two is larger?", a3, ch, start, "chart", hi)
    return [t1, t2, t3]
