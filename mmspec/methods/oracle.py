"""``oracle`` (benchmarking only): drafts the baseline's own output to fix the acceptance length.

Each round it proposes the next ``k`` tokens of the reference (baseline) output for the same
(task, sample, turn), optionally followed by ``wrong_tail`` tokens that cannot match, and padded
with wrong sibling branches up to ``tree_nodes`` nodes (to price a tree of realistic size). The
engine then accepts exactly ``k`` drafts per round (fewer at the end), so the end-to-end speedup at
a known MAT of ``k + 1`` isolates the cost of verification and of the loop itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmspec.methods.base import DecodeContext, Drafter, RunInfo, SpecArgError
from mmspec.records import read_run
from mmspec.tree import DraftTree


class Oracle(Drafter):
    name = "oracle"
    paper = "benchmark aid: drafts the reference output with k correct tokens per round"
    defaults = {"k": 4, "wrong_tail": 0, "tree_nodes": 0, "reference": ""}

    def __init__(self, target: Any, **spec_args: Any) -> None:
        super().__init__(target, **spec_args)
        if min(self.args["k"], self.args["wrong_tail"], self.args["tree_nodes"]) < 0:
            raise SpecArgError("oracle: k, wrong_tail and tree_nodes must be >= 0")
        self.references: dict[tuple[str, str, int], list[int]] = {}
        self._ref: list[int] | None = None

    def attach(self, run: RunInfo) -> None:
        folder = Path(self.args["reference"] or run.output_path / run.model / "baseline")
        self.references = load_references(folder)
        if not self.references:
            raise SpecArgError(
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
        tree = DraftTree.chain(ctx.last_token, [*draft, *wrong])
        return self._pad(tree, ref[len(gen) : pos + 1])

    def _pad(self, tree: DraftTree, truth: list[int]) -> DraftTree:
        """Add wrong leaf siblings, round-robin over the chain nodes, up to ``tree_nodes`` nodes."""
        want = self.args["tree_nodes"]
        if len(tree) >= want:
            return tree
        tokens, parents = list(tree.tokens), list(tree.parents)
        chain = list(range(len(tokens)))
        used = {i: {tokens[i + 1]} if i + 1 < len(tokens) else set() for i in chain}
        for i in chain:  # the true next token at a chain node must stay unproposed where the chain ends
            if i < len(truth):
                used[i].add(truth[i])
        filler, node = 2, 0
        while len(tokens) < want:
            parent = chain[node % len(chain)]
            while filler in used[parent]:
                filler += 1
            used[parent].add(filler)
            tokens.append(filler)
            parents.append(parent)
            node += 1
        return DraftTree(tokens, parents)

    def max_tree_size(self) -> int:
        return max(1 + self.args["k"] + self.args["wrong_tail"], self.args["tree_nodes"])


def load_references(folder: Path) -> dict[tuple[str, str, int], list[int]]:
    """(task, id, turn) -> token ids of a baseline run folder (``<out>/<model>/baseline``)."""
    return {key: turn.token_ids for key, turn in read_run(folder).turns().items()}
