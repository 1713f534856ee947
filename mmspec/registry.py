"""Name -> implementation tables: lazy imports and the one "did you mean" helper every error uses."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any

from mmspec.errors import MmspecError


class UnknownNameError(MmspecError, KeyError):
    """An unknown task/model/spec name; ``str()`` lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a misspelt ``word`` (best first)."""
    return difflib.get_close_matches(str(word), sorted(set(choices)), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """`` (did you mean `a`, `b`?)`` for a misspelt ``word``, or ``""`` when nothing is close."""
    close = close_matches(word, choices, n)
    return f" (did you mean {', '.join(f'`{c}`' for c in close)}?)" if close else ""


def unknown(kind: str, name: str, known: Iterable[str], list_flag: str) -> UnknownNameError:
    """The error for an unknown ``--model``/``--spec``/``--tasks`` name."""
    known = sorted(known)
    return UnknownNameError(
        f"unknown {kind} {name!r}{did_you_mean(name, known)}. "
        f"Run `mmspec-harness --list {list_flag}` to see all {len(known)}."
    )


def load_object(target: str) -> Any:
    """Import ``"package.module:Attribute"``."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
