"""``mmspec-train``: regenerate answers with the target, fit draft models, evaluate them.

Subcommands: ``regen`` (:mod:`mmspec.train.regen`), ``fit`` (:mod:`mmspec.train.fit`) and ``eval``
(:mod:`mmspec.train.evaluate`). This module imports no torch: models and data load only when a
subcommand runs, so ``--help`` is instant. An :class:`~mmspec.errors.MmspecError` (a bad file, flag
or value) prints as one line and exits 1; any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from mmspec.errors import MmspecError, UsageError
from mmspec.logs import configure_logging
from mmspec.train.data import FORMATS

log = logging.getLogger("mmspec")

PROG = "mmspec-train"


def add_shared_arguments(p: argparse.ArgumentParser, out_help: str, out_required: bool = True) -> None:
    """The flags every subcommand has: the target, the conversations, the seed and where to write."""
    p.add_argument("--model", required=True, help="model name, as for mmspec-harness (see --list models)")
    p.add_argument("--model_args", default="", help="k=v,... e.g. pretrained=DIR,dtype=bfloat16,device=cuda")
    p.add_argument(
        "--data", required=True, help="conversations: MMSpec-like JSONL, ShareGPT or LLaVA-Pretrain JSON"
    )
    p.add_argument("--data_format", default="auto", choices=["auto", *FORMATS],
                   help="layout of --data (default auto: .jsonl -> jsonl, else from the records' keys)")  # fmt: skip
    p.add_argument("--image_root", default=None,
                   help="folder the image names are relative to (default: the data file's folder; "
                        "jsonl: its images/ sub-folder when there is one)")  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="only the first N conversations of --data")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (default 0); regen and eval derive each turn's sampling seed from it, "
                        "the conversation id and the turn")  # fmt: skip
    p.add_argument("--out", required=out_required, default=None, help=out_help)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks for every error")


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    """How the target decodes (regen and eval)."""
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument(
        "--max_new_tokens", type=int, default=1024, help="answer length limit per turn (default 1024)"
    )
    p.add_argument("--system_prompt", default=None,
                   help="system message (default: MMSpec's Vicuna prompt; '' for none)")  # fmt: skip


def add_regen_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "output JSONL (appended; <out stem>.regen.json beside it records the settings)")
    add_generation_arguments(p)
    p.add_argument("--first_turn_suffix", default="",
                   help="text appended (after a space) to every first user turn, e.g. ViSpec stage 2's "
                        "'Please answer with at least 1000 words.'")  # fmt: skip


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "JSON report to write (the table is printed either way)", out_required=False)
    p.add_argument(
        "--spec", required=True, help="draft method, e.g. eagle, eagle2, eagle3, msd, vispec, medusa"
    )
    p.add_argument(
        "--spec_args", default="", help="k=v,... e.g. checkpoint=DIR (checkpoint=random: untrained)"
    )
    add_generation_arguments(p)
    p.add_argument("--max_depth", type=int, default=None,
                   help="report acceptance by depth up to this depth (default: the deepest acceptance seen)")  # fmt: skip
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when a greedy turn differs from the baseline")  # fmt: skip


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """``fit``'s flags, read by :func:`mmspec.train.fit.main_fit`; recipe defaults in README."""
    add_shared_arguments(
        p, "folder of the trained draft (published layout + manifest; resumed when it has checkpoints)"
    )
    p.add_argument("--spec", required=True, choices=["eagle", "eagle2", "eagle3", "msd", "vispec", "medusa"],
                   help="draft method (eagle trains the draft eagle and eagle2 share)")  # fmt: skip
    p.add_argument("--stage", type=int, choices=[1, 2], default=None,
                   help="ViSpec: 1 = text-only stage, 2 = multimodal stage (with --init STAGE1_DIR)")  # fmt: skip
    p.add_argument("--init", default=None, help="continue from a draft folder (e.g. ViSpec's stage-1 draft)")
    p.add_argument("--spec_args", default="", help="k=v,... network settings, e.g. num_q=2 or layers=2:4:5")
    p.add_argument("--max_steps", type=int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument(
        "--time_budget", type=float, default=None, help="stop (and export) after this many seconds"
    )
    p.add_argument(
        "--checkpoint_every", type=int, default=200, help="save a resumable checkpoint every N steps"
    )
    p.add_argument("--grad_accum", type=int, default=1, help="sequences per optimiser step (default 1)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument(
        "--noise", type=float, default=None, help="uniform feature-noise width (default: the recipe's)"
    )
    p.add_argument("--mixed_precision", default="auto", choices=["auto", "no", "bf16", "fp16"],
                   help="auto: bf16 on CUDA, none on the CPU")  # fmt: skip
    p.add_argument("--max_length", type=int, default=2048, help="truncate training sequences to N tokens")
    p.add_argument("--draft_vocab_size", type=int, default=None,
                   help="EAGLE-3 draft vocabulary (default: the published size; the most frequent answer tokens)")  # fmt: skip
    p.add_argument("--ttt_steps", type=int, default=None, help="EAGLE-3 training-time-test steps (default 7)")
    p.add_argument("--mtp_steps", type=int, default=None, help="ViSpec stage 2 self-fed passes (default 1)")
    p.add_argument(
        "--system_prompt", default=None, help="system message (default: MMSpec's Vicuna prompt; '' for none)"
    )
    p.add_argument(
        "--eval_data", default=None, help="held-out conversations: acceptance written to the manifest"
    )
    p.add_argument(
        "--eval_limit", type=int, default=20, help="conversations of --eval_data used (default 20)"
    )
    p.add_argument(
        "--eval_max_new_tokens", type=int, default=256, help="answer length in the held-out evaluation"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Regenerate training answers with the target, fit draft models, evaluate them."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{regen,fit,eval}")
    commands = [
        ("regen", "the target answers a prompt set through the engine (exact token ids; resumable)",
         add_regen_arguments, run_regen),
        ("fit", "train a draft online against the target", add_fit_arguments, run_fit),
        ("eval", "a draft's acceptance on held-out prompts (MAT, acceptance by depth, exact match)",
         add_eval_arguments, run_eval),
    ]  # fmt: skip
    for name, help_text, add_arguments, handler in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        hint = (
            "finished conversations are saved; rerun the same command to resume"
            if args.command == "regen"
            else ""
        )
        print(f"{PROG} {args.command}: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return 130
    except MmspecError as exc:
        if args.verbose:
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1


# ------------------------------------------------------------------ handlers (heavy imports inside)
def _system_prompt(value: str | None) -> str | None:
    from mmspec.train.examples import VICUNA_SYSTEM

    return VICUNA_SYSTEM if value is None else (value or None)


def _conversations(args: argparse.Namespace) -> list[Any]:
    """The conversations of ``--data``, their images checked before any model is loaded."""
    from mmspec.train.data import check_images, read_conversations

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    convs = read_conversations(args.data, args.data_format, args.image_root, args.limit)
    check_images(convs, args.data)
    return convs


def run_regen(args: argparse.Namespace) -> int:
    from mmspec.train.loading import load_target
    from mmspec.train.regen import RegenSettings, regenerate

    if Path(args.out).expanduser().resolve() == Path(args.data).expanduser().resolve():
        raise UsageError(f"--out {args.out} is the input --data file; write the answers to another file")
    settings = RegenSettings(temperature=args.temperature, seed=args.seed, max_new_tokens=args.max_new_tokens,
                             system_prompt=_system_prompt(args.system_prompt),
                             first_turn_suffix=args.first_turn_suffix)  # fmt: skip
    convs = _conversations(args)
    adapter = load_target(args.model, args.model_args)
    done = regenerate(adapter, convs, Path(args.out).expanduser(), settings, model=args.model)
    print(f"{args.out}: {done['conversations']} conversations ({done['regenerated']} regenerated now, "
          f"{done['skipped']} already there), {done['new_tokens']} new tokens")  # fmt: skip
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from mmspec.contract import RunInfo
    from mmspec.records import write_json_atomic
    from mmspec.train.data import data_hash
    from mmspec.train.evaluate import evaluate_draft, format_report
    from mmspec.train.loading import load_method, load_target

    convs = _conversations(args)
    adapter = load_target(args.model, args.model_args)
    drafter = load_method(adapter, args.spec, args.spec_args)
    out = Path(args.out).expanduser() if args.out else None
    drafter.attach(RunInfo(output_path=out.parent if out else Path("."), model=args.model))
    report = evaluate_draft(adapter, drafter, convs, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, seed=args.seed,
                            system_prompt=_system_prompt(args.system_prompt), max_depth=args.max_depth)  # fmt: skip
    report["settings"].update(model=args.model, data=str(args.data), data_sha256=data_hash(args.data))
    print(format_report(report))
    if out is not None:
        write_json_atomic(out, report)
        log.info("wrote %s", out)
    overall = report["overall"]
    if overall["mismatches"]:
        first = overall["mismatches"][0]
        print(f"{PROG} eval: {len(overall['mismatches'])} turn(s) differ from the baseline (not lossless); "
              f"first: id {first['id']} turn {first['turn']} at token {first['first_diff']}",
              file=sys.stderr)  # fmt: skip
        return 3 if args.strict else 0
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from mmspec.train.fit import main_fit  # the trainer (written apart from this module)

    return int(main_fit(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
