"""Draft networks trained on a tiny target by ``mmspec-train`` (regen + fit; seconds on a CPU).

A random draft proposes tokens the target almost never samples, so a temperature-1 test with it
would check nothing and greedy runs would never accept. These drafts are trained by the real
trainer on the target's own greedy and sampled answers to a few image prompts (the prompts the
acceptance tests then decode), loaded back from the exported folder like any published draft.
Acceptance during decoding therefore also checks that the incremental tree/accept path computes
what the trainer's full-sequence pass computes.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path

from _models import make_image, tiny_adapter

from mmspec.methods import get_spec
from mmspec.train.data import read_conversations
from mmspec.train.fit import FitConfig, fit
from mmspec.train.regen import RegenSettings, regenerate

QUESTIONS = ("Describe the picture.", "What colour is the square?", "Explain the chart in detail.",
             "What is shown here?", "Write a caption.", "Is there a circle?")  # fmt: skip

#: the training recipe behind each method (ViSkip variants use their inner method's draft)
TRAINED_AS = {"eagle": "eagle", "eagle2": "eagle", "eagle3": "eagle3", "msd": "msd", "vispec": "vispec",
              "medusa": "medusa"}  # fmt: skip

_ROOT = tempfile.TemporaryDirectory(prefix="mmspec-test-drafts-")


@cache
def training_data(model: str, dtype: str, n_tokens: int = 48) -> Path:
    """The target's own greedy and temperature-1 answers to the image prompts of ``QUESTIONS``."""
    folder = Path(_ROOT.name) / f"{model}-{dtype}"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    prompts = []
    for i, q in enumerate(QUESTIONS):
        make_image(seed=i).save(folder / "images" / f"img{i}.png")
        prompts.append(json.dumps({"id": f"q{i}", "image": f"img{i}.png", "turns": [q]}))
    (folder / "prompts.jsonl").write_text("\n".join(prompts) + "\n")
    adapter = tiny_adapter(model, dtype)
    answers = []
    for temperature in (0.0, 1.0):
        part = folder / f"answers_t{temperature:g}.jsonl"
        settings = RegenSettings(temperature=temperature, seed=100, max_new_tokens=n_tokens)
        regenerate(adapter, read_conversations(folder / "prompts.jsonl"), part, settings, model=model)
        for line in part.read_text().splitlines():  # ids made unique across the two parts
            rec = json.loads(line)
            rec["id"] = f"{rec['id']}-t{temperature:g}"
            answers.append(json.dumps(rec))
    data = folder / "answers.jsonl"
    data.write_text("\n".join(answers) + "\n")
    return data


@cache
def trained_folder(model: str, dtype: str, recipe: str, steps: int) -> Path:
    out = Path(_ROOT.name) / f"{model}-{dtype}-{recipe}-{steps}"
    options = {"eagle3": {"ttt_steps": 3}, "vispec": {"stage": 2}, "medusa": {"lr": 1e-2}}.get(recipe, {})
    cfg = FitConfig(spec=recipe, data=str(training_data(model, dtype)), out=str(out), max_steps=steps,
                    checkpoint_every=10**6, lr=options.pop("lr", 3e-3), noise=0.0, **options)  # fmt: skip
    fit(cfg, adapter=tiny_adapter(model, dtype))
    return out


def distilled_drafter(model: str, spec: str, dtype: str = "float64", steps: int = 150, **spec_args):
    """``spec`` on ``tiny_adapter(model, dtype)`` with a draft trained on the target (cached)."""
    recipe = TRAINED_AS[spec.removesuffix("_vskip")]
    folder = trained_folder(model, dtype, recipe, steps)
    return get_spec(spec)(tiny_adapter(model, dtype), checkpoint=str(folder), **spec_args)
