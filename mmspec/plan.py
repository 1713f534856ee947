"""A run's plan, checked before any model is loaded.

Everything a user can get wrong — flag values, the output folder, task names and files, data
files, image folders, templates (rendered on the first sample), method names, their arguments and
draft checkpoints — is checked here first, so a mistake fails in about a second instead of after a
7B model has loaded. Task checks import only the task subsystem (YAML, Jinja2, PIL; `datasets`
when data is read); method checks come after them and import the method modules (and torch).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmspec.errors import MmspecError, UsageError
from mmspec.registry import did_you_mean

log = logging.getLogger("mmspec")


class HarnessError(MmspecError):
    """A run cannot start or continue; the message says what to change."""


@dataclass
class RunConfig:
    """Everything the CLI resolves before a run (see ``mmspec-harness --help``)."""

    tasks: list[str]
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    spec: str = "baseline"
    spec_args: dict[str, Any] = field(default_factory=dict)
    output_path: Path = Path("results")
    limit: int | None = None
    temperature: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    warmup: int = 3
    include_path: list[str] = field(default_factory=list)
    dataset_root: str | None = None
    strict: bool = False

    def check(self) -> None:
        """Every value usable as given, else a ``UsageError`` naming the flag and the value."""
        if self.limit is not None and self.limit < 1:
            raise UsageError(
                f"--limit must be at least 1 (got {self.limit}); leave it out to run every sample"
            )
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UsageError(
                f"--max_new_tokens must be at least 1 (got {self.max_new_tokens}); "
                "leave it out to use each task's value"
            )
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UsageError(f"--temperature must be a number >= 0 (got {self.temperature}); 0 is greedy")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more (got {self.warmup})")
        if not self.tasks:
            raise UsageError("--tasks is empty; name at least one task or group (see --list tasks)")
        check_output_path(Path(self.output_path))


def check_output_path(path: Path) -> None:
    """``--output_path`` is a folder, or can be created: its nearest existing parent is a writable folder."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise UsageError(f"--output_path {path} is a file; pass a folder for the records and results")
    if not probe.is_dir():
        raise UsageError(f"--output_path {path}: {probe} is a file, so the folder cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--output_path {path}: {probe} is not writable")


@dataclass
class TaskRun:
    """A loaded task with its resolved generation settings."""

    task: Any
    temperature: float
    max_new_tokens: int

    @property
    def name(self) -> str:
        return self.task.name

    def identity(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "task_fingerprint": self.task.fingerprint,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
        }


def load_task_runs(config: RunConfig) -> list[TaskRun]:
    """The tasks of a run, each loaded and checked: data read, images present, templates rendered."""
    from mmspec.tasks import TaskManager

    tm = TaskManager(include_paths=config.include_path)
    runs = []
    for name in tm.resolve(config.tasks):
        task = tm.load(name, dataset_root=config.dataset_root)
        gen = task.generation_kwargs
        temp = config.temperature if config.temperature is not None else gen.get("temperature", 0.0)
        if not gen.get("do_sample", temp > 0) and config.temperature is None:
            temp = 0.0
        max_new = (
            config.max_new_tokens if config.max_new_tokens is not None else gen.get("max_new_tokens", 1024)
        )
        task.check(limit=config.limit)
        runs.append(TaskRun(task, float(temp or 0.0), int(max_new)))
    return runs


# --------------------------------------------------------------------------- methods
def resolve_specs(text: str) -> list[str]:
    """``--spec``: one name, a comma list, or ``all`` (every method; ``oracle`` only by name).

    The baseline runs first; ViSkip methods run after the others, because they switch on an
    attention tap in the shared target that stays on for the rest of the process.
    """
    from mmspec.methods import SPECS, spec_entry

    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            names += [n for n, e in SPECS.items() if not e.benchmark_aid]
        else:
            spec_entry(part)  # unknown names fail here, with close matches
            names.append(part)
    if not names:
        raise UsageError("--spec is empty; name a method, a comma list of methods, or `all`")
    names = list(dict.fromkeys(names))
    if len(names) > 1:
        names.sort(key=lambda n: (n != "baseline", SPECS[n].gate))  # stable: otherwise as given
    return names


