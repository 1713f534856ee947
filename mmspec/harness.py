"""Run tasks x samples x turns through one engine, append records, resume, write results.json.

`run_methods` runs several methods in one process: everything is checked first (`mmspec.plan`),
the target is loaded once, then the baseline and each method run in turn with identical rules
(same warm-up, same timing), each into its own ``<output_path>/<model>/<spec>`` folder. Graphs the
target captured for one method are reused by the next (the adapter keys them by shape).

Under ``accelerate launch`` (:mod:`mmspec.distributed`) the processes of the launch are one run:
the main process takes the folder locks, works out what is left (the union of every records file)
and gives every process its share; each process decodes its share on its own device into its own
records file; once all are done the main process merges those files and writes results.json.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import zlib
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmspec.distributed import World, launch_world, place_process
from mmspec.engine import Engine, TurnResult
from mmspec.environment import devices_info, environment
from mmspec.locks import FolderLock
from mmspec.plan import (
    HarnessError,
    RunConfig,
    TaskRun,
    assign_spec_args,
    check_methods,
    load_task_runs,
)
from mmspec.progress import Progress
from mmspec.records import (
    RecordFile,
    RunRecords,
    SampleRecord,
    TurnRecord,
    check_settings,
    merge_shards,
    read_json,
    read_run,
    read_task,
    record_path,
    task_folders,
    write_json_atomic,
)
from mmspec.results import build_results

log = logging.getLogger("mmspec")

RESULTS_SCHEMA_VERSION = 1

__all__ = ["Harness", "HarnessError", "RunConfig", "TaskRun", "run_methods", "turn_seed"]


def turn_seed(seed: int, task: str, sample_id: str, turn: int) -> int:
    """A stable per-turn seed, so a resumed run samples exactly what a fresh run would."""
    return zlib.crc32(f"{seed}:{task}:{sample_id}:{turn}".encode())


_RUNS = itertools.count(1)


def new_run_id() -> str:
    """Names one invocation (UTC start time, pid, and a counter for runs within one process)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}-{next(_RUNS)}"


def run_methods(
    config: RunConfig,
    specs: list[str],
    adapter: Any = None,
    task_runs: list[TaskRun] | None = None,
    skip_unavailable: bool = False,
    world: World | None = None,
) -> list[dict[str, Any]]:
    """Check everything, load the target once, run each method of ``specs`` in order.

    ``config.spec_args`` holds the ``--spec_args`` of all methods (see `assign_spec_args`);
    ``skip_unavailable`` leaves out draft methods without a checkpoint (``--spec all``).
    ``world``: this process's place in a data-parallel launch (default: from the launcher's
    environment; a plain command is a launch of one). Returns the results of each method run, on
    every process.
    """
    from mmspec.adapters import check_model, load_model

    config.check()
    task_runs = task_runs if task_runs is not None else load_task_runs(config)
    check_model(config.model, config.model_args)
    spec_args = assign_spec_args(specs, config.spec_args)
    specs = check_methods(specs, spec_args, config.model, config.model_args, skip_unavailable)
    if not specs:
        raise HarnessError("no method left to run (see the warnings above)")
    world = world if world is not None else launch_world()
    model_args, gpus = world.all_ok(lambda: place_process(world, config.model_args))
    run_id = world.broadcast(new_run_id())
    folders = [Path(config.output_path) / config.model / spec / tr.name for spec in specs for tr in task_runs]
    results = []
    with ExitStack() as locks:  # one writer per (model, spec, task) folder, taken before the model loads
        world.on_main(lambda: _lock(locks, folders, world))
        if world.size > 1:  # then each process's own records file, once the main process holds the folders
            world.all_ok(lambda: _lock(locks, folders, world) if not world.is_main else None)
        adapter = adapter if adapter is not None else load_model(config.model, model_args, gpus)
        if world.size > 1:
            log.info("process %d of %d: %s", world.rank, world.size, ", ".join(map(str, _devices(adapter))))
        for i, spec in enumerate(specs, 1):
            if len(specs) > 1 and world.is_main:
                log.info("method %d/%d: %s", i, len(specs), spec)
            cfg = replace(config, spec=spec, spec_args=spec_args[spec])
            harness = Harness(cfg, adapter=adapter, task_runs=task_runs, run_id=run_id, world=world)
            results.append(harness._run_method())
            gc.collect()  # the previous method's drafter (and its draft model) before the next one builds
    return results


