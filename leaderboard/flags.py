"""Honesty flags: what a reader must know before trusting a leaderboard row.

A speedup is only as good as the run behind it: an untrained draft, CPU or tiny-model timings, a
speedup that its MAT cannot explain, or outputs that differ from plain decoding all change what the
number means. Each flag has a stable code (in leaderboard.json) and a sentence (on the page).
"""

from __future__ import annotations

from typing import Any

from mmspec.leaderboard.collect import is_number

# MAT bounds the speedup from above (each round costs at least one plain forward); a speedup this
# much above it can only come from timing noise.
NOISE_MARGIN = 1.1

FLAGS: dict[str, str] = {
    "untrained_draft": "untrained draft (checkpoint=random): its acceptance says nothing about the method",
    "timing_noise": f"speedup above {NOISE_MARGIN}× its MAT, which bounds it: timing noise",
    "timing_not_meaningful": "CPU or tiny-model timing: speedups and tokens/s are not meaningful",
    "not_lossless": "output differs from plain decoding on some turns",
}


def lossless(entry: dict[str, Any]) -> bool | None:
    """True when every compared turn equals the baseline's, False when one differs, None unchecked."""
    rate, compared = entry.get("exact_match_rate"), entry.get("n_compared")
    if not is_number(rate) or (is_number(compared) and compared <= 0):
        return None
    return rate >= 1.0


def trained(config: dict[str, Any]) -> bool | None:
    """False for a draft built untrained (``checkpoint=random``), True for a loaded one, else None."""
    args = config.get("spec_args") if isinstance(config.get("spec_args"), dict) else {}
    if args.get("checkpoint") == "random" or args.get("trained") is False or config.get("trained") is False:
        return False
    if args.get("trained") is True or config.get("trained") is True:
        return True
    return None


def timing_meaningful(model: Any, config: dict[str, Any], environment: dict[str, Any]) -> bool:
    """False for CPU runs and the built-in random tiny models, whose timings measure overheads."""
    device = environment.get("device") or config.get("device")
    return not (device == "cpu" or str(model).startswith("tiny-"))


def timing_noise(entry: dict[str, Any]) -> bool:
    """A speedup (global, else paired) above what the MAT allows, by more than the margin."""
    mat = entry.get("mat")
    speedup = entry.get("speedup_global")
    if not is_number(speedup):
        speedup = entry.get("speedup_paired")
    return is_number(mat) and mat > 0 and is_number(speedup) and speedup > mat * NOISE_MARGIN


def entry_flags(entry: dict[str, Any]) -> list[str]:
    """The codes (keys of :data:`FLAGS`) that apply to one leaderboard entry, in FLAGS order."""
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    env = entry.get("environment") if isinstance(entry.get("environment"), dict) else {}
    found = {
        "untrained_draft": trained(config) is False,
        "timing_noise": timing_noise(entry),
        "timing_not_meaningful": not timing_meaningful(entry.get("model"), config, env),
        "not_lossless": lossless(entry) is False,
    }
    return [code for code in FLAGS if found[code]]
