"""Seeded random choices that keep the log-probability of what they chose.

The generator draws two kinds of randomness: the *scene* (visible in the image or stated in the
prompt, so a perfect model can recover it) and the *phrasing* of an answer (paraphrases, optional
clauses, orderings that nothing in the input determines). Only the second kind is irreducible, so
a :class:`Chooser` used for phrasing sums ``log p`` of every choice: ``-logp`` is the answer's
entropy contribution, and a target's excess loss is its held-out loss minus that entropy.
Options offered to one choice must give distinct text, or the entropy is overstated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Chooser:
    """``random.Random`` plus a running sum of the log-probabilities of the choices made."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.logp = 0.0

    def pick(self, options: Sequence[T], weights: Sequence[float] | None = None) -> T:
        """One option; uniform unless ``weights`` (need not sum to 1)."""
        if not options:
            raise ValueError("pick from an empty list")
        if len(options) == 1:
            return options[0]
        if weights is None:
            i = self.rng.randrange(len(options))
            self.logp += -math.log(len(options))
            return options[i]
        total = float(sum(weights))
        i = self.rng.choices(range(len(options)), weights=weights)[0]
        self.logp += math.log(weights[i] / total)
        return options[i]

    def maybe(self, p: float) -> bool:
        """True with probability ``p``."""
        if p <= 0.0 or p >= 1.0:
            return p >= 1.0
        hit = self.rng.random() < p
        self.logp += math.log(p if hit else 1.0 - p)
        return hit

    def order(self, orderings: Sequence[Sequence[T]]) -> list[T]:
        """One of several orderings of the same items; duplicates (same sequence) count once."""
        distinct: list[list[T]] = []
        for o in orderings:
            if list(o) not in distinct:
                distinct.append(list(o))
        return self.pick(distinct)


def join_list(items: Sequence[str], conj: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (no Oxford comma: one fixed style, no hidden choice)."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def plural(noun: str, n: int) -> str:
    if n == 1:
        return noun
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
