"""The drafter contract: what a speculative method implements (and nothing about model internals).

A drafter proposes a token tree each round from the context the engine hands it, and is told
afterwards which nodes were accepted. Everything it needs from the target (hidden states, logits,
embeddings, image spans) arrives through :class:`DecodeContext` and :class:`ForwardOutput`; it
never imports transformers modeling code or touches the target's cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmspec.adapters.base import Capture, ForwardOutput
from mmspec.errors import MmspecError
from mmspec.registry import did_you_mean
from mmspec.tree import DraftTree

if TYPE_CHECKING:
    from mmspec.adapters.base import VLMAdapter


class SpecArgError(MmspecError, ValueError):
    """A ``--spec_args`` key or value that a method does not accept."""


@dataclass
class DecodeContext:
    """The engine's view of one turn, shared with the drafter (read-only for drafters)."""

    tokens: list[int]  # prompt ids + generated ids; the last one is the root of the next tree
    prompt_len: int
    image_spans: list[tuple[int, int]]
    image_token_ids: frozenset[int]
    stop_token_ids: frozenset[int]
    temperature: float
    max_new_tokens: int
    prompt_embeds: Any = None  # [L, H] merged input embeddings when the drafter asked for them
    key: tuple[str, str, int] | None = None  # (task, sample id, turn index) when run by the harness
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def last_token(self) -> int:
        return self.tokens[-1]

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - len(self.tokens) + self.prompt_len


@dataclass
class RoundResult:
    """What the engine tells the drafter after verification."""

    tree: DraftTree
    path: list[int]  # accepted node indices, root first
    bonus: int  # the target's token after the last accepted node (the next root)
    verify: ForwardOutput  # logits/hidden for every tree node


@dataclass(frozen=True)
class RunInfo:
    """Where the harness writes, for drafters that read earlier runs (e.g. ``oracle``)."""

    output_path: Path
    model: str


class Drafter:
    """Base class. Subclasses set ``name``, ``defaults`` and implement ``propose``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: hidden states / extras the target must return at prefill and at each verification
    capture_prefill: Capture = Capture()
    capture_verify: Capture = Capture()

    def __init__(self, adapter: VLMAdapter, **spec_args: Any) -> None:
        self.adapter = adapter
        self.args = parse_spec_args(self.name, self.defaults, spec_args)

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
        return dict(self.args)


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


def parse_spec_args(name: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in given if k not in defaults]
    if unknown:
        k = unknown[0]
        allowed = ", ".join(sorted(defaults)) or "none"
        raise SpecArgError(
            f"--spec_args: {name!r} has no parameter {k!r}{did_you_mean(k, defaults)}; accepted: {allowed}"
        )
    return {k: coerce(name, k, given.get(k, v), v) for k, v in defaults.items()}