def _has_presets(cls: type) -> bool:
    """A method with named presets (a ``presets`` table, or its own ``preset_table``)."""
    from mmspec.methods.base import Drafter

    return bool(cls.presets) or any("preset_table" in vars(k) for k in cls.__mro__ if k is not Drafter)


def assign_spec_args(specs: list[str], given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``--spec_args`` per method: ``method.key=v`` for one method, ``key=v`` for every method that has it.

    With one method every key goes to it (an unknown key is then that method's error, with close
    matches). Imports the method modules (their defaults say which keys they take).
    """
    from mmspec.methods import SPECS, get_spec
    from mmspec.methods.base import SpecArgError

    out: dict[str, dict[str, Any]] = {s: {} for s in specs}
    defaults = {s: get_spec(s).defaults for s in specs}
    for key, value in given.items():
        prefix, dot, bare = key.partition(".")
        if dot and prefix in SPECS:
            if prefix not in out:
                raise UsageError(
                    f"--spec_args {key}: {prefix!r} is not one of the methods run ({', '.join(specs)})"
                )
            out[prefix][bare] = value
        elif len(specs) == 1:
            out[specs[0]][key] = value
        else:
            if key == "preset":  # every method that has presets (their tables check the name)
                takers = [s for s in specs if _has_presets(get_spec(s))]
                for s in takers:
                    out[s][key] = value
                continue
            takers = [s for s in specs if key in defaults[s]]
            if not takers:
                known = {k for d in defaults.values() for k in d}
                raise SpecArgError(
                    f"--spec_args {key}: none of the methods run ({', '.join(specs)}) takes it"
                    f"{did_you_mean(key, known)}; use `method.{key}=...` for one method"
                )
            for s in takers:
                out[s][key] = value
    return out


def check_methods(
    specs: list[str], spec_args: dict[str, dict[str, Any]], model: str, model_args: dict[str, Any],
    skip_unavailable: bool = False,
) -> list[str]:  # fmt: skip
    """Check every method's arguments and draft checkpoint before the target loads.

    Returns the methods to run: with ``skip_unavailable`` (``--spec all``) a draft-model method
    with no checkpoint (none given, none published for this model) is left out with a warning;
    otherwise that is an error.
    """
    from mmspec.adapters import get_model_entry
    from mmspec.methods import get_spec, spec_entry
    from mmspec.methods.base import SpecArgError, parse_spec_args

    target = model_args.get("pretrained") or get_model_entry(model).pretrained
    runnable = []
    for spec in specs:
        cls = get_spec(spec)
        args = parse_spec_args(spec, cls.defaults, spec_args.get(spec, {}))
        draft = spec_entry(spec).draft
        if draft is not None and "checkpoint" in args:
            problem = _checkpoint_problem(spec, draft, str(args["checkpoint"] or ""), target)
            if problem is not None:
                if skip_unavailable:
                    log.warning("--spec all: skipping %s (%s)", spec, problem)
                    continue
                raise SpecArgError(f"{spec}: {problem}")
        check = getattr(cls, "check_args", None)  # optional cheap hook of a method
        if callable(check):
            check(args)
        runnable.append(spec)
    return runnable


def _checkpoint_problem(spec: str, draft: str, checkpoint: str, target: str | None) -> str | None:
    """Why ``checkpoint=`` (or the published default) cannot be loaded; None when it looks loadable."""
    from mmspec.hub import check_hub_id, looks_like_hub_id
    from mmspec.methods.checkpoints import default_checkpoint

    source = checkpoint or default_checkpoint(target, draft)
    if not source:
        return (
            f"no published {draft} draft is known for {target or 'this model'}; pass "
            "--spec_args checkpoint=DIR (a draft in the published layout) or checkpoint=random"
        )
    if source == "random":
        return None
    if looks_like_hub_id(source):
        check_hub_id(source, None, f"{spec} draft checkpoint", "--spec_args checkpoint=DIR")
        return None
    if not Path(os.path.expanduser(source)).is_dir():
        return f"checkpoint={source}: no such folder (and not a hub id of the form owner/name)"
    return None
