"""Each method's training recipe: its loss on one target pass, and its default hyper-parameters.

Every loss reads the draft's rows through the drafter's own inference hooks (``pair_inputs``,
``tree_inputs``, ``topk``-side heads), so what is trained is what runs. Row ``r`` at position ``t``
pairs (token ``t+1``, feature ``t``), is trained to produce the target's state at ``t + 1`` — whose
logits give token ``t + 2`` — and is supervised when token ``t + 2`` is an answer token.

Defaults are the published recipes' for real targets (README lists their cost at 7B); the
command line overrides them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from mmspec.errors import UsageError
from mmspec.graphs import additive_mask
from mmspec.train.features import TargetPass

Step = Callable[..., tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Recipe:
    """A method's loss and its optimiser defaults."""

    name: str
    spec: str  # the drafter class trained (``mmspec --spec`` name)
    loss: Step
    lr: float
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    clip_value: float = 0.5  # gradient clipping by value (EAGLE's trainers)
    warmup: float = 0.02  # share of steps with a linear warm-up, then linear decay to 10 %
    noise: float = 0.2  # uniform feature noise width on the inputs: (U - 0.5) * noise
    frozen: tuple[str, ...] = ("embed_tokens",)  # parameter-name prefixes kept from the target
    options: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- shared pieces
def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _batched(x: Any) -> Any:
    return tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]


def _noise(feats: torch.Tensor, width: float, gen: torch.Generator | None) -> torch.Tensor:
    if width <= 0:
        return feats
    u = torch.rand(feats.shape, generator=gen, device=feats.device, dtype=torch.float32)
    return feats + ((u - 0.5) * width).to(feats.dtype)


