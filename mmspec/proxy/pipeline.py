"""The proxy pipeline: build a trained target, train every draft on it, benchmark every method.

build (``mmspec-proxy build``) -> draft-training prompts (``export_prompts``, a seed range apart
from the target's and the test set's) -> the target's own answers (``mmspec-train regen``) -> one
draft per method (``mmspec-train fit``: eagle serves eagle/eagle2, eagle3, msd, vispec in two
stages, medusa) -> the harness on ``proxy_test`` for the baseline and every method, ViSkip variants
and training-free methods included -> the leaderboard -> ``summary.json`` (MAT per method and
category, acceptance by depth, skip rates, exact match, the drafts' and the target's manifests).

Every stage writes into ``out`` and is skipped when its output is already there, so a pipeline
split over several commands (GPU time limits) resumes where the last one stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mmspec.proxy")

#: drafts trained, and the harness methods each one serves
DRAFTS = {
    "eagle": ("eagle", "eagle2"),
    "eagle3": ("eagle3",),
    "msd": ("msd", "msd_vskip"),
    "vispec": ("vispec", "vispec_vskip"),
    "medusa": ("medusa",),
}
#: every method benchmarked (the baseline first: speedups and the lossless check refer to it)
METHODS = ("baseline", "pld", "lookahead", "recycling", "sam", "medusa", "eagle", "eagle2", "eagle3", "msd",
           "vispec", "vispec_vskip", "msd_vskip", "sam_vskip")  # fmt: skip


@dataclass
class PipelineConfig:
    family: str
    out: str
    size: str = "M"
    seed: int = 0
    build_steps: int | None = None  # None: the size's time budget
    build_time_budget: float | None = None
    build_eval: bool = True
    build_eval_seconds: float | None = None  # time limit of the build's quality gates (None: the size's)
    n_train: int = 400  # draft-training conversations
    regen_max_new_tokens: int = 512
    fit_steps: int = 4000
    fit_seconds: float | None = 60.0  # per draft (ViSpec: per stage)
    fit_lr: float = 1e-3
    fit_grad_accum: int = 1
    methods: tuple[str, ...] = METHODS
    limit: int | None = None  # samples per proxy_test task
    max_new_tokens: int | None = None
    dtype: str = "float32"
    device: str | None = None
    warmup: int = 1
    seed_start: int | None = None  # draft prompts' seeds (default: the generator's draft range)
    extra_model_args: dict[str, Any] = field(default_factory=dict)


def _done(path: Path) -> bool:
    return path.exists()


def run_pipeline(cfg: PipelineConfig, stages: tuple[str, ...] = ("build", "regen", "fit", "harness", "summary"),
                 say: Callable[[str], None] = log.info) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) the pipeline into ``cfg.out``; returns the summary."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(asdict(cfg), indent=2))
    target = out / "target"
    timings: dict[str, float] = _read(out / "timings.json") or {}
    if "build" in stages and not _done(target / "manifest.json"):
        from mmspec.proxy.build import build

        t = time.perf_counter()
        build(cfg.family, cfg.size, cfg.seed, target, max_steps=cfg.build_steps, time_budget=cfg.build_time_budget,
              device=cfg.device, evaluate=cfg.build_eval, eval_seconds=cfg.build_eval_seconds, log=say)  # fmt: skip
        timings["build"] = time.perf_counter() - t
    model_args = {"pretrained": str(target), "dtype": cfg.dtype, **cfg.extra_model_args}
    if cfg.device:
        model_args["device"] = cfg.device
    answers = out / "answers.jsonl"
    adapter = None
    if "regen" in stages and not _done(out / "answers.done"):
        from mmspec.proxy.export import export_prompts
        from mmspec.proxy.splits import DRAFT_SEEDS
        from mmspec.train.data import read_conversations
        from mmspec.train.regen import RegenSettings, regenerate

        t = time.perf_counter()
        start = cfg.seed_start if cfg.seed_start is not None else DRAFT_SEEDS.start
        prompts = export_prompts(out / "prompts", range(start, start + 8), cfg.n_train)
        adapter = adapter or _load(cfg, model_args)
        regenerate(adapter, read_conversations(prompts), answers,
                   RegenSettings(max_new_tokens=cfg.regen_max_new_tokens), model=_model_name(cfg))  # fmt: skip
        (out / "answers.done").write_text("ok\n")
        timings["regen"] = time.perf_counter() - t
    if "fit" in stages:
        adapter = adapter or _load(cfg, model_args, execution="eager")
        for draft in DRAFTS:
            if any(m in cfg.methods for m in DRAFTS[draft]):
                t = time.perf_counter()
                if _fit(cfg, draft, answers, out / "drafts", adapter, say):
                    timings[f"fit_{draft}"] = time.perf_counter() - t
        adapter = None  # the harness loads its own (graph mode on CUDA)
    _write(out / "timings.json", timings)
    if "harness" in stages:
        t = time.perf_counter()
        _harness(cfg, model_args, out, say)
        timings["harness"] = time.perf_counter() - t
        _write(out / "timings.json", timings)
    if "summary" in stages:
        return summarize(out)
    return {}


def _model_name(cfg: PipelineConfig) -> str:
    return f"proxy-{cfg.family}-{cfg.size}"


def _load(cfg: PipelineConfig, model_args: dict[str, Any], execution: str | None = None) -> Any:
    from mmspec.adapters import load_model

    args = dict(model_args)
    if execution:
        args["execution"] = execution
    return load_model(cfg.family, args)


def _fit(cfg: PipelineConfig, draft: str, answers: Path, folder: Path, adapter: Any, say: Callable) -> bool:
    """Train ``draft`` (ViSpec: stage 1 then stage 2) unless its folder is already complete."""
    from mmspec.train.fit import FitConfig, fit, summary_line

    stages = [(1, None), (2, "vispec_stage1")] if draft == "vispec" else [(None, None)]
    trained = False
    for stage, init in stages:
        name = "vispec_stage1" if stage == 1 else draft
        dest = folder / name
        if (dest / "mmspec_draft.json").exists():
            continue
        lr = cfg.fit_lr / 3 if stage == 2 else cfg.fit_lr
        fc = FitConfig(spec=draft, stage=stage, init=str(folder / init) if init else None, data=str(answers),
                       model=cfg.family,
                       out=str(dest), max_steps=cfg.fit_steps, time_budget=cfg.fit_seconds, lr=lr,
                       grad_accum=cfg.fit_grad_accum, checkpoint_every=max(cfg.fit_steps // 4, 1),
                       seed=cfg.seed)  # fmt: skip
        say(f"fit {name}")
        manifest = fit(fc, adapter)
        say(summary_line(manifest))
        trained = True
    return trained


def _harness(cfg: PipelineConfig, model_args: dict[str, Any], out: Path, say: Callable) -> None:
    from mmspec.harness import RunConfig, run_methods

    spec_args: dict[str, Any] = {}
    for draft, methods in DRAFTS.items():
        for m in methods:
            if m in cfg.methods:
                spec_args[f"{m}.checkpoint"] = str(out / "drafts" / draft)
    config = RunConfig(tasks=["proxy_test"], model=cfg.family, model_args=model_args, spec="baseline",
                       spec_args=spec_args, output_path=out / "results", limit=cfg.limit,
                       max_new_tokens=cfg.max_new_tokens, warmup=cfg.warmup)  # fmt: skip
    run_methods(config, list(cfg.methods))
    from mmspec.leaderboard import build_leaderboard, render_html, render_markdown

    board = build_leaderboard([out / "results"])
    _write(out / "leaderboard.json", board)
    (out / "leaderboard.md").write_text(render_markdown(board))
    (out / "leaderboard.html").write_text(render_html(board, title=f"mmspec proxy {cfg.family}-{cfg.size}"))
    say(f"leaderboard: {out / 'leaderboard.md'}")


def run_acceptance_by_depth(run_dir: Path) -> list[float]:
    """Share of drafted rounds of a run folder that accepted at least d drafts, d = 1, 2, ..."""
    from mmspec.records import read_run
    from mmspec.results import acceptance_by_depth, drafted_rounds

    accepted = [a for recs in read_run(run_dir).by_task.values() for rec in recs for turn in rec.turns
                for a in drafted_rounds(turn.accepted_per_round, turn.tree_size_per_round)]  # fmt: skip
    return acceptance_by_depth(accepted)


def summarize(out: Path) -> dict[str, Any]:
    """``summary.json``: the numbers RESULTS.md reports, from the results and manifests in ``out``."""
    out = Path(out)
    results_root = out / "results"
    methods: dict[str, Any] = {}
    for path in sorted(results_root.glob("*/*/results.json")):
        res = json.loads(path.read_text())
        o = res["overall"]
        methods[res["spec"]] = {
            "mat": o.get("mat"),
            "mean_accepted_per_round": o.get("mean_accepted_per_round"),
            "exact_match_rate": o.get("exact_match_rate"),
            "n_compared": o.get("n_compared"),
            "skipped_share": round(o["skipped_rounds"] / o["rounds"], 4) if o.get("rounds") else None,
            "speedup_global": o.get("speedup_global"),
            "tokens_per_s": o.get("tokens_per_s"),
            "draft_time_s": o.get("draft_time_s"),
            "verify_time_s": o.get("verify_time_s"),
            "rounds": o.get("rounds"),
            "categories": {
                c: {"mat": v.get("mat"), "skipped": v.get("skipped_rounds")}
                for c, v in res.get("categories", {}).items()
            },  # fmt: skip
            "acceptance_by_depth": run_acceptance_by_depth(path.parent),
            "environment": {
                k: res.get("environment", {}).get(k) for k in ("device_name", "torch", "transformers")
            },
        }
    drafts = {p.parent.name: _read(p) for p in sorted((out / "drafts").glob("*/mmspec_draft.json"))}
    target = _read(out / "target" / "manifest.json") or {}
    summary = {
        "pipeline": _read(out / "pipeline.json"),
        "timings": _read(out / "timings.json"),
        "target": {
            k: target.get(k)
            for k in (
                "family",
                "size",
                "seed",
                "weights_sha256",
                "parameters",
                "heldout",
                "quality",
                "gates",
                "build_seconds",
                "training",
            )
        },  # fmt: skip
        "drafts": {
            name: {k: m.get(k) for k in ("recipe", "steps", "stopped", "train_seconds", "final")}
            for name, m in drafts.items()
        },  # fmt: skip
        "methods": methods,
    }
    _write(out / "summary.json", summary)
    return summary


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
