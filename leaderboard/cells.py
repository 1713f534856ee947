"""Plain-text cell values shared by the Markdown table and the HTML page (escaping is theirs)."""

from __future__ import annotations

import math
import re
from typing import Any

from mmspec.leaderboard.collect import is_number

NULL = "—"
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
FLAG_SHORT = {
    "untrained_draft": "untrained draft",
    "timing_noise": "timing noise",
    "timing_not_meaningful": "timing not meaningful",
    "not_lossless": "not lossless",
}


def fixed(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if is_number(value) else NULL


def count(value: Any) -> str:
    if not is_number(value):
        return NULL
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def percent(value: Any) -> str:
    """A rate as a percentage, rounded down so that anything below 1 never shows as 100%."""
    if not is_number(value):
        return NULL
    return f"{math.floor(value * 1000 + 1e-9) / 10:.1f}%"


def millis(seconds: Any) -> str:
    return f"{seconds * 1000:.1f}" if is_number(seconds) else NULL


def text(value: Any) -> str:
    return NULL if value is None or value == "" else str(value)


def method(entry: dict[str, Any]) -> str:
    """The spec, with the variant that tells apart runs of one (model, spec)."""
    return text(entry.get("spec")) + (f" ({entry['variant']})" if entry.get("variant") else "")


def dtype(entry: dict[str, Any]) -> str:
    config = entry.get("config") or {}
    model_args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
    return text(config.get("dtype") or model_args.get("dtype"))


def device(entry: dict[str, Any]) -> str:
    config, env = entry.get("config") or {}, entry.get("environment") or {}
    return text(env.get("device_name") or env.get("device") or config.get("device"))


def exact_match(entry: dict[str, Any]) -> str:
    """The exact-match rate with its verdict: ``lossless``, ``NOT lossless`` or ``unchecked``."""
    verdict = {True: "lossless", False: "NOT lossless", None: "unchecked"}[entry.get("lossless")]
    rate = percent(entry.get("exact_match_rate"))
    return verdict if rate == NULL else f"{rate} {verdict}"


def flags(entry: dict[str, Any]) -> str:
    codes = entry.get("flags") if isinstance(entry.get("flags"), list) else []
    return ", ".join(FLAG_SHORT.get(c, str(c)) for c in codes)