def _lock(stack: ExitStack, folders: list[Path], world: World) -> None:
    """Lock every folder for this process of the run (see `mmspec.locks`)."""
    for folder in folders:
        stack.enter_context(FolderLock(folder, world.rank, world.size))


def _devices(adapter: Any) -> list[Any]:
    """Every device the target's weights are on (several when it is split)."""
    return list(getattr(adapter, "devices", None) or [adapter.device])


def target_identity(adapter: Any) -> dict[str, Any]:
    """What makes outputs of a loaded target comparable: checkpoint, dtype, attention, execution, device."""
    return {
        "pretrained": adapter.pretrained,
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "attn_implementation": adapter.attn_implementation,
        "execution": getattr(adapter, "execution", "eager"),
        "device": adapter.device.type,
        # compiled (fused) kernels round differently from eager ones (mmspec.fusion)
        **({"fusion": adapter.fusion} if getattr(adapter, "fusion", "none") != "none" else {}),
        # a target split over several devices times differently: its records never mix with others
        **({"model_parallel": len(_devices(adapter))} if len(_devices(adapter)) > 1 else {}),
    }


def prepare_execution(adapter: Any, drafter: Any) -> None:
    """Graph mode: capture the target's verification steps and the drafter's own before any timing."""
    n = adapter.prepare(drafter.max_tree_size(), drafter.capture_verify, chain=drafter.plain_decoding)
    if n:
        log.info("captured %d CUDA graphs in %.1f s", n, adapter.capture_time_s)
    n = drafter.prepare()
    if n:
        log.info("captured %d draft CUDA graphs in %.1f s", n, drafter.capture_time_s)


