"""The shared machinery of feature-level draft models (EAGLE-1/2/3, MSD, ViSpec).

Convention (EAGLE's): draft position ``t`` reads the pair (embedding of token ``t+1``, target
feature at ``t``) and predicts the feature at ``t+1``, whose logits give token ``t+2``.

- ``begin``: after the target's prefill, the draft runs over every prompt pair (its own KV cache)
  and keeps the output at the last one, which scores the children of the tree root.
- ``propose``: level by level, the kept beams are fed through the draft with an ancestor mask over
  the draft cache (tree entries are appended after the stable prefix); candidates are scored by
  cumulative log-probability; the host selects the tree once per round.
- ``observe``: tree entries are dropped, and the accepted pairs (accepted tokens and bonus, with
  the target's features at the accepted nodes) are appended — the draft stays in step with exactly
  the tokens the target committed.

Execution follows the target's mode. The prompt pass is eager (like the target's prefill). A
round's whole proposal (every level, top-k, beam re-ranking) and the accepted-pairs append are
each one *step* over static buffers: the draft cache is viewed through a length bucket, the
stable length and position live in a device tensor, masks are built on the device. In ``graph``
mode each step is a CUDA graph (one launch per round for drafting, one for appending) and the
draft layer's norms/MLP are compiled like the target's; ``static`` runs the same steps eagerly
(CPU tests); ``eager`` uses exact shapes.

Methods differ only in their network, their features and how the prompt becomes draft inputs,
through the hooks ``prompt_inputs``, ``tree_inputs``, ``features`` and ``topk``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch

from mmspec.adapters.base import LEN_STEP, Capture, ForwardOutput
from mmspec.graphs import Step, StepCache, round_up
from mmspec.kv_cache import EngineCache
from mmspec.methods.autotune import autotune_total_tokens
from mmspec.methods.base import DecodeContext, Drafter, RoundResult, SpecArgError
from mmspec.methods.checkpoints import default_checkpoint, load_into, read_checkpoint
from mmspec.methods.draft_configs import published_config
from mmspec.methods.draft_nets import DraftConfig
from mmspec.methods.draft_tree import StaticTree, eagle2_threshold_cut, select_tree
from mmspec.tree import DraftTree


def seeded_build(device: torch.device, seed: int, build: Any, *args: Any) -> torch.nn.Module:
    """An untrained draft (``checkpoint=random``), initialised on the target's device (fast for 7B
    shapes) from a fixed seed, without disturbing the global random state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        return build(*args)


def image_mask(ids: torch.Tensor, image_token_ids: frozenset[int]) -> torch.Tensor:
    """Which of ``ids`` are image placeholders. Prompt pair row ``t`` holds token ``t + 1`` in
    ``_prompt_ids`` (``ids = tokens[1:]``) and token ``t`` in ``tokens[:-1]``: pass the one meant."""
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for tok in image_token_ids:
        mask |= ids == tok
    return mask


