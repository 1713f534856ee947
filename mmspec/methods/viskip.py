"""ViSkip: skip drafting for a round when the target is attending to the image.

After every round the target measures, from the query row that produced the bonus token (the
last accepted node) and the cached keys of the last decoder layer, the share of attention that
falls on the prompt's image tokens (averaged over heads). When it reaches
``visual_attn_threshold`` the next round takes one plain target step instead of drafting; the
gate is measured again after that step. The drafter still observes every round, so its state
stays in step. Skipped rounds are counted in the records (``skipped_rounds``). Only one attention
row is computed per round; the model keeps its normal attention kernel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mmspec.methods.base import DecodeContext, Drafter, ForwardOutput, RoundResult, SpecArgError
from mmspec.methods.msd import MSD
from mmspec.methods.sam import SuffixAutomaton
from mmspec.methods.vispec import ViSpec
from mmspec.tree import DraftTree


class VisualSkip(Drafter):
    """Wraps a drafter (``inner``) with the visual-attention gate."""

    inner_cls: ClassVar[type[Drafter]]

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        self.threshold = float(self.args["visual_attn_threshold"])
        if self.threshold < 0:
            raise SpecArgError(f"{self.name}: visual_attn_threshold must be >= 0")
        inner_args = {k: v for k, v in self.args.items() if k != "visual_attn_threshold"}
        self.inner = self.inner_cls(self.target, **inner_args)
        self.capture_prefill = self.inner.capture_prefill
        self.capture_verify = self.inner.capture_verify
        self.target.enable_query_tap()
        self._skip = False
        self.last_mass: float | None = None

    def _gate(self, ctx: DecodeContext, node: int) -> None:
        self.last_mass = self.target.visual_attention_mass(node, ctx.image_spans)
        self._skip = self.last_mass >= self.threshold

    @classmethod
    def preset_table(cls, target: Any) -> dict[str, dict[str, Any]]:
        """The inner method's presets plus the gate's; MMSpec's MSD-vskip scripts used 30 nodes."""
        table = {name: dict(values) for name, values in cls.inner_cls.preset_table(target).items()}
        mmspec = table.setdefault("mmspec", {})
        mmspec["visual_attn_threshold"] = 0.35
        if cls.inner_cls is MSD:
            mmspec["total_token"] = 30
        return table

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "visual_attn_threshold": self.threshold,
                **({"preset": self.preset} if self.preset else {})}  # fmt: skip

    def attach(self, run: Any) -> None:
        self.inner.attach(run)

    def reset(self) -> None:
        self.inner.reset()

    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        self.inner.begin(ctx, prefill)
        self._gate(ctx, 0)  # the prefill's last query row produced the first token

    def skip_drafting(self, ctx: DecodeContext) -> bool:
        return self._skip

    def propose(self, ctx: DecodeContext) -> DraftTree:
        return self.inner.propose(ctx)

    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        self.inner.observe(ctx, result)
        self._gate(ctx, result.path[-1])

    def max_tree_size(self) -> int:
        return self.inner.max_tree_size()

    def prepare(self) -> int:
        return self.inner.prepare()

    @property
    def capture_time_s(self) -> float:
        return self.inner.capture_time_s


def _variant(inner: type[Drafter], name: str) -> type[VisualSkip]:
    return type(
        name,
        (VisualSkip,),
        {
            "name": f"{inner.name}_vskip",
            "paper": f"ViSkip gate (MMSpec, arXiv 2603.14989) over {inner.name}",
            "defaults": {**inner.defaults, "visual_attn_threshold": 0.35},
            "inner_cls": inner,
            "__doc__": f"``{inner.name}`` with the ViSkip visual-attention gate.",
        },
    )


ViSpecSkip = _variant(ViSpec, "ViSpecSkip")
MSDSkip = _variant(MSD, "MSDSkip")
SAMSkip = _variant(SuffixAutomaton, "SAMSkip")
