"""Name -> implementation tables with lazy imports and close-match errors."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


class UnknownNameError(KeyError):
    """An unknown task/model/spec name; ``str()`` lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def unknown(kind: str, name: str, known: Iterable[str], list_flag: str) -> UnknownNameError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{hint} Run `mmspec-harness --list {list_flag}` to see all {len(known)}."
    )


def load_object(target: str) -> Any:
    """Import ``"package.module:Attribute"``."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