def _head_logits(drafter: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Draft outputs -> logits through the target's frozen lm_head (EAGLE, MSD, ViSpec, Medusa)."""
    return drafter.target.lm_head(hidden.to(drafter.target.dtype)).float()


def rank_loss(student: torch.Tensor, teacher: torch.Tensor, k: int = 10) -> torch.Tensor:
    """ViSpec's listwise term: Plackett-Luce negative log-likelihood of the teacher's top-``k``
    order under the student's logits restricted to those tokens, per row."""
    top = teacher.topk(min(k, teacher.shape[-1]), dim=-1).indices
    s = student.gather(-1, top)
    tail = torch.logcumsumexp(s.flip(-1), dim=-1).flip(-1)  # logsumexp(s_j .. s_k)
    return -(s - tail).sum(-1)


def _stats(logq: torch.Tensor, p: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    hit = (logq.argmax(-1) == p.argmax(-1)).float()
    return {"acc": float(_masked_mean(hit, mask)), "tokens": float(mask.sum())}


def _features(drafter: Any, tp: TargetPass) -> torch.Tensor:
    """The draft's input features of every pair row, in the draft's (training) dtype."""
    return drafter.features(tp.rows()).to(next(drafter.net.parameters()).dtype)


def _pair_forward(drafter: Any, tp: TargetPass, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draft outputs ``[R, H]`` over every pair row (causal, one pass) and the rows' positions."""
    x, pos = drafter.pair_inputs(tp.ctx, feats)
    return drafter.net.run(_batched(x), pos[None], None, None)[0], pos


# --------------------------------------------------------------------------------- losses
def eagle_loss(
    drafter: Any, tp: TargetPass, gen: torch.Generator | None, recipe: Recipe
) -> tuple[torch.Tensor, dict]:
    """EAGLE-1/2 and MSD: SmoothL1 to the target's next state + 0.1 soft cross-entropy through the
    frozen lm_head (ViSpec stage 1 adds 0.01 of its ranking term); uniform noise on the features."""
    feats = _noise(_features(drafter, tp), recipe.noise, gen)
    out, pos = _pair_forward(drafter, tp, feats)
    nxt = pos + 1
    mask = tp.supervised(pos + 2)
    target_h = tp.hidden[tp.final_layer][nxt].float()
    p = torch.softmax(tp.logits[nxt].float(), dim=-1)
    logits = _head_logits(drafter, out)
    logq = torch.log_softmax(logits, dim=-1)
    per_row = F.smooth_l1_loss(out.float(), target_h, reduction="none").mean(-1) + 0.1 * -(p * logq).sum(-1)
    if recipe.options.get("rank"):
        per_row = per_row + 0.01 * rank_loss(logits, tp.logits[nxt].float())
    return _masked_mean(per_row, mask), _stats(logq, p, mask)


def vispec_stage2_loss(
    drafter: Any, tp: TargetPass, gen: torch.Generator | None, recipe: Recipe
) -> tuple[torch.Tensor, dict]:
    """ViSpec stage 2: the first pass on the target's features, then ``mtp_steps`` passes on the
    draft's own outputs (shifted right one position: its estimate of the state at ``t`` replaces the
    target's; image rows, compressed away, give zeros); every pass against the same targets with
    10 * L1(probabilities) + 0.1 * ranking; no regression."""
    true = _noise(_features(drafter, tp), recipe.noise, gen)
    feats, total, stats = true, 0.0, {}
    steps = 1 + int(recipe.options.get("mtp_steps", 1))
    for _ in range(steps):
        out, pos = _pair_forward(drafter, tp, feats)
        nxt = pos + 1
        mask = tp.supervised(pos + 2)
        teacher = tp.logits[nxt].float()
        logits = _head_logits(drafter, out)
        q, p = torch.softmax(logits, -1), torch.softmax(teacher, -1)
        per_row = 10 * (q - p).abs().sum(-1) + 0.1 * rank_loss(logits, teacher)
        total = total + _masked_mean(per_row, mask)
        stats = stats or _stats(torch.log(q + 1e-30), p, mask)
        prev = torch.zeros_like(true)
        prev[pos] = out.to(prev.dtype)
        feats = torch.cat([true[:1], prev[:-1]])
    return total / steps, stats


def ttt_passes(drafter: Any, tp: TargetPass, steps: int):
    """EAGLE-3's training-time test, unrolled: yields ``(k, outputs [R, H], positions)`` for
    ``k = 0 .. steps - 1``. Step ``k`` feeds row ``t`` token ``t+1+k`` and the row's step-``k-1``
    output, at position ``t + k``; it attends to the step-0 rows up to ``t`` and to its own rows of
    steps 1..k — what a chain at tree depth ``k + 1`` sees at inference."""
    net, n, ids = drafter.net, tp.length, tp.ids
    (emb, hidden), pos = drafter.pair_inputs(tp.ctx, _features(drafter, tp))
    cache = DynamicCache()
    causal = pos[:, None] >= pos[None, :]
    eye = torch.eye(pos.shape[0], dtype=torch.bool, device=pos.device)
    for k in range(steps):
        visible = torch.cat([causal, *([eye] * k)], dim=1)
        out = net.run(
            (emb[None], hidden[None]), (pos + k)[None], additive_mask(visible, hidden.dtype), cache
        )[0]
        yield k, out, pos
        emb, hidden = drafter.token_embeds(ids[(pos + 2 + k).clamp(max=n - 1)]), out


def eagle3_loss(
    drafter: Any, tp: TargetPass, gen: torch.Generator | None, recipe: Recipe
) -> tuple[torch.Tensor, dict]:
    """EAGLE-3: soft cross-entropy over the draft vocabulary at every training-time-test step,
    weighted 0.8^k, skipping rows whose target token is outside the draft vocabulary."""
    net, n = drafter.net, tp.length
    draft_ids = net.draft_ids()  # draft vocabulary -> target ids
    in_vocab = torch.zeros(tp.logits.shape[-1], dtype=torch.bool, device=draft_ids.device)
    in_vocab[draft_ids] = True
    total, weight_sum, stats = 0.0, 0.0, {}
    for k, out, pos in ttt_passes(drafter, tp, int(recipe.options.get("ttt_steps", 7))):
        teacher = tp.logits[(pos + 1 + k).clamp(max=n - 1)].float()
        valid = (pos + 1 + k <= n - 1) & tp.supervised(pos + 2 + k) & in_vocab[teacher.argmax(-1)]
        p = torch.softmax(teacher[:, draft_ids], dim=-1)
        logq = torch.log_softmax(net.logits(out).float(), dim=-1)
        w = 0.8**k
        total = total + w * _masked_mean(-(p * logq).sum(-1), valid)
        weight_sum += w
        stats = stats or _stats(logq, p, valid)
    return total / weight_sum, stats


def medusa_loss(
    drafter: Any, tp: TargetPass, gen: torch.Generator | None, recipe: Recipe
) -> tuple[torch.Tensor, dict]:
    """Medusa-1: head ``i`` on the target's state at ``t`` predicts token ``t + 2 + i`` (the target's
    own head covers ``t + 1``); cross-entropy on the (self-distilled) answer tokens."""
    n = tp.length
    h = tp.hidden[tp.final_layer]
    heads = drafter.net(h.to(next(drafter.net.parameters()).dtype))  # [heads, N, H]
    ids = tp.ids
    pos = torch.arange(n, device=h.device)
    total, stats = 0.0, {}
    for i in range(heads.shape[0]):
        label_at = pos + 2 + i
        valid = tp.supervised(label_at)
        logits = _head_logits(drafter, heads[i])
        ce = F.cross_entropy(logits, ids[label_at.clamp(max=n - 1)], reduction="none")
        total = total + _masked_mean(ce, valid)
        if not stats:
            hit = (logits.argmax(-1) == ids[label_at.clamp(max=n - 1)]).float()
            stats = {"acc": float(_masked_mean(hit, valid)), "tokens": float(valid.sum())}
    return total / heads.shape[0], stats


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe("eagle", "eagle2", eagle_loss, lr=3e-5),
        Recipe("eagle3", "eagle3", eagle3_loss, lr=5e-5, noise=0.0, options={"ttt_steps": 7}),
        Recipe("msd", "msd", eagle_loss, lr=5e-5, options={"curriculum": True}),
        Recipe("vispec1", "vispec", eagle_loss, lr=3e-5, frozen=("embed_tokens", "imadpt", "img_fc"),
               options={"rank": True, "text_only": True}),
        Recipe("vispec2", "vispec", vispec_stage2_loss, lr=3e-6, options={"mtp_steps": 1}),
        Recipe("medusa", "medusa", medusa_loss, lr=1e-3, noise=0.0, warmup=0.1, frozen=("embed_tokens",)),
    ]
}  # fmt: skip


def recipe_for(spec: str, stage: int | None = None) -> Recipe:
    """The recipe of ``mmspec-train fit --spec S [--stage N]``."""
    if spec == "vispec":
        if stage not in (1, 2):
            raise UsageError(
                "vispec trains in two stages: pass --stage 1 (text) or --stage 2 (images, with --init)"
            )
        return RECIPES[f"vispec{stage}"]
    if stage not in (None, 1):
        raise UsageError(f"{spec} trains in one stage; --stage is for vispec")
    if spec == "eagle2":
        spec = "eagle"
    if spec not in RECIPES:
        raise UsageError(
            f"no training recipe for --spec {spec!r}; choose eagle, eagle3, msd, vispec or medusa"
        )
    return RECIPES[spec]