class Harness:
    """One (model, spec) over a list of tasks. ``adapter`` may be passed in to reuse a loaded model."""

    def __init__(
        self,
        config: RunConfig,
        adapter: Any = None,
        task_runs: list[TaskRun] | None = None,
        run_id: str = "",
        world: World | None = None,
    ) -> None:
        self.config = config
        self._adapter = adapter
        self._task_runs = task_runs
        self.run_id = run_id or new_run_id()
        self.world = world if world is not None else World()

    def run(self) -> dict[str, Any]:
        """Check, load (unless an adapter was given), run this method, write results.json."""
        return run_methods(self.config, [self.config.spec], self._adapter, self._task_runs)[0]

    # ------------------------------------------------------------------ setup
    def _run_identity(self, adapter: Any, drafter: Any) -> dict[str, Any]:
        return {
            "model": self.config.model,
            **target_identity(adapter),
            "spec": self.config.spec,
            "spec_args": drafter.describe(),
            "seed": self.config.seed,
        }

    @staticmethod
    def _check_or_write(path: Path, identity: dict[str, Any], what: str) -> None:
        """Refuse to mix records of different settings in one folder (resume safety)."""
        diff = check_settings(path, identity)
        if diff is not None:
            k, a, b = diff
            raise HarnessError(
                f"{path.parent} holds {what} run with different settings ({k}: {a!r} -> {b!r}). "
                "Use another --output_path, or delete that folder to start over."
            )

    # -------------------------------------------------------------------- run
    def _run_method(self) -> dict[str, Any]:
        from mmspec.methods import get_spec
        from mmspec.methods.base import RunInfo

        cfg, adapter, task_runs, world = self.config, self._adapter, self._task_runs, self.world
        drafter = get_spec(cfg.spec)(adapter, **cfg.spec_args)
        drafter.attach(RunInfo(output_path=Path(cfg.output_path), model=cfg.model))
        engine = Engine(adapter, drafter)
        run_dir = Path(cfg.output_path) / cfg.model / cfg.spec
        identity = self._run_identity(adapter, drafter)
        plan = world.on_main(lambda: self._plan(run_dir, identity, task_runs))
        mine = {name: world.share(todo) for name, (_, _, todo) in plan.items()}
        if any(mine.values()):
            prepare_execution(adapter, drafter)
            self._warmup(engine, adapter, task_runs)
        elif world.is_main and not any(todo for _, _, todo in plan.values()):
            log.info("%s: every sample is already recorded; only results.json is rewritten", cfg.spec)
        for tr in task_runs:
            total, done, _ = plan[tr.name]
            by_id = {s.id: s for s in tr.task.samples()}
            records = RecordFile(record_path(run_dir / tr.name, world.rank, world.size))
            self._run_task(engine, adapter, tr, [by_id[i] for i in mine[tr.name]], total, done, records)
        processes = world.gather({"rank": world.rank, **devices_info(_devices(adapter))})  # waits for all
        return world.on_main(lambda: self._finish(adapter, drafter, identity, run_dir, task_runs, processes))

    def _plan(
        self, run_dir: Path, identity: dict[str, Any], task_runs: list[TaskRun]
    ) -> dict[str, tuple[int, int, list[str]]]:
        """Main process: check the folders' settings, then per task (samples in this run, samples
        already recorded as ok, ids of the rest). Records an earlier launch left in per-process
        files are merged first; what is recorded is the union of every file either way."""
        self._check_or_write(run_dir / "run.json", identity, "a")
        for tr in task_runs:
            self._check_or_write(run_dir / tr.name / "task.json", tr.identity(), f"a {tr.name}")
        plan = {}
        for tr in task_runs:
            task_dir = run_dir / tr.name
            merge_shards(task_dir, [s.id for s in tr.task.samples()])
            done = read_task(task_dir)
            samples = tr.task.samples()
            if self.config.limit is not None:
                samples = samples[: self.config.limit]
            todo = [s.id for s in samples if s.id not in done or done[s.id].status != "ok"]
            plan[tr.name] = (len(samples), len(samples) - len(todo), todo)
        return plan

    def _finish(
        self,
        adapter: Any,
        drafter: Any,
        identity: dict[str, Any],
        run_dir: Path,
        task_runs: list[TaskRun],
        processes: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Main process, once every process is done: merge their records files, write results.json."""
        for tr in task_runs:
            merge_shards(run_dir / tr.name, [s.id for s in tr.task.samples()])
        return self._write_results(adapter, drafter, identity, run_dir, task_runs, processes)

    def _warmup(self, engine: Engine, adapter: Any, task_runs: list[TaskRun]) -> None:
        """Run the first samples untimed and unrecorded (kernels, allocator, graphs)."""
        if self.config.warmup <= 0 or not task_runs:
            return
        tr = task_runs[0]
        done = 0
        for sample in tr.task.samples():
            if done >= self.config.warmup:
                break
            try:
                self._run_sample(engine, adapter, tr, sample)
            except Exception as exc:  # a warm-up failure must not hide the real run's report
                log.warning("warm-up sample %s failed: %s", sample.id, exc)
            done += 1
        log.info("%s: warm-up: %d sample(s) of %s", self.config.spec, done, tr.name)

    def _run_task(
        self,
        engine: Engine,
        adapter: Any,
        tr: TaskRun,
        todo: list[Any],
        total: int,
        done: int,
        records: RecordFile,
    ) -> None:
        """Run this process's ``todo`` samples of a task (``done`` of its ``total`` are recorded)."""
        world = self.world
        label = f"{self.config.spec} {tr.name}"
        if done and world.is_main:
            log.info("%s: resuming, %d of %d samples already recorded", label, done, total)
        if world.size > 1:  # each process counts its own share
            label, total, done = f"{label} [process {world.rank}/{world.size}]", len(todo), 0
        with Progress(label, total=total, initial=done) as bar:
            for s in todo:
                rec = self._run_sample(engine, adapter, tr, s)
                records.append(rec)
                bar.update(rec)

    def _run_sample(self, engine: Engine, adapter: Any, tr: TaskRun, sample: Any) -> SampleRecord:
        from mmspec.tasks import SampleError

        base = dict(id=sample.id, task=tr.name, category=sample.category, subcategory=sample.subcategory,
                    run=self.run_id)  # fmt: skip
        try:
            images = sample.load_images()
        except SampleError as exc:
            log.error("%s", exc)
            return SampleRecord(**base, status="failed", error=str(exc))
        engine.drafter.reset()
        history: list[str] = []
        turns: list[TurnRecord] = []
        for i in range(len(sample.turns)):
            messages = tr.task.build_messages(sample, i, history)
            try:
                prompt = adapter.encode(messages, images)
            except (ValueError, TypeError, OSError) as exc:  # the processor refused this sample's input
                files = ", ".join(str(p) for p in sample.image_paths) or "no image"
                error = (f"task {tr.name}: sample {sample.id}: the processor cannot take this input "
                         f"({files}): {type(exc).__name__}: {exc}")  # fmt: skip
                log.error("%s", error)
                return SampleRecord(**base, status="failed", error=error)
            seed = turn_seed(self.config.seed, tr.name, sample.id, i)
            res = engine.generate(
                prompt, tr.max_new_tokens, tr.temperature, seed, key=(tr.name, sample.id, i)
            )
            text = adapter.decode(res.token_ids)
            history.append(text)
            turns.append(turn_record(res, text))
        return SampleRecord(**base, status="ok", turns=turns)

    # ---------------------------------------------------------------- results
    def _baseline(self, identity: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> RunRecords | None:
        """The baseline run of the same model/settings under the same output path, if any.

        Only tasks whose settings (``task.json``) equal this folder's are compared."""
        base_dir = Path(self.config.output_path) / self.config.model / "baseline"
        run_json = base_dir / "run.json"
        if not run_json.exists():
            log.warning("no baseline run under %s: speedups and the lossless check are skipped", base_dir)
            return None
        base = read_json(run_json)
        keys = [k for k in identity if k not in ("spec", "spec_args")]
        diff = [k for k in keys if base.get(k) != identity[k]]
        if diff:
            log.warning("baseline under %s ran with different %s: no speedups", base_dir, ", ".join(diff))
            return None
        usable = []
        for name, ident in tasks.items():
            tj = base_dir / name / "task.json"
            if tj.exists() and read_json(tj) == ident:
                usable.append(name)
            elif (base_dir / name).exists():
                log.warning("baseline of %s ran with different task settings: no speedups there", name)
        return read_run(base_dir, usable)

    def _write_results(
        self,
        adapter: Any,
        drafter: Any,
        identity: dict[str, Any],
        run_dir: Path,
        task_runs: list[TaskRun],
        processes: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """results.json over every task recorded in this folder, this run's and earlier runs'."""
        import mmspec

        cfg = self.config
        names = sorted({*task_folders(run_dir), *(tr.name for tr in task_runs)})
        tasks = {name: read_json(run_dir / name / "task.json") for name in names}
        run = read_run(run_dir, names)
        baseline = self._baseline(identity, tasks)
        greedy = {name for name, ident in tasks.items() if ident.get("temperature") == 0}
        fingerprints = {name: ident.get("task_fingerprint") for name, ident in tasks.items()}
        metrics = build_results(run, baseline, compare_tokens=greedy, task_fingerprints=fingerprints)
        fallback = getattr(adapter, "execution_fallback", None)
        results = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "mmspec_version": mmspec.__version__,
            "model": cfg.model,
            "spec": cfg.spec,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": self.run_id,
            "config": {
                **identity,
                "model_args": {k: str(v) for k, v in cfg.model_args.items()},
                "tasks": list(tasks.values()),
                "temperature": cfg.temperature,
                "max_new_tokens": cfg.max_new_tokens,
                "warmup": cfg.warmup,
                "limit": cfg.limit,
                "baseline": str(Path(cfg.output_path) / cfg.model / "baseline") if baseline else None,
                "method": {"name": drafter.name, "paper": drafter.paper},
                **({"execution_fallback": fallback} if fallback else {}),
            },
            "environment": {
                **environment(adapter.device),
                "world_size": len(processes),
                "processes": processes,
            },
            **metrics,
        }
        write_json_atomic(run_dir / "results.json", results)
        log.info("wrote %s", run_dir / "results.json")
        return results


def failed_tasks(results: dict[str, Any]) -> list[str]:
    """Tasks of a results dict in which every recorded sample failed (the CLI exits non-zero)."""
    return [name for name, m in results.get("tasks", {}).items() if m["n_samples"] == 0 and m["n_failed"] > 0]


def turn_record(res: TurnResult, text: str) -> TurnRecord:
    return TurnRecord(
        prompt_tokens=res.prompt_tokens,
        text=text,
        token_ids=res.token_ids,
        new_tokens=res.new_tokens,
        wall_time_s=round(res.wall_time_s, 6),
        prefill_time_s=round(res.prefill_time_s, 6),
        rounds=res.rounds,
        target_forwards=res.target_forwards,
        accepted_per_round=res.accepted_per_round,
        tree_size_per_round=res.tree_size_per_round,
        skipped_rounds=res.skipped_rounds,
        draft_time_s=round(res.draft_time_s, 6),
        verify_time_s=round(res.verify_time_s, 6),
        stop_reason=res.stop_reason,
    )
