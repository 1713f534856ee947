"""``oracle`` (benchmarking only): drafts the baseline's own output to fix the acceptance length.

Each round it proposes the next ``k`` tokens of the reference (baseline) output for the same
(task, sample, turn), optionally followed by ``wrong_tail`` tokens that cannot match. The engine
then accepts exactly ``k`` drafts per round (fewer at the end), so the end-to-end speedup at a known
MAT of ``k + 1`` isolates the cost of verification and of the loop itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmspec.methods.base import DecodeContext, Drafter, RunInfo
from mmspec.records import RecordFile
from mmspec.tree import DraftTree


class Oracle(Drafter):
    name = "oracle"
    paper = "benchmark aid: drafts the reference output with k correct tokens per round"
    defaults = {"k": 4, "wrong_tail": 0, "reference": ""}

    def __init__(self, adapter: Any, **spec_args: Any) -> None:
        super().__init__(adapter, **spec_args)
        if self.args["k"] < 0 or self.args["wrong_tail"] < 0:
            raise ValueError("oracle: k and wrong_tail must be >= 0")
        self.references: dict[tuple[str, str, int], list[int]] = {}
        self._ref: list[int] | None = None

    def attach(self, run: RunInfo) -> None:
        folder = Path(self.args["reference"] or run.output_path / run.model / "baseline")
        self.references = load_references(folder)
        if not self.references:
            raise ValueError(
                f"oracle: no baseline records under {folder}; run --spec baseline first "
                "(same --output_path) or pass --spec_args reference=DIR"
            )

    def begin(self, ctx: DecodeContext, prefill: Any) -> None:
        self._ref = self.references.get(ctx.key) if ctx.key is not None else None

    def propose(self, ctx: DecodeContext) -> DraftTree:
        ref, gen = self._ref, ctx.generated
        if ref is None or gen != ref[: len(gen)]:
            return DraftTree.root_only(ctx.last_token)  # off the reference (e.g. sampling): draft nothing
        pos = len(gen) + self.args["k"]
        draft = ref[len(gen) : pos]
        # The first wrong token differs from the one the target will emit next; later ones are never reached.
        wrong = [1 if pos < len(ref) and ref[pos] == 0 else 0] * self.args["wrong_tail"]
        return DraftTree.chain(ctx.last_token, [*draft, *wrong])

    def max_tree_size(self) -> int:
        return 1 + self.args["k"] + self.args["wrong_tail"]


def load_references(folder: Path) -> dict[tuple[str, str, int], list[int]]:
    """(task, id, turn) -> token ids of a baseline run folder (``<out>/<model>/baseline``)."""
    refs: dict[tuple[str, str, int], list[int]] = {}
    for path in sorted(Path(folder).glob("*/samples.jsonl")):
        for rec in RecordFile(path).read().values():
            if rec.status == "ok":
                for i, turn in enumerate(rec.turns):
                    refs[(rec.task, rec.id, i)] = turn.token_ids
    return refs
