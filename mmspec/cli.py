"""``mmspec-harness``: lm-eval-style command line for speculative-decoding benchmarks on VLMs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("mmspec")


def parse_kv(text: str | None, flag: str) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}`` (lm-eval's ``--model_args`` form)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag}: expected key=value pairs separated by commas, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmspec-harness",
        description="Benchmark lossless speculative decoding on vision-language models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--tasks", help="comma list of tasks and groups (e.g. mmspec_testmini,mmspec_demo)")
    p.add_argument("--model", help="model name (see --list models)")
    p.add_argument("--spec", default="baseline", help="speculative method (see --list specs)")
    p.add_argument("--model_args", default="", help="k=v,... e.g. pretrained=DIR,dtype=bfloat16,device=cuda")
    p.add_argument("--spec_args", default="", help="k=v,... method parameters")
    p.add_argument("--output_path", default="results", help="root folder of records and results")
    p.add_argument("--limit", type=int, default=None, help="first N samples of each task")
    p.add_argument("--temperature", type=float, default=None, help="override the tasks' temperature")
    p.add_argument("--max_new_tokens", type=int, default=None, help="override the tasks' max_new_tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=3, help="untimed, unrecorded samples run first")
    p.add_argument("--include_path", action="append", default=[], help="extra folder of task YAML")
    p.add_argument(
        "--dataset_root", default=None, help="MMSpec data root (else $MMSPEC_ROOT, else ./dataset/MMSpec)"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit non-zero if any output differs from the baseline"
    )
    p.add_argument("--list", choices=["tasks", "models", "specs"], help="list names and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def list_names(kind: str, include_path: list[str]) -> str:
    if kind == "models":
        from mmspec.adapters import MODELS

        return "\n".join(f"{n:16s} {e.description}" for n, e in sorted(MODELS.items()))
    if kind == "specs":
        from mmspec.methods import SPECS, get_spec

        return "\n".join(f"{n:16s} {get_spec(n).paper}" for n in sorted(SPECS))
    from mmspec.tasks import TaskManager

    tm = TaskManager(include_paths=include_path)
    lines = [f"group  {g}" for g in tm.group_names()] + [f"task   {t}" for t in tm.task_names()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        if args.list:
            print(list_names(args.list, args.include_path))
            return 0
        if not args.tasks or not args.model:
            print("mmspec-harness: --tasks and --model are required (or use --list)", file=sys.stderr)
            return 2
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: finished samples are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors: one clear line, no traceback
        if args.verbose or not _is_user_error(exc):
            raise
        print(f"mmspec-harness: error: {exc}", file=sys.stderr)
        return 1


def _is_user_error(exc: Exception) -> bool:
    from mmspec.adapters.base import AdapterError
    from mmspec.harness import HarnessError
    from mmspec.methods.base import SpecArgError
    from mmspec.registry import UnknownNameError
    from mmspec.tasks import SampleError, TaskError

    return isinstance(exc, (AdapterError, HarnessError, SpecArgError, UnknownNameError, TaskError,
                            SampleError, ValueError, FileNotFoundError))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from mmspec.harness import Harness, RunConfig
    from mmspec.report import format_summary

    config = RunConfig(
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
        model=args.model,
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
    results = Harness(config).run()
    print(format_summary(results))
    return strict_exit_code(results) if args.strict else 0


def strict_exit_code(results: dict[str, Any]) -> int:
    """Non-zero when any compared turn differs from the baseline (``--strict``)."""
    overall = results.get("overall", {})
    bad = overall.get("mismatches") or []
    if bad:
        first = bad[0]
        print(
            f"mmspec-harness: --strict: {len(bad)} turn(s) differ from the baseline; first: task "
            f"{first['task']} id {first['id']} turn {first['turn']} at token {first['first_diff']}",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
