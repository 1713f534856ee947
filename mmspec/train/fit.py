"""``mmspec-train fit``: online draft training with the target in the same process.

Each micro-step takes one training sequence (a turn's prompt and its answer), runs the target over
it through the adapter's capture path (:mod:`.features`) and the draft over the same rows through
its inference hooks (:mod:`.recipes`); no features are written to disk. ``accelerate`` runs the
loop: mixed precision, gradient accumulation and several processes under ``accelerate launch``
(each process a shard of the sequences; gradients averaged). The data order, the feature noise and
every draw are functions of (seed, step), so a run resumed from a checkpoint continues exactly as
an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mmspec.errors import UsageError
from mmspec.records import write_json_atomic
from mmspec.train.data import Conversation, data_hash, read_conversations
from mmspec.train.examples import VICUNA_SYSTEM, TurnExample, conversation_examples
from mmspec.train.export import export_draft, weights_identity
from mmspec.train.features import target_pass
from mmspec.train.recipes import Recipe, recipe_for

log = logging.getLogger("mmspec.train")

CHECKPOINTS = "checkpoints"
#: conversations whose encoded sequences (processor outputs) are kept between uses
CACHED_CONVERSATIONS = 64


class TrainingInterrupted(RuntimeError):
    """Raised by ``fit(..., interrupt_after=N)`` (tests: a kill right after checkpoint ``N``)."""


@dataclass
class FitConfig:
    """Everything ``mmspec-train fit`` resolves from its command line."""

    spec: str
    data: str
    out: str
    model: str = "tiny-qwen25vl"
    model_args: dict[str, Any] = field(default_factory=dict)
    stage: int | None = None
    init: str | None = None  # continue from a draft folder (ViSpec stage 2: the stage-1 draft)
    spec_args: dict[str, Any] = field(default_factory=dict)
    data_format: str = "auto"
    image_root: str | None = None
    system_prompt: str | None = VICUNA_SYSTEM
    limit: int | None = None
    max_length: int | None = 2048
    max_steps: int = 1000
    time_budget: float | None = None  # seconds; training stops (and exports) when it runs out
    checkpoint_every: int = 200
    grad_accum: int = 1
    lr: float | None = None
    noise: float | None = None
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, no on the CPU
    seed: int = 0
    draft_vocab_size: int | None = None  # EAGLE-3: most frequent answer tokens (default: published size)
    ttt_steps: int | None = None
    mtp_steps: int | None = None
    eval_data: str | None = None
    eval_limit: int = 20
    eval_max_new_tokens: int = 256


def training_attention(device: torch.device) -> Any:
    """SDPA backends for training on CUDA: flash, memory-efficient and math, not cuDNN. cuDNN's
    attention builds an execution plan per new shape; training shapes change every step (sequence
    length, and EAGLE-3's growing key length per test step), which made an EAGLE-3 step cost ~1 s on
    an H200 against ~0.1 s for EAGLE's."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _schedule(share: float, warmup: float) -> float:
    """Learning-rate factor at training progress ``share`` (0..1): linear warm-up over the first
    ``warmup`` of the run, then linear decay to 10 %."""
    if share < warmup:
        return max(share / warmup, 1e-3)
    return max(0.1, 1.0 - 0.9 * (share - warmup) / max(1e-9, 1.0 - warmup))


class _LossModule(torch.nn.Module):
    """The draft network with the recipe's loss as ``forward`` (what ``accelerate`` wraps)."""

    def __init__(self, drafter: Any, recipe: Recipe) -> None:
        super().__init__()
        self.net = drafter.net
        self._drafter = drafter
        self._recipe = recipe

    def forward(self, tp: Any, gen: torch.Generator | None) -> tuple[torch.Tensor, dict[str, float]]:
        return self._recipe.loss(self._drafter, tp, gen, self._recipe)


class _Sequences:
    """The training sequences in a seeded order; built on demand (the target's processor runs on
    the CPU) and the most recently used conversations' kept."""

    def __init__(self, adapter: Any, convs: list[Conversation], cfg: FitConfig, recipe: Recipe) -> None:
        if recipe.options.get("text_only"):
            convs = [c for c in convs if not c.images]
            if not convs:
                raise UsageError(
                    f"{cfg.data}: ViSpec stage 1 trains on text-only conversations; this file has none"
                )
        missing = [c.id for c in convs if c.answers is None]
        if missing:
            raise UsageError(
                f"{cfg.data}: conversation {missing[0]} has no answers; run `mmspec-train regen` first"
            )
        self.adapter, self.cfg = adapter, cfg
        self.convs = convs
        self.keys = [(i, k) for i, c in enumerate(convs) for k in range(len(c.turns))]
        self.text = [key for key in self.keys if not convs[key[0]].images]
        self.images = [key for key in self.keys if convs[key[0]].images]
        self.curriculum = bool(recipe.options.get("curriculum")) and self.text and self.images
        self._cache: dict[int, list[TurnExample]] = {}

    def pick(self, index: int, progress: float) -> TurnExample:
        """The ``index``-th micro-step's sequence. MSD's curriculum: text only in the first half,
        then images with a probability rising linearly to 1."""
        rng = random.Random(self.cfg.seed * 1_000_003 + index)
        pool = self.keys
        if self.curriculum:
            share = 0.0 if progress <= 0.5 else min(1.0, (progress - 0.5) * 2)
            pool = self.images if rng.random() < share else self.text
        epoch, offset = divmod(index, len(pool))
        order = list(range(len(pool)))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        conv, turn = pool[order[offset]]
        examples = self._cache.pop(conv, None)
        if examples is None:
            c = self.convs[conv]
            examples = conversation_examples(
                self.adapter, c, c.system_prompt(self.cfg.system_prompt), self.cfg.max_length
            )
            if len(self._cache) >= CACHED_CONVERSATIONS:
                self._cache.pop(next(iter(self._cache)))
        self._cache[conv] = examples  # most recently used last
        return examples[min(turn, len(examples) - 1)]


def _checkpoint_files(out: Path) -> list[Path]:
    return sorted((out / CHECKPOINTS).glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def _accelerator(cfg: FitConfig, device: torch.device):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if device.type == "cuda" else "no"
    return Accelerator(cpu=device.type == "cpu", mixed_precision=mp,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])  # fmt: skip


def build_drafter(adapter: Any, cfg: FitConfig, recipe: Recipe) -> Any:
    """The drafter whose network is trained: a seeded random draft, or ``--init``'s."""
    from mmspec.methods import get_spec

    args = {"seed": cfg.seed, **cfg.spec_args, "checkpoint": cfg.init or "random"}
    if cfg.draft_vocab_size is not None:
        if recipe.spec != "eagle3":
            raise UsageError("--draft_vocab_size is for --spec eagle3")
        args["draft_vocab_size"] = cfg.draft_vocab_size
    drafter = get_spec(recipe.spec)(adapter, **args)
    net = drafter.net.float().train()
    for name, p in net.named_parameters():
        p.requires_grad_(not name.startswith(recipe.frozen))
    return drafter


def _set_draft_vocab(adapter: Any, drafter: Any, seqs: _Sequences, cfg: FitConfig) -> None:
    """EAGLE-3 from scratch: the draft vocabulary is the most frequent answer tokens (identity when
    it is the whole target vocabulary, as for small proxy vocabularies), and the draft's lm_head
    starts as the target's rows of those tokens (a random head makes the early soft cross-entropy
    learn the vocabulary before anything about the next token; the format is unchanged)."""
    net = drafter.net
    if cfg.init:
        return
    if not getattr(net, "shared_vocab", True):
        counts = torch.zeros(drafter.target.vocab_size, dtype=torch.long)
        for conv in seqs.convs:
            for ids in conv.answer_ids or []:
                ones = torch.ones(len(ids), dtype=torch.long)
                counts.index_add_(0, torch.tensor(ids, dtype=torch.long), ones)
        order = torch.argsort(counts, descending=True, stable=True)
        net.set_draft_vocab(order[: net.lm_head.out_features])
    head = adapter.lm_head_module.weight
    with torch.no_grad():
        net.lm_head.weight.copy_(head[net.draft_ids().to(head.device)].to(net.lm_head.weight))


def fit(cfg: FitConfig, adapter: Any = None, interrupt_after: int | None = None) -> dict[str, Any]:
    """Train (or resume training) a draft; returns the manifest written beside it."""
    from mmspec.adapters import load_model

    recipe = recipe_for(cfg.spec, cfg.stage)
    overrides = {
        k: v for k, v in (("ttt_steps", cfg.ttt_steps), ("mtp_steps", cfg.mtp_steps)) if v is not None
    }
    recipe = replace(recipe, options={**recipe.options, **overrides})
    if cfg.noise is not None:
        recipe = replace(recipe, noise=cfg.noise)
    convs = read_conversations(cfg.data, cfg.data_format, cfg.image_root, cfg.limit)
    adapter = adapter or load_model(cfg.model, {**cfg.model_args, "execution": "eager"})
    drafter = build_drafter(adapter, cfg, recipe)
    seqs = _Sequences(adapter, convs, cfg, recipe)
    if cfg.spec == "eagle3":
        _set_draft_vocab(adapter, drafter, seqs, cfg)
    out = Path(cfg.out)
    accelerator = _accelerator(cfg, adapter.device)
    module = _LossModule(drafter, recipe)
    params = [p for p in module.parameters() if p.requires_grad]
    lr = cfg.lr if cfg.lr is not None else recipe.lr
    optimizer = torch.optim.AdamW(params, lr=lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    clock = {"elapsed": 0.0}  # seconds of this process's training so far (for a time budget)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _schedule(_progress_share(s, cfg, clock["elapsed"]), recipe.warmup)
    )
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    start, curve, tokens_total = 0, [], 0.0
    done = _checkpoint_files(out)
    if done:
        state = torch.load(done[-1], map_location="cpu", weights_only=False)
        accelerator.unwrap_model(module).net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, curve, tokens_total = state["step"], state["curve"], state["tokens"]
        log.info("resuming %s from step %d (%s)", out, start, done[-1].name)
    rank, world = accelerator.process_index, accelerator.num_processes
    t0, stopped = time.perf_counter(), "max_steps"
    bar = _progress(start, cfg.max_steps, accelerator.is_main_process)
    with training_attention(adapter.device):
        for step in range(start, cfg.max_steps):
            if cfg.time_budget is not None and time.perf_counter() - t0 > cfg.time_budget:
                stopped = "time_budget"
                break
            step_loss, step_acc, step_tokens = 0.0, 0.0, 0.0
            for micro in range(cfg.grad_accum):
                index = (step * cfg.grad_accum + micro) * world + rank
                example = seqs.pick(index, _progress_share(step, cfg, time.perf_counter() - t0))
                tp = target_pass(adapter, drafter.capture_prefill, example)
                gen = torch.Generator(adapter.device).manual_seed(cfg.seed * 1_000_033 + index)
                sync = accelerator.no_sync(module) if micro + 1 < cfg.grad_accum else _null()
                with sync, accelerator.autocast():
                    loss, stats = module(tp, gen)
                    accelerator.backward(loss / cfg.grad_accum)
                step_loss += float(loss.detach()) / cfg.grad_accum
                step_acc += stats.get("acc", 0.0) / cfg.grad_accum
                step_tokens += stats.get("tokens", 0.0)
            if recipe.clip_value:
                accelerator.clip_grad_value_(params, recipe.clip_value)
            optimizer.step()
            elapsed = clock["elapsed"] = time.perf_counter() - t0
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens_total += step_tokens
            curve.append({"step": step + 1, "loss": round(step_loss, 6), "acc": round(step_acc, 4),
                          "lr": scheduler.get_last_lr()[0], "tokens": tokens_total})  # fmt: skip
            bar(step + 1, step_loss, step_acc, tokens_total / max(elapsed, 1e-9))
            if accelerator.is_main_process and (step + 1) % cfg.checkpoint_every == 0:
                _save_checkpoint(
                    out,
                    step + 1,
                    accelerator.unwrap_model(module).net,
                    optimizer,
                    scheduler,
                    curve,
                    tokens_total,
                )
            if interrupt_after is not None and step + 1 >= interrupt_after:
                raise TrainingInterrupted(f"interrupted after step {step + 1}")
    steps = curve[-1]["step"] if curve else start
    manifest = _manifest(cfg, recipe, drafter, adapter, lr, steps, curve, time.perf_counter() - t0, stopped)
    if accelerator.is_main_process:
        accelerator.unwrap_model(module).net.eval()
        export_draft(drafter, out, manifest)
        write_json_atomic(out / "loss_curve.json", curve)
        _plot_curve(out, curve)
        if cfg.eval_data:  # held-out acceptance of the exported draft, loaded like a user would
            manifest["eval"] = _evaluate(adapter, cfg, recipe)
            export_draft(drafter, out, manifest)
    accelerator.wait_for_everyone()
    return manifest


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _save_checkpoint(
    out: Path, step: int, net: Any, optimizer: Any, scheduler: Any, curve: list, tokens: float
) -> None:
    """``out/checkpoints/step_N.pt`` (written then renamed); the two newest are kept."""
    folder = out / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".step_{step}.pt.tmp"
    torch.save({"step": step, "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "curve": curve, "tokens": tokens}, tmp)  # fmt: skip
    tmp.replace(folder / f"step_{step}.pt")
    for old in _checkpoint_files(out)[:-2]:
        old.unlink()


def _manifest(cfg: FitConfig, recipe: Recipe, drafter: Any, adapter: Any, lr: float, steps: int,
              curve: list, seconds: float, stopped: str) -> dict[str, Any]:  # fmt: skip
    import mmspec

    last = curve[-20:]
    return {
        "mmspec_version": mmspec.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": drafter.name,
        "recipe": recipe.name,
        "stage": cfg.stage,
        "init": cfg.init,
        "target": {**weights_identity(adapter.pretrained), "model": cfg.model, "family": adapter.family},
        "data": {"path": str(cfg.data), "sha256": data_hash(cfg.data), "limit": cfg.limit},
        "hyper_parameters": {
            "lr": lr,
            "betas": list(recipe.betas),
            "weight_decay": recipe.weight_decay,
            "clip_value": recipe.clip_value,
            "warmup": recipe.warmup,
            "noise": recipe.noise,
            "grad_accum": cfg.grad_accum,
            "max_steps": cfg.max_steps,
            "max_length": cfg.max_length,
            "seed": cfg.seed,
            "options": recipe.options,
            "spec_args": {k: str(v) for k, v in cfg.spec_args.items()},
        },  # fmt: skip
        "steps": steps,
        "stopped": stopped,
        "answer_tokens": curve[-1]["tokens"] if curve else 0,
        "train_seconds": round(seconds, 3),
        "final": {
            "loss": round(sum(c["loss"] for c in last) / len(last), 6) if last else None,
            "acc": round(sum(c["acc"] for c in last) / len(last), 4) if last else None,
        },
    }


def _evaluate(adapter: Any, cfg: FitConfig, recipe: Recipe) -> dict[str, Any]:
    """Held-out acceptance of the exported draft, loaded from its folder as a user would."""
    from mmspec.methods import get_spec
    from mmspec.train.evaluate import evaluate_draft

    convs = read_conversations(cfg.eval_data, "auto", None, cfg.eval_limit)
    drafter = get_spec(recipe.spec)(adapter, **{**cfg.spec_args, "checkpoint": cfg.out})
    report = evaluate_draft(adapter, drafter, convs, max_new_tokens=cfg.eval_max_new_tokens,
                            system_prompt=cfg.system_prompt, progress=False)  # fmt: skip
    keep = (
        "mat",
        "mean_accepted_per_round",
        "acceptance_by_depth",
        "exact_match_rate",
        "new_tokens",
        "rounds",
    )
    return {"data": str(cfg.eval_data), "overall": {k: report["overall"].get(k) for k in keep},
            "categories": {c: {k: v.get(k) for k in keep} for c, v in report.get("categories", {}).items()}}  # fmt: skip


def main_fit(args: Any) -> int:
    """``mmspec-train fit`` (argparse namespace from :func:`mmspec.train.cli.add_fit_arguments`)."""
    from mmspec.cli import parse_kv

    if args.max_steps < 1 or args.grad_accum < 1 or args.checkpoint_every < 1:
        raise UsageError("--max_steps, --grad_accum and --checkpoint_every must be at least 1")
    system = VICUNA_SYSTEM if args.system_prompt is None else (args.system_prompt or None)
    cfg = FitConfig(
        spec=args.spec, data=args.data, out=args.out, model=args.model,
        model_args=parse_kv(args.model_args, "--model_args"), stage=args.stage, init=args.init,
        spec_args=parse_kv(args.spec_args, "--spec_args"), data_format=args.data_format,
        image_root=args.image_root, system_prompt=system, limit=args.limit, max_length=args.max_length,
        max_steps=args.max_steps, time_budget=args.time_budget, checkpoint_every=args.checkpoint_every,
        grad_accum=args.grad_accum, lr=args.lr, noise=args.noise, mixed_precision=args.mixed_precision,
        seed=args.seed, draft_vocab_size=args.draft_vocab_size, ttt_steps=args.ttt_steps,
        mtp_steps=args.mtp_steps, eval_data=args.eval_data, eval_limit=args.eval_limit,
        eval_max_new_tokens=args.eval_max_new_tokens,
    )  # fmt: skip
    manifest = fit(cfg)
    print(f"{args.out}: {summary_line(manifest)}")
    if "eval" in manifest:
        o = manifest["eval"]["overall"]
        print(f"held-out: MAT {o['mat']}, exact match {o['exact_match_rate']}")
    return 0


def _progress_share(step: int, cfg: FitConfig, elapsed: float) -> float:
    """How far training is (0..1), for the learning-rate schedule and MSD's curriculum: by steps, or
    by time when a time budget stops the run first (else a budgeted run would stay in warm-up and
    never leave MSD's text-only half)."""
    share = step / max(1, cfg.max_steps)
    if cfg.time_budget:
        share = max(share, elapsed / cfg.time_budget)
    return min(1.0, share)


def _progress(start: int, total: int, main: bool):
    """A tqdm bar on a terminal, log lines otherwise; reports loss, top-1 accuracy and tokens/s."""
    if not main:
        return lambda *a: None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="fit", unit="step", dynamic_ncols=True)

        def update(step: int, loss: float, acc: float, tps: float) -> None:
            bar.set_postfix_str(f"loss {loss:.4f}  acc {acc:.3f}  {tps:.0f} tok/s", refresh=False)
            bar.update(1)

        return update
    every = max(1, total // 20)

    def log_line(step: int, loss: float, acc: float, tps: float) -> None:
        if step % every == 0 or step == total:
            log.info("fit %d/%d  loss %.4f  acc %.3f  %.0f tok/s", step, total, loss, acc, tps)

    return log_line


def _plot_curve(out: Path, curve: list[dict[str, Any]]) -> None:
    """``loss_curve.png`` beside the draft when matplotlib is installed (the JSON is always written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if not curve:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c["step"] for c in curve], [c["loss"] for c in curve], label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot([c["step"] for c in curve], [c["acc"] for c in curve], color="tab:orange", label="top-1 acc")
    ax2.set_ylabel("top-1 accuracy")
    ax.set_title(f"{out.name}: {len(curve)} steps")
    fig.tight_layout()
    fig.savefig(out / "loss_curve.png", dpi=80)
    plt.close(fig)


def summary_line(manifest: dict[str, Any]) -> str:
    f = manifest["final"]
    return (f"{manifest['method']} ({manifest['recipe']}): {manifest['steps']} steps, loss {f['loss']}, "
            f"top-1 {f['acc']}, {manifest['train_seconds']:.0f} s")  # fmt: skip
