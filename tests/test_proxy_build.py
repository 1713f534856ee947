"""Micro proxy builds end to end: train, save, manifest, load through the adapters, decode, rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmspec.proxy.presets import PRESETS

FAMILIES = ("qwen25vl", "llava15")


@pytest.fixture(scope="module")
def proxy_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private ``$MMSPEC_CACHE`` holding micro builds of both families (built once per module)."""
    from mmspec.proxy.build import ensure_proxy_model

    cache = tmp_path_factory.mktemp("proxy_cache")
    old = os.environ.get("MMSPEC_CACHE")
    os.environ["MMSPEC_CACHE"] = str(cache)
    try:
        folders = {f: ensure_proxy_model(f, "micro", 0, log=lambda m: None) for f in FAMILIES}
        yield folders
    finally:
        if old is None:
            os.environ.pop("MMSPEC_CACHE", None)
        else:
            os.environ["MMSPEC_CACHE"] = old


@pytest.mark.parametrize("family", FAMILIES)
def test_manifest_records_recipe_hash_and_quality(proxy_cache, family: str) -> None:
    from mmspec.proxy.manifest import read_manifest, state_sha256

    folder = proxy_cache[family]
    m = read_manifest(folder)
    for key in ("proxy_build_version", "generator_version", "seed", "size", "preset", "parameters", "recipe",
                "training", "heldout", "weights_sha256", "quality", "gates", "environment", "reproduce"):  # fmt: skip
        assert key in m, key
    assert (
        m["family"] == family
        and m["size"] == "micro"
        and m["training"]["steps"] == PRESETS["micro"].max_steps
    )
    q = m["quality"]
    for key in (
        "accuracy",
        "image_dependence",
        "loop_share",
        "missing_eos_share",
        "mean_top1_prob",
        "near_tie_share",
    ):
        assert key in q, key
    from transformers import AutoModelForImageTextToText

    assert state_sha256(AutoModelForImageTextToText.from_pretrained(folder)) == m["weights_sha256"]


@pytest.mark.parametrize("family", FAMILIES)
def test_training_beats_the_untrained_model_on_heldout_loss(proxy_cache, family: str) -> None:
    from mmspec.proxy.manifest import read_manifest

    held = read_manifest(proxy_cache[family])["heldout"]
    assert held["answer_ce"] < held["init_answer_ce"] - 1.0, held
    assert held["generator_entropy_per_answer_token"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_by_name_and_by_folder_and_decodes_through_the_engine(proxy_cache, family: str) -> None:
    from mmspec.adapters import load_model
    from mmspec.engine import Engine
    from mmspec.methods.baseline import Baseline
    from mmspec.proxy.generator import SYSTEM_PROMPT, sample
    from mmspec.tasks.messages import mmspec_chat

    by_name = load_model(f"proxy-{family}", {"proxy_size": "micro", "dtype": "float32", "device": "cpu"})
    assert Path(by_name.pretrained) == proxy_cache[family]
    by_suffix = load_model(f"proxy-{family}-micro", {"dtype": "float32", "device": "cpu"})
    assert by_suffix.pretrained == by_name.pretrained
    by_dir = load_model(family, {"pretrained": str(proxy_cache[family]), "dtype": "float32", "device": "cpu"})
    s = sample(2_000_000, 0, size=112)
    msgs = mmspec_chat(SYSTEM_PROMPT, s.prompts[:1], [], 1 if s.image is not None else 0)
    outs = []
    for adapter in (by_name, by_dir):
        prompt = adapter.encode(msgs, [s.image] if s.image is not None else [])
        outs.append(Engine(adapter, Baseline(adapter)).generate(prompt, 12).token_ids)
    assert outs[0] == outs[1] and len(outs[0]) >= 1


def test_time_budget_run_is_reproduced_by_its_recorded_step_count(tmp_path: Path) -> None:
    """The GPU default times early warmup steps, then fixes the step count; rebuilding with the seed and
    the recorded ``--max_steps`` (the manifest's reproduce command) gives the same weights, bit for bit."""
    from mmspec.proxy.build import build

    quiet = {"evaluate": False, "log": lambda m: None}
    a = build("qwen25vl", "micro", 3, tmp_path / "a", time_budget=1.0, **quiet)
    steps = a["training"]["steps"]
    assert a["training"]["calibrated_from_time_budget"] and steps >= 5
    assert f"--seed 3 --max_steps {steps}" in a["reproduce"]
    assert "quality" not in a and (tmp_path / "a" / "model.safetensors").is_file()
    b = build("qwen25vl", "micro", 3, tmp_path / "b", max_steps=steps, **quiet)
    assert not b["training"]["calibrated_from_time_budget"]
    assert a["weights_sha256"] == b["weights_sha256"]
