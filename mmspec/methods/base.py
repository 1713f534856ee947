"""The drafter contract: what a speculative method implements (and nothing about model internals).

A drafter proposes a token tree each round from the context the engine hands it, and is told
afterwards which nodes were accepted. Everything it needs from the target arrives through the
contract types (:mod:`mmspec.contract`: hidden states, logits, embeddings, image spans) and its
:class:`~mmspec.target.TargetView`; it never imports transformers modeling code or touches the
target's cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mmspec.contract import Capture, DecodeContext, ForwardOutput, RoundResult, RunInfo
from mmspec.errors import MmspecError
from mmspec.registry import did_you_mean
from mmspec.target import TargetView
from mmspec.tree import DraftTree

if TYPE_CHECKING:
    from mmspec.adapters.base import VLMAdapter

__all__ = ["Capture", "DecodeContext", "Drafter", "ForwardOutput", "RoundResult", "RunInfo", "SpecArgError"]


class SpecArgError(MmspecError, ValueError):
    """A ``--spec_args`` key or value that a method does not accept."""


class Drafter:
    """Base class. Subclasses set ``name``, ``defaults`` and implement ``propose``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: named bundles of settings (``--spec_args preset=NAME``), e.g. ``mmspec``: how MMSpec ran it
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: hidden states / extras the target must return at prefill and at each verification
    capture_prefill: Capture = Capture()
    capture_verify: Capture = Capture()
    #: proposes nothing, ever (the baseline): the engine may queue its greedy forwards ahead of the
    #: host (:mod:`mmspec.adapters.chained_decode`), since no round depends on a drafter's decision
    plain_decoding: ClassVar[bool] = False

    def __init__(self, target: VLMAdapter | TargetView, **spec_args: Any) -> None:
        #: the only handle on the target model a drafter gets
        self.target = target if isinstance(target, TargetView) else TargetView(target)
        self.preset, spec_args = apply_preset(self.name, self.preset_table(self.target), spec_args)
        self.args = parse_spec_args(self.name, self.defaults, spec_args)

    @classmethod
    def preset_table(cls, target: TargetView) -> dict[str, dict[str, Any]]:
        """``presets``; a method whose preset depends on the target (e.g. its family) overrides this."""
        return cls.presets

    # --------------------------------------------------------------- lifecycle
    def attach(self, run: RunInfo) -> None:
        """Called once by the harness before the first sample (output folder, model name)."""

    def reset(self) -> None:
        """Forget per-sample state (called before every sample)."""

    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        """Start a turn: the prompt has been prefilled and the first token chosen."""

    def propose(self, ctx: DecodeContext) -> DraftTree:
        """The tree to verify this round; root = ``ctx.last_token``."""
        return DraftTree.root_only(ctx.last_token)

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        """Learn from a verified round (``ctx.tokens`` already holds the accepted tokens)."""

    def max_tree_size(self) -> int:
        """Upper bound on tree nodes, used to reserve KV capacity."""
        return 1

    def prepare(self) -> int:
        """Graph mode: capture the drafter's own device steps before anything is timed.

        Returns how many were captured (draft-model methods; training-free ones have none)."""
        return 0

    @property
    def capture_time_s(self) -> float:
        return 0.0

    def skip_drafting(self, ctx: DecodeContext) -> bool:
        """ViSkip-style gates: True makes the next round a plain target step."""
        return False

    def describe(self) -> dict[str, Any]:
        """Resolved parameters, recorded in results.json."""
        return {**self.args, **({"preset": self.preset} if self.preset else {})}


def coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Turn a ``--spec_args`` string into the type of the default."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (list, tuple)):
            return type(default)(int(v) if v.strip().lstrip("-").isdigit() else v for v in value.split(":"))
    except ValueError:
        raise SpecArgError(
            f"--spec_args {key}={value!r} for {name!r}: expected a {type(default).__name__} like {default!r}"
        ) from None
    return value


def apply_preset(
    name: str, presets: dict[str, dict[str, Any]], given: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """Settings of ``preset=NAME`` (if given) under the user's own: explicit arguments win."""
    given = dict(given)
    preset = given.pop("preset", None)
    if preset in (None, ""):
        return None, given
    if preset not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise SpecArgError(f"--spec_args preset={preset!r}: {name!r} has no such preset (known: {known})")
    return str(preset), {**presets[preset], **given}


def parse_spec_args(name: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in given if k not in defaults]
    if unknown:
        k = unknown[0]
        allowed = ", ".join(sorted(defaults)) or "none"
        raise SpecArgError(
            f"--spec_args: {name!r} has no parameter {k!r}{did_you_mean(k, defaults)}; accepted: {allowed}"
            " (and preset=NAME)"
        )
    return {k: coerce(name, k, given.get(k, v), v) for k, v in defaults.items()}