class FeatureDrafter(Drafter):
    """Base class; subclasses set ``checkpoint_method`` and build their network."""

    checkpoint_method: ClassVar[str] = "eagle"
    #: added to the draft positions of dynamic-tree levels (MSD's MMSpec-LLaVA compatibility)
    tree_position_offset: int = 0
    static_choices: ClassVar[tuple | None] = None  # EAGLE-1's fixed tree; None = EAGLE-2 dynamic tree
    require_config: ClassVar[bool] = False

    def __init__(self, adapter: Any, **spec_args: Any) -> None:
        super().__init__(adapter, **spec_args)
        self.total_token_auto = self.args.get("total_token") == -1
        if self.total_token_auto:
            self.args["total_token"] = autotune_total_tokens(adapter)
        for key in ("depth", "top_k", "total_token"):
            if key in self.args and self.args[key] < 1:
                raise SpecArgError(
                    f"{self.name}: {key} must be >= 1 (got {self.args[key]}; total_token=-1 picks it by timing)"
                )
        self.net, self.checkpoint_info = self._load()
        self.net.to(device=adapter.device, dtype=adapter.dtype).eval().requires_grad_(False)
        self.feature_layers = self.choose_feature_layers()
        self.capture_prefill = Capture(hidden=self.feature_layers, embeds=True)
        self.capture_verify = Capture(hidden=self.feature_layers)
        cfg, dev = self.net.config, adapter.device
        capacity = int(adapter.cache.capacity)
        self.cache = EngineCache(1, cfg.num_key_value_heads, cfg.head_dim, capacity, adapter.dtype, dev)
        self._static = StaticTree(self.static_choices) if self.static_choices else None
        self._stable = 0  # draft-cache rows holding accepted pairs (tree entries live beyond them)
        self._next_pos = 0  # draft position of the next pair (the tree root's)
        # device-side state read by the steps: [stable, next position, accepted rows], ids, rows
        p = self._path_max()
        self._host = torch.zeros(3 + 2 * p, dtype=torch.long, pin_memory=dev.type == "cuda")
        self._dev = torch.zeros(3 + 2 * p, dtype=torch.long, device=dev)
        self._last = torch.zeros(1, cfg.hidden_size, dtype=adapter.dtype, device=dev)  # newest draft output
        self._acc_feats = torch.zeros(p, self.feature_width(), dtype=adapter.dtype, device=dev)
        self._arange = torch.arange(capacity, device=dev)
        self._tril = torch.ones(p, p, dtype=torch.bool, device=dev).tril()
        if self._static is not None:
            self._static_plan = self._plan_static(self._static)
        self._steps: StepCache | None = None
        if adapter.execution != "eager":
            self._steps = StepCache(dev, adapter.execution)
            if adapter.execution == "graph":
                from mmspec.fusion import compile_layers

                layers = getattr(self.net, "layers", None) or [self.net.midlayer]
                compile_layers(layers, getattr(self.net, "norm", None))

    # ---------------------------------------------------------------- loading
    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        raise NotImplementedError

    def draft_config(self, raw: dict[str, Any]) -> DraftConfig:
        """The network's settings from a draft ``config.json`` (methods add their loaders' rules)."""
        return DraftConfig.from_json(raw)

    def random_config(self) -> DraftConfig:
        """What a published draft of this target would carry (``checkpoint=random``, a missing config)."""
        a = self.adapter
        pad = getattr(a.tokenizer, "pad_token_id", None)
        return self.draft_config(published_config(self.checkpoint_method, a.family, a.text_config, pad))

    def _load(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        source = self.args.get("checkpoint") or default_checkpoint(
            self.adapter.pretrained, self.checkpoint_method
        )
        if not source:
            raise SpecArgError(
                f"{self.name}: no published {self.checkpoint_method} draft is known for {self.adapter.pretrained!r}; "
                "pass --spec_args checkpoint=DIR (a draft in the published layout) or checkpoint=random"
            )
        if source == "random":
            net = seeded_build(
                self.adapter.device, int(self.args.get("seed", 0)), self.build, self.random_config()
            )
            with torch.no_grad():  # published drafts carry a frozen copy of the target's embeddings
                net.embed_tokens.weight.copy_(self.adapter.embed_tokens.weight)
            return net, {"checkpoint": "random", "trained": False}
        ckpt = read_checkpoint(source, method=self.checkpoint_method, require_config=self.require_config)
        cfg = self.draft_config(ckpt.config) if ckpt.config else self.random_config()
        self.check_config(cfg, source)
        net = self.build(cfg)
        filled = load_into(net, ckpt.state_dict, source=str(source), fill=self.fill_tensors())
        info = {"checkpoint": str(source), "trained": True, "files": ckpt.files, "filled": filled,
                "folder": str(ckpt.folder), "config": ckpt.config or {}}  # fmt: skip
        return net, info

    def fill_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors some published formats omit: the draft's embedding is the target's."""
        return {"embed_tokens.weight": self.adapter.embed_tokens.weight.detach().cpu()}

    def check_config(self, cfg: DraftConfig, source: Any) -> None:
        if cfg.hidden_size != self.adapter.hidden_size:
            raise SpecArgError(
                f"{self.name}: draft {source} has hidden_size {cfg.hidden_size}, the target "
                f"{self.adapter.pretrained} has {self.adapter.hidden_size}: not a draft for this model"
            )

    def describe(self) -> dict[str, Any]:
        info = {k: v for k, v in self.checkpoint_info.items() if k != "config"}
        auto = {"total_token_auto": True} if self.total_token_auto else {}
        return {**super().describe(), **info, **auto, "feature_layers": list(self.feature_layers)}

    def feature_width(self) -> int:
        """Width of one position's target features (EAGLE-3 concatenates three layers)."""
        return int(self.adapter.hidden_size)

    # ------------------------------------------------------------------ hooks
    def choose_feature_layers(self) -> tuple[int, ...]:
        return (self.adapter.num_layers,)  # the final-normed hidden state (what the lm_head reads)

    def features(self, hidden: dict[int, torch.Tensor], rows: Any = slice(None)) -> torch.Tensor:
        return hidden[self.feature_layers[0]][rows]

    def prompt_inputs(
        self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        """Draft inputs and positions for the prompt pairs (default: one fused row per pair)."""
        return self.net.fuse(embeds, feats), torch.arange(feats.shape[0], device=feats.device)

    def tree_inputs(self, embeds: torch.Tensor, hidden: torch.Tensor) -> Any:
        return self.net.fuse(embeds, hidden)

    def accepted_inputs(self, embeds: torch.Tensor, feats: torch.Tensor) -> Any:
        return self.net.fuse(embeds, feats)

    def topk(self, hidden: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k log-probabilities and target token ids of the draft outputs ``hidden`` [n, H]."""
        logp = torch.log_softmax(self.adapter.lm_head(hidden).float(), dim=-1)
        return logp.topk(k, dim=-1)

    def token_embeds(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net.embed_tokens(ids)

    def merged_image_embeds(
        self, ctx: DecodeContext, ids: torch.Tensor, embeds: torch.Tensor
    ) -> torch.Tensor:
        """``embeds`` (one row per prompt pair) with the target's merged input embeddings
        (projected vision features) at image rows."""
        if ctx.prompt_embeds is None:
            return embeds
        rows = image_mask(ids, ctx.image_token_ids)
        rows[-1] = False  # the last pair's token is the first generated one (text)
        merged = ctx.prompt_embeds[1:].to(embeds.dtype)
        out = embeds.clone()
        out[:-1][rows[:-1]] = merged[rows[:-1]]
        return out

    # ------------------------------------------------------------- draft runs
    def _path_max(self) -> int:
        """Most pairs one round can append: the root, every draft level accepted, and the bonus
        token's pair is the next root's (so root + levels). A dynamic tree has ``depth + 1`` levels
        (the first expansion plus ``depth`` more), a static tree as many as its longest path."""
        levels = self._static.depth if self._static is not None else int(self.args["depth"]) + 1
        return levels + 1

    def _tree_entries(self) -> int:
        """Draft-cache rows one proposal writes beyond the stable prefix."""
        if self._static is not None:
            return sum(len(level["rows"]) for level in self._static_plan)
        return int(self.args["depth"]) * int(self.args["top_k"])

    def _visible(self, anc: torch.Tensor, view: int) -> torch.Tensor:
        """[n, view] mask: the stable prefix, plus tree entries ``anc`` [n, A] (offsets past it)."""
        rel = self._arange[:view] - self._dev[0]
        width = anc.shape[1]
        in_tree = (rel >= 0) & (rel < width)
        return (rel < 0)[None] | (anc[:, rel.clamp(0, width - 1)] & in_tree[None])

    def _run(self, x: Any, positions: torch.Tensor, visible: torch.Tensor, write: torch.Tensor, view: int):
        """Rows ``x`` written at cache rows ``write`` [n], attending to ``visible`` [n, view]."""
        self.cache.set_write_index(write, view)
        zero = torch.zeros((), dtype=self.adapter.dtype, device=positions.device)
        mask = torch.where(visible, zero, torch.finfo(self.adapter.dtype).min)[None, None]
        batched = tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]
        return self.net.run(batched, positions[None], mask, self.cache)[0]

    def _view(self, entries: int) -> int | None:
        """KV view of a step writing ``entries`` rows: a bucket in static/graph mode, exact eagerly."""
        if self._steps is None:
            return None
        return min(round_up(self._stable + entries, LEN_STEP), self.cache.capacity)

    def _graph_step(self, kind: str, view: int) -> Step:
        """The static-shape ``propose`` or ``append`` (padded to the longest path) step for a KV view."""
        if kind == "propose":
            return self._steps.get((kind, view), lambda: Step({}, partial(self._propose_fn(), view)))
        return self._steps.get(
            (kind, view), lambda: Step({}, partial(self._append_rows, view, self._path_max()))
        )

    def _sync_state(self, n: int = 0, ids: list[int] = (), rows: list[int] = ()) -> None:
        """One host->device copy of the bookkeeping the next steps read."""
        p = self._path_max()
        host = self._host
        host[:3] = torch.tensor([self._stable, self._next_pos, n])
        if n:
            host[3 : 3 + n] = torch.tensor(ids)
            host[3 + p : 3 + p + n] = torch.tensor(rows)
        self._dev.copy_(host, non_blocking=True)

    @torch.no_grad()
    def prepare(self) -> int:
        """Graph mode: capture the propose and append steps for every KV view before timing."""
        if self._steps is None or self._steps.mode != "graph":
            return 0
        self._stable = self._next_pos = 0
        self._sync_state(1, [0], [0])  # scratch state: one accepted row (the append reads row n - 1)
        count = 0
        need = max(self._tree_entries(), self._path_max())
        for view in range(round_up(need, LEN_STEP), self.cache.capacity + 1, LEN_STEP):
            for kind in ("propose", "append"):
                self._steps.capture(self._graph_step(kind, view))
                count += 1
        return count

    @property
    def capture_time_s(self) -> float:
        return self._steps.capture_time_s if self._steps is not None else 0.0

    def _propose_fn(self):
        return self._propose_static_rows if self._static is not None else self._propose_dynamic_rows

    # --------------------------------------------------------------- lifecycle
    @torch.no_grad()
    def begin(self, ctx: DecodeContext, prefill: ForwardOutput) -> None:
        dev = self.adapter.device
        self.cache.reset()
        budget = ctx.prompt_len + ctx.max_new_tokens + self._tree_entries() + self._path_max() + LEN_STEP
        if self.cache.ensure_capacity(budget):
            self._arange = torch.arange(self.cache.capacity, device=dev)
            if self._steps is not None:
                self._steps.clear()  # captured steps point at the old buffers
        ids = torch.tensor(
            ctx.tokens[1 : ctx.prompt_len + 1], device=dev
        )  # token t+1 for every prompt position t
        feats = self.features(prefill.hidden)
        self._prompt_ids = ids
        x, positions = self.prompt_inputs(ctx, self.token_embeds(ids), feats)
        n = int(positions.shape[0])
        self.cache.prepare_write(n)
        batched = tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]
        out = self.net.run(batched, positions[None], None, self.cache)[0]  # causal, empty cache
        self.cache.commit(n)
        self._last.copy_(out[-1:])
        self._stable, self._next_pos = n, ctx.prompt_len
        self._sync_state()

    @torch.no_grad()
    def observe(self, ctx: DecodeContext, result: RoundResult) -> None:
        path = result.path
        n = len(path)
        ids = [result.tree.tokens[i] for i in path[1:]] + [result.bonus]
        self._sync_state(n, ids, path)
        p = self._path_max()
        rows = self._dev[3 + p : 3 + p + n]
        self._acc_feats[:n].copy_(self.features(result.verify.hidden, rows))
        if self._steps is None:
            self._append_rows(None, n)
        else:
            self._steps.run(self._graph_step("append", self._view(p)))
        self._stable += n
        self._next_pos += n
        self.cache.state.length = self._stable

    def _append_rows(self, view: int | None, n: int) -> None:
        """Append ``n`` (padded) accepted pairs; keeps the output of the last real one."""
        dev = self.adapter.device
        stable, pos, valid = self._dev[0], self._dev[1], self._dev[2]
        ids = self._dev[3 : 3 + n]
        x = self.accepted_inputs(self.token_embeds(ids), self._acc_feats[:n])
        view = view if view is not None else self._stable + n
        offs = torch.arange(n, device=dev)
        out = self._run(x, pos + offs, self._visible(self._tril[:n, :n], view), stable + offs, view)
        self._last.copy_(out.index_select(0, (valid - 1).view(1)))
        self._dev[:2] += valid  # stable length and next position, for the next proposal

    @torch.no_grad()
    def propose(self, ctx: DecodeContext) -> DraftTree:
        if self._steps is None:
            out = self._propose_fn()(None)
        else:
            out = self._steps.run(self._graph_step("propose", self._view(self._tree_entries())))
        if self._static is not None:
            tokens = out.tolist()
            tokens[0] = ctx.last_token
            return DraftTree(tokens, list(self._static.parent))
        s, t, p = out.cpu().tolist()
        threshold = float(self.args.get("threshold", 0.0) or 0.0)
        n, budget = eagle2_threshold_cut(
            s, int(self.args["top_k"]), threshold, int(self.args["total_token"]) - 1
        )
        return select_tree(ctx.last_token, [int(x) for x in t[:n]], [int(x) for x in p[:n]], s[:n], budget)

    def max_tree_size(self) -> int:
        if self._static is not None:
            return len(self._static)
        return int(self.args["total_token"])

    # ----------------------------------------------------------------- trees
    def _propose_dynamic_rows(self, view: int | None) -> torch.Tensor:
        """EAGLE-2: expand the top-k beams by cumulative log-probability; all candidates, packed
        as [3, n] (score, target token id, parent candidate index; -1 = the root)."""
        k, depth = int(self.args["top_k"]), int(self.args["depth"])
        dev = self.adapter.device
        stable, pos = self._dev[0], self._dev[1]
        s, t = self.topk(self._last, k)
        s, t = s[0], t[0]
        scores, tokens, parents = [s], [t], [torch.full((k,), -1, device=dev)]
        beam_s, beam_t, beam_h, beam_c = s, t, self._last.expand(k, -1), torch.arange(k, device=dev)
        eye = torch.eye(k, dtype=torch.bool, device=dev)
        anc = torch.zeros(k, 0, dtype=torch.bool, device=dev)
        offs = torch.arange(k, device=dev)
        offset = k
        for d in range(1, depth + 1):
            anc = torch.cat([anc, eye], dim=1)  # [k, d * k]: ancestors and themselves
            v = view if view is not None else self._stable + d * k
            out = self._run(
                self.tree_inputs(self.token_embeds(beam_t), beam_h),
                (pos + d - 1 + self.tree_position_offset).expand(k),
                self._visible(anc, v),
                stable + (d - 1) * k + offs,
                v,
            )
            s2, t2 = self.topk(out, k)
            cum = (beam_s[:, None] + s2).flatten()
            scores.append(cum)
            tokens.append(t2.flatten())
            parents.append(beam_c.repeat_interleave(k))
            if d == depth:
                break
            top_s, top_i = cum.topk(k)
            parent = top_i // k
            anc = anc[parent]
            beam_s, beam_t, beam_h, beam_c = top_s, t2.flatten()[top_i], out[parent], offset + top_i
            offset += k * k
        return torch.stack(
            [torch.cat(scores).double(), torch.cat(tokens).double(), torch.cat(parents).double()]
        )

    def _plan_static(self, tree: StaticTree) -> list[dict[str, Any]]:
        """Per draft level of a static tree: which nodes run, their ancestors and their children."""
        dev = self.adapter.device
        plan: list[dict[str, Any]] = []
        slot: dict[int, int] = {}
        base = 0
        prev_rows: list[int] = []
        for d in range(1, tree.depth):
            rows = sorted({tree.parent[i] for i in tree.levels[d]})  # nodes of level d with children
            anc = torch.zeros(len(rows), base + len(rows), dtype=torch.bool)
            for r, node in enumerate(rows):
                slot[node] = base + r
                p = node
                while p > 0:
                    anc[r, slot[p]] = True
                    p = tree.parent[p]
            children = tree.levels[d]
            plan.append({
                "rows": torch.tensor(rows, device=dev),
                "anc": anc.to(dev),
                "hidden_from": torch.tensor([prev_rows.index(tree.parent[i]) if tree.parent[i] > 0 else 0
                                             for i in rows], device=dev),
                "children": torch.tensor(children, device=dev),
                "child_row": torch.tensor([rows.index(tree.parent[i]) for i in children], device=dev),
                "child_rank": torch.tensor([tree.rank[i] for i in children], device=dev),
                "base": base,
            })  # fmt: skip
            base += len(rows)
            prev_rows = rows
        first = tree.levels[0]
        self._static_first = (
            torch.tensor(first, device=dev),
            torch.tensor([tree.rank[i] for i in first], device=dev),
        )
        return plan

    def _propose_static_rows(self, view: int | None) -> torch.Tensor:
        """EAGLE-1: a fixed tree of top-k ranks, one draft forward per level; node tokens [n]."""
        tree, dev = self._static, self.adapter.device
        stable, pos = self._dev[0], self._dev[1]
        tokens = torch.zeros(len(tree), dtype=torch.long, device=dev)
        _, top = self.topk(self._last, tree.max_rank)
        first, ranks = self._static_first
        tokens[first] = top[0, ranks]
        hidden_prev = self._last
        for d, level in enumerate(self._static_plan, start=1):
            m = level["rows"].shape[0]
            v = view if view is not None else self._stable + level["base"] + m
            out = self._run(
                self.tree_inputs(self.token_embeds(tokens[level["rows"]]), hidden_prev[level["hidden_from"]]),
                (pos + d - 1).expand(m),
                self._visible(level["anc"], v),
                stable + level["base"] + torch.arange(m, device=dev),
                v,
            )
            _, top = self.topk(out, tree.max_rank)
            tokens[level["children"]] = top[level["child_row"], level["child_rank"]]
            hidden_prev = out
        return tokens
