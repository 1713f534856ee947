"""``mmspec-train regen``: the target answers a prompt set itself, through our own engine.

Training a draft on the target's own answers (self-distillation) is what EAGLE-3, Medusa and
ViSpec's stage 2 recommend, and decoding through :class:`~mmspec.engine.Engine` with the baseline
drafter produces exactly the tokens ``mmspec-harness --spec baseline`` would: same prompts
(:func:`~mmspec.train.examples.turn_prompt`, earlier turns replayed with the *regenerated* answers),
same per-turn seeds (:func:`~mmspec.harness.turn_seed`), same stop rule. Each answer is kept as
text and as its exact token ids (up to and including the stop token).

The output is the ``jsonl`` layout of :mod:`mmspec.train.data` plus a ``regen`` block, one line per
finished conversation, appended and fsynced as it finishes (:func:`~mmspec.records.append_jsonl`).
A rerun skips ids already written (a torn last line is dropped) and refuses different settings,
which ``<out>.regen.json`` records (:func:`~mmspec.records.check_settings`), so a resumed run ends
with the same file as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mmspec.engine import Engine, TurnResult
from mmspec.errors import MmspecError
from mmspec.harness import prepare_execution, target_identity, turn_seed
from mmspec.methods.baseline import Baseline
from mmspec.progress import Progress
from mmspec.records import append_jsonl, check_settings, read_jsonl
from mmspec.train.data import Conversation, DataError, default_image_root
from mmspec.train.examples import VICUNA_SYSTEM, load_images, turn_prompt

log = logging.getLogger("mmspec")

#: the task part of every turn's seed: ``turn_seed(seed, "regen", conversation id, turn)``
SEED_TASK = "regen"


class RegenError(MmspecError):
    """An output file that cannot be continued with these settings; the message says what to do."""


@dataclass(frozen=True)
class RegenSettings:
    """How answers are generated; every field is recorded and compared on resume."""

    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 1024
    system_prompt: str | None = VICUNA_SYSTEM
    first_turn_suffix: str = ""  # e.g. ViSpec stage 2: "Please answer with at least 1000 words."

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise RegenError(f"--max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise RegenError(f"--temperature must be >= 0, got {self.temperature}")


@dataclass
class _Finished:
    """What :class:`~mmspec.progress.Progress` reads from a finished conversation."""

    id: str
    turns: list[TurnResult] = field(default_factory=list)
    status: str = "ok"


def settings_path(out: str | Path) -> Path:
    """``answers.jsonl`` -> ``answers.regen.json``: the settings an output was written with."""
    out = Path(out)
    return out.with_name(out.stem + ".regen.json")


def with_first_turn_suffix(conv: Conversation, suffix: str) -> Conversation:
    """``conv`` with ``suffix`` appended to its first user turn after a space (the turns written out
    are the prompts the target saw)."""
    if not suffix:
        return conv
    return replace(conv, turns=[f"{conv.turns[0]} {suffix}", *conv.turns[1:]])


def regenerate_conversation(
    engine: Engine, conv: Conversation, settings: RegenSettings
) -> tuple[Conversation, list[TurnResult]]:
    """Every turn of ``conv`` answered by the target; the history of turn k is its own answers."""
    adapter = engine.adapter
    images = load_images(conv)
    engine.drafter.reset()
    answers: list[str] = []
    results: list[TurnResult] = []
    for k in range(len(conv.turns)):
        prompt = turn_prompt(adapter, conv, k, answers, images, settings.system_prompt)
        res = engine.generate(
            prompt,
            settings.max_new_tokens,
            settings.temperature,
            turn_seed(settings.seed, SEED_TASK, conv.id, k),
            key=(SEED_TASK, conv.id, k),
        )
        answers.append(adapter.decode(res.token_ids))
        results.append(res)
    return replace(conv, answers=answers, answer_ids=[r.token_ids for r in results]), results


def regenerate(
    adapter: Any,
    conversations: list[Conversation],
    out: str | Path,
    settings: RegenSettings | None = None,
    model: str | None = None,
) -> dict[str, int]:
    """Answer ``conversations`` with ``adapter`` into ``out`` (resuming what is there); returns counts.

    ``model`` is the ``--model`` name recorded with the answers (default: the adapter's registry name).
    """
    out, settings = Path(out), settings or RegenSettings()
    _check_unique_ids(conversations)
    model = model or getattr(adapter, "registry_name", None) or adapter.pretrained
    done = _open_output(out, {"model": model, **target_identity(adapter), **asdict(settings)})
    block = {"model": model, **asdict(settings)}
    convs = [with_first_turn_suffix(c, settings.first_turn_suffix) for c in conversations]
    todo = [c for c in convs if c.id not in done]
    if len(todo) < len(convs):
        log.info(
            "regen: resuming, %d of %d conversations already in %s", len(convs) - len(todo), len(convs), out
        )

    engine = Engine(adapter, Baseline(adapter))
    if todo:
        prepare_execution(adapter, engine.drafter)
    image_root = _absolute(default_image_root(out, "jsonl"))
    tokens = 0
    with Progress("regen", total=len(convs), initial=len(convs) - len(todo)) as bar:
        for conv in todo:
            answered, results = regenerate_conversation(engine, conv, settings)
            answered = replace(answered, images=[_absolute(p) for p in answered.images])
            line = {**answered.to_json(image_root), "regen": block}
            append_jsonl(out, json.dumps(line, ensure_ascii=False, separators=(",", ":")))
            tokens += sum(r.new_tokens for r in results)
            bar.update(_Finished(conv.id, results))
    return {"conversations": len(convs), "regenerated": len(todo), "skipped": len(convs) - len(todo),
            "new_tokens": tokens}  # fmt: skip


def _check_unique_ids(conversations: list[Conversation]) -> None:
    seen: set[str] = set()
    for conv in conversations:
        if conv.id in seen:
            raise DataError(f"conversation id {conv.id!r} appears twice; regen output is keyed by id")
        seen.add(conv.id)


def _open_output(out: Path, identity: dict[str, Any]) -> set[str]:
    """Ids already answered in ``out``, after checking it was written with these settings."""
    sidecar = settings_path(out)
    written = read_jsonl(out)
    if written and not sidecar.exists():
        raise RegenError(
            f"{out} already holds data but {sidecar.name} is missing beside it, so its settings are "
            "unknown; use another --out"
        )
    if not written and sidecar.exists():
        sidecar.unlink()  # nothing was answered with the old settings: nothing to mix
    diff = check_settings(sidecar, identity)
    if diff:
        key, old, new = diff
        raise RegenError(
            f"{out} holds answers regenerated with different settings ({key}: {old!r} -> {new!r}); "
            f"use another --out, or delete {out.name} and {sidecar.name} to start over"
        )
    ids = set()
    for lineno, obj in written:
        if "id" not in obj:
            raise RegenError(f"{out}:{lineno}: a line without an id (not written by mmspec-train regen)")
        ids.add(str(obj["id"]))
    return ids


def _absolute(path: Path) -> Path:
    """Absolute and normalised, links kept (so image paths inside the output folder stay relative)."""
    return Path(os.path.abspath(path))
