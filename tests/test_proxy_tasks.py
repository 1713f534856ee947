"""The generated ``proxy_test`` tasks and the draft-training prompt export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmspec.tasks import TaskError, TaskManager

TOPICS = {
    "proxy_general_vqa": "general vqa",
    "proxy_text_vqa": "text vqa",
    "proxy_captioning": "image captioning",
    "proxy_chart_vqa": "chart understanding",
    "proxy_reasoning": "complex reasoning pro",
    "proxy_multiturn": "multi-turn conversation",
}


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("gen_cache")
    old = os.environ.get("MMSPEC_CACHE")
    os.environ["MMSPEC_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("MMSPEC_CACHE", None)
    else:
        os.environ["MMSPEC_CACHE"] = old


def test_proxy_test_group_generates_its_data_on_first_use(private_cache: Path) -> None:
    tm = TaskManager()
    assert tm.resolve(["proxy_test"]) == list(TOPICS)
    fingerprints = {}
    for name, topic in TOPICS.items():
        task = tm.load(name)
        samples = task.samples()
        assert len(samples) == 30
        assert {s.category for s in samples} == {topic}
        images = samples[0].load_images()
        assert images and images[0].size == (448, 448)
        msgs = task.build_messages(samples[0], 0, [])
        assert msgs[0]["role"] == "system" and msgs[1]["content"][0] == {"type": "image"}
        fingerprints[name] = task.fingerprint
    multi = TaskManager().load("proxy_multiturn").samples()
    assert all(2 <= len(s.turns) <= 3 for s in multi)
    # generated once, into the cache; a second manager reads the same files (same fingerprint)
    folders = [p for p in (private_cache / "generated").iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert TaskManager().load("proxy_general_vqa").fingerprint == fingerprints["proxy_general_vqa"]


def test_unknown_generated_dataset_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "task: bad\ngenerated_dataset: my_module\ndataset_path: json\ntest_split: train\n"
    )
    tm = TaskManager(include_paths=[str(tmp_path)])
    assert "bad" not in tm.task_names()  # reported and skipped; the other tasks still load
    assert "built-in generated datasets" in tm.problems[tmp_path / "bad.yaml"]
    with pytest.raises(TaskError, match="built-in generated datasets"):
        tm.load("bad")


def test_export_prompts_layout(tmp_path: Path) -> None:
    from mmspec.proxy.export import export_prompts

    path = export_prompts(tmp_path, range(1_000_000, 1_000_002), 12, size=64)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 12
    assert records[0]["id"] == "proxy-1000000-0" and records[1]["id"] == "proxy-1000001-0"
    for r in records:
        assert {"id", "image", "turns", "answers", "category", "topic"} <= set(r)
        assert len(r["turns"]) == len(r["answers"]) >= 1
        if r["image"] is not None:
            assert (tmp_path / "images" / r["image"]).is_file()
    assert any(r["image"] is None for r in records) or len(records) < 20
    with pytest.raises(ValueError):
        export_prompts(tmp_path / "x", range(2_000_000, 2_000_001), 1)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmspec.proxy.cli import main

    assert main(["export", "--out", str(tmp_path), "--n", "3", "--size", "56"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "prompts.jsonl"
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == ["proxy-1000000-0", "proxy-1000000-1", "proxy-1000000-2"]
