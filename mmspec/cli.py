"""``mmspec-harness``: lm-eval-style command line for speculative-decoding benchmarks on VLMs.

Imports are lazy on purpose: ``--list``, ``--show_prompt`` and every task or name error run
without importing torch or transformers, so a typo fails in about a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mmspec.errors import MmspecError, UsageError
from mmspec.logs import configure_logging

log = logging.getLogger("mmspec")

#: exit codes besides 0 (success) and 2 (argparse usage errors)
EXIT_ERROR, EXIT_MISMATCH, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 1, 3, 4, 130


def parse_kv(text: str | None, flag: str) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` (lm-eval's ``--model_args`` form)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"{flag}: expected key=value pairs separated by commas, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmspec-harness",
        description="Benchmark lossless speculative decoding on vision-language models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--tasks", help="comma list of tasks, groups and patterns (e.g. mmspec_testmini,mmspec_demo)"
    )
    p.add_argument("--model", help="model name (see --list models)")
    p.add_argument(
        "--spec",
        default="baseline",
        help="method, comma list of methods (baseline runs first, the target loads once) or `all` "
        "(see --list specs)",
    )
    p.add_argument("--model_args", default="", help="k=v,... e.g. pretrained=DIR,dtype=bfloat16,device=cuda")
    p.add_argument(
        "--spec_args",
        default="",
        help="k=v,... method parameters; with several methods `k=v` goes to each method that has k, "
        "`method.k=v` to one",
    )
    p.add_argument("--output_path", default="results", help="root folder of records and results")
    p.add_argument("--limit", type=int, default=None, help="first N samples of each task (N >= 1)")
    p.add_argument("--temperature", type=float, default=None, help="override the tasks' temperature (>= 0)")
    p.add_argument(
        "--max_new_tokens", type=int, default=None, help="override the tasks' max_new_tokens (>= 1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--warmup", type=int, default=3, help="untimed, unrecorded samples run first by each method"
    )
    p.add_argument(
        "--include_path", action="append", default=[], help="extra folder of task YAML (repeatable)"
    )
    p.add_argument(
        "--dataset_root", default=None, help="MMSpec data root (else $MMSPEC_ROOT, else ./dataset/MMSpec)"
    )
    p.add_argument("--strict", action="store_true", help="exit 3 if any output differs from the baseline")
    p.add_argument(
        "--show_prompt",
        type=int,
        metavar="N",
        default=None,
        help="print the chat messages of the first N samples of each task and exit (no model needed)",
    )
    p.add_argument("--list", choices=["tasks", "models", "specs"], help="list names and exit")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks for every error"
    )
    return p


def list_names(kind: str, include_path: list[str]) -> str:
    """``--list``: static tables for models and specs; tasks are indexed, never imported."""
    if kind == "models":
        from mmspec.adapters import MODELS

        return "\n".join(f"{n:16s} {e.description}" for n, e in sorted(MODELS.items()))
    if kind == "specs":
        from mmspec.methods import SPECS

        return "\n".join(f"{n:16s} {e.summary}" for n, e in sorted(SPECS.items()))
    from mmspec.tasks import TaskManager

    tm = TaskManager(include_paths=include_path)
    lines = [f"group  {g}" for g in tm.group_names()] + [f"task   {t}" for t in tm.task_names()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        if args.list:
            print(list_names(args.list, args.include_path))
            return 0
        if args.show_prompt is not None:
            if not args.tasks:
                raise UsageError("--show_prompt needs --tasks")
            print(show_prompts(config_from_args(args), args.show_prompt))
            return 0
        if not args.tasks or not args.model:
            print("mmspec-harness: --tasks and --model are required (or use --list)", file=sys.stderr)
            return 2
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: finished samples are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MmspecError as exc:  # the user's to fix: one clear line (any other error keeps its traceback)
        if args.verbose:
            raise
        if not getattr(exc, "reported", False):  # not already printed by another process of the launch
            print(f"mmspec-harness: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def config_from_args(args: argparse.Namespace) -> Any:
    from mmspec.plan import RunConfig

    return RunConfig(
        tasks=[t.strip() for t in (args.tasks or "").split(",") if t.strip()],
        model=args.model or "",
        model_args=parse_kv(args.model_args, "--model_args"),
        spec=args.spec,
        spec_args=parse_kv(args.spec_args, "--spec_args"),
        output_path=Path(args.output_path),
        limit=args.limit,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        warmup=args.warmup,
        include_path=args.include_path,
        dataset_root=args.dataset_root,
        strict=args.strict,
    )


def run(args: argparse.Namespace) -> int:
    from mmspec.adapters.registry import resolve_model_args
    from mmspec.plan import load_task_runs, resolve_specs

    config = config_from_args(args)
    config.check()
    specs = resolve_specs(args.spec)  # names first: static tables, nothing heavy imported
    resolve_model_args(config.model, config.model_args)
    task_runs = load_task_runs(config)  # data, images, templates: still no torch

    from mmspec.distributed import launch_world
    from mmspec.harness import failed_tasks, run_methods
    from mmspec.report import format_summary

    all_specs = "all" in [s.strip() for s in args.spec.split(",")]
    world = launch_world()
    runs = run_methods(config, specs, task_runs=task_runs, skip_unavailable=all_specs, world=world)
    show = world.is_main  # every process of a launch has the results (same exit status); one prints them
    for results in runs if show else ():
        print(format_summary(results))
    code = 0
    for results in runs:
        for task in failed_tasks(results):
            first = results["tasks"][task].get("first_error")
            if show:
                print(
                    f"mmspec-harness: every sample of {task} failed ({results['spec']}); first error: {first}",
                    file=sys.stderr,
                )
            code = EXIT_ALL_FAILED
    if args.strict and not code:
        code = max((strict_exit_code(r, show) for r in runs), default=0)
    return code


def show_prompts(config: Any, n: int) -> str:
    """``--show_prompt N``: every turn's chat messages for the first N samples of each task."""
    from mmspec.plan import load_task_runs

    if n < 1:
        raise UsageError(f"--show_prompt must be at least 1 (got {n})")
    config.limit = n
    out = []
    for tr in load_task_runs(config):
        for sample in tr.task.samples()[:n]:
            images = ", ".join(str(p) for p in sample.image_paths) or "none"
            out.append(f"=== {tr.name} / sample {sample.id} ({len(sample.turns)} turn(s); images: {images})")
            for i, messages in enumerate(tr.task.preview(sample)):
                out.append(f"--- turn {i}")
                out.extend(_format_message(m) for m in messages)
    return "\n".join(out)


def _format_message(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        parts = [c.get("text", "") if c.get("type") == "text" else f"<{c.get('type')}>" for c in content]
        content = " ".join(parts)
    elif not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    return f"[{message.get('role')}] {content}"


def strict_exit_code(results: dict[str, Any], show: bool = True) -> int:
    """Non-zero when any compared turn differs from the baseline (``--strict``); ``show`` prints why."""
    overall = results.get("overall", {})
    bad = overall.get("mismatches") or []
    if bad:
        first = bad[0]
        if show:
            print(
                f"mmspec-harness: --strict: {results['spec']}: {len(bad)} turn(s) differ from the baseline; "
                f"first: task {first['task']} id {first['id']} turn {first['turn']} at token {first['first_diff']}",
                file=sys.stderr,
            )
        return EXIT_MISMATCH
    return 0


if __name__ == "__main__":
    sys.exit(main())
