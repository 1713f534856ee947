"""``mmspec-train regen``: exact ids, regenerated history, seeds, resume, settings guard, layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _models import SYSTEM, tiny_adapter
from _train_data import PROMPTS, write_images, write_json, write_prompts

from mmspec.engine import Engine
from mmspec.harness import turn_seed
from mmspec.methods.baseline import Baseline
from mmspec.records import RecordsError, append_jsonl, read_jsonl
from mmspec.tasks.messages import mmspec_chat
from mmspec.train import regen as regen_mod
from mmspec.train.data import DataError, read_conversations
from mmspec.train.examples import conversation_examples, load_images
from mmspec.train.regen import RegenError, RegenSettings, regenerate, settings_path

MAX_NEW = 5


def adapter(model: str = "tiny-qwen25vl"):
    return tiny_adapter(model, "float32")


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def reference_turns(model_adapter, conv, answers: list[str], temperature: float = 0.0, seed: int = 0):
    """Each turn decoded by Engine + Baseline from the harness's messages, with ``answers`` as history."""
    engine = Engine(model_adapter, Baseline(model_adapter))
    images = load_images(conv)
    out = []
    for k in range(len(conv.turns)):
        messages = mmspec_chat(SYSTEM, conv.turns[: k + 1], answers[:k], len(images))
        prompt = model_adapter.encode(messages, images)
        out.append(
            engine.generate(prompt, MAX_NEW, temperature, turn_seed(seed, "regen", conv.id, k)).token_ids
        )
    return out


@pytest.mark.parametrize("model", ["tiny-qwen25vl", "tiny-llava15"])
def test_regen_keeps_the_engines_exact_ids_and_its_own_history(tmp_path, model):
    data = write_prompts(tmp_path)
    convs = read_conversations(data)
    out = tmp_path / "out" / "answers.jsonl"
    summary = regenerate(adapter(model), convs, out, RegenSettings(max_new_tokens=MAX_NEW))
    assert summary == {"conversations": 3, "regenerated": 3, "skipped": 0,
                       "new_tokens": sum(len(i) for r in lines(out) for i in r["answer_ids"])}  # fmt: skip

    written = lines(out)
    assert [r["id"] for r in written] == ["c1", "c2", "c3"]
    for conv, rec in zip(convs, written):
        assert rec["turns"] == conv.turns and rec["category"] == conv.category
        assert rec["regen"] == {"model": model, "temperature": 0.0, "seed": 0, "max_new_tokens": MAX_NEW,
                                "system_prompt": SYSTEM, "first_turn_suffix": ""}  # fmt: skip
        assert rec["answers"] == [adapter(model).decode(ids) for ids in rec["answer_ids"]]
        # the exact ids, with the *regenerated* answers as the history of later turns
        assert rec["answer_ids"] == reference_turns(adapter(model), conv, rec["answers"])
        for ids in rec["answer_ids"]:
            assert 1 <= len(ids) <= MAX_NEW
            stops = [i for i, t in enumerate(ids) if t in adapter(model).stop_token_ids]
            assert stops in ([], [len(ids) - 1])  # a stop token only as the last id
    # the input's own answers were not the history: turn 2 of c1 differs when they are
    c1 = convs[0]
    assert reference_turns(adapter(model), c1, c1.answers)[1] != written[0]["answer_ids"][1]


def test_output_reads_back_as_training_examples(tmp_path):
    convs = read_conversations(write_prompts(tmp_path))
    out = tmp_path / "answers.jsonl"  # beside the input: image names stay relative to images/
    regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=MAX_NEW))
    assert lines(out)[0]["image"] == "img0.png"
    back = read_conversations(out)
    assert [c.images for c in back] == [c.images for c in convs]
    examples = conversation_examples(adapter(), back[0])
    assert [e.answer_ids for e in examples] == back[0].answer_ids
    assert examples[1].prompt.ids[: examples[1].prompt_len] == (
        adapter().encode(mmspec_chat(SYSTEM, back[0].turns, back[0].answers[:1], 1), load_images(back[0])).ids
    )


def test_sampled_regen_is_reproducible_per_turn_seed(tmp_path):
    convs = read_conversations(write_prompts(tmp_path), limit=2)
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / f"{name}.jsonl"
        regenerate(adapter(), convs, out, RegenSettings(temperature=1.0, seed=seed, max_new_tokens=MAX_NEW))
        runs[name] = out.read_text(encoding="utf-8").replace('"seed":8', '"seed":7')
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    first = lines(tmp_path / "a.jsonl")[0]
    assert first["answer_ids"] == reference_turns(adapter(), convs[0], first["answers"], 1.0, seed=7)


@pytest.mark.parametrize("damage", ["first_line_only", "torn_last_line"])
def test_resume_after_a_kill_gives_the_uninterrupted_file(tmp_path, monkeypatch, damage):
    convs = read_conversations(write_prompts(tmp_path))
    settings = RegenSettings(temperature=1.0, seed=3, max_new_tokens=MAX_NEW)
    whole = tmp_path / "whole.jsonl"
    regenerate(adapter(), convs, whole, settings)
    text = whole.read_text(encoding="utf-8")

    out = tmp_path / "killed.jsonl"
    settings_path(out).write_text(settings_path(whole).read_text(encoding="utf-8"), encoding="utf-8")
    first, second = text.splitlines(keepends=True)[:2]
    out.write_text(
        first + (second[: len(second) // 2] if damage == "torn_last_line" else ""), encoding="utf-8"
    )

    done: list[str] = []
    real = regen_mod.regenerate_conversation
    monkeypatch.setattr(
        regen_mod, "regenerate_conversation", lambda e, c, s: (done.append(c.id), real(e, c, s))[1]
    )
    summary = regenerate(adapter(), convs, out, settings)
    assert done == ["c2", "c3"] and summary["skipped"] == 1
    assert out.read_text(encoding="utf-8") == text

    done.clear()
    regenerate(adapter(), convs, out, settings)  # nothing left to do
    assert done == [] and out.read_text(encoding="utf-8") == text


def test_changed_settings_are_refused(tmp_path):
    convs = read_conversations(write_prompts(tmp_path), limit=1)
    out = tmp_path / "answers.jsonl"
    regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=2))
    with pytest.raises(
        RegenError, match=r"different settings \(max_new_tokens: 2 -> 3\).*answers\.regen\.json"
    ):
        regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=3))
    with pytest.raises(RegenError, match="system_prompt"):
        regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=2, system_prompt=None))
    settings_path(out).unlink()
    with pytest.raises(RegenError, match="answers.regen.json is missing"):
        regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=2))


def test_stale_settings_without_answers_are_replaced(tmp_path):
    convs = read_conversations(write_prompts(tmp_path), limit=1)
    out = tmp_path / "answers.jsonl"
    settings_path(out).write_text(json.dumps({"max_new_tokens": 99}), encoding="utf-8")
    regenerate(adapter(), convs, out, RegenSettings(max_new_tokens=2))
    assert json.loads(settings_path(out).read_text())["max_new_tokens"] == 2


def test_sharegpt_and_llava_pretrain_layouts(tmp_path):
    sharegpt = write_json(tmp_path / "sharegpt.json", [
        {"id": "s1", "conversations": [{"from": "human", "value": "Hi!"}, {"from": "gpt", "value": "Hello."},
                                       {"from": "human", "value": "Tell a joke."}, {"from": "gpt", "value": "No."}]},
        {"id": "s2", "conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
    ])  # fmt: skip
    s = read_conversations(sharegpt)
    assert [(c.id, c.turns, c.answers, c.images) for c in s] == [
        ("s1", ["Hi!", "Tell a joke."], ["Hello.", "No."], []), ("s2", ["What is 2+2?"], ["4"], [])]  # fmt: skip

    write_images(tmp_path / "pretrain")
    pretrain = write_json(tmp_path / "pretrain" / "blip_laion_cc_sbu_558k.json", [
        {"id": "p1", "image": "img0.png", "conversations": [
            {"from": "human", "value": "<image>\nRender a clear and concise summary of the photo."},
            {"from": "gpt", "value": "a red square and a yellow circle"}]},
    ])  # fmt: skip
    p = read_conversations(pretrain)
    assert p[0].turns == ["Render a clear and concise summary of the photo."]
    assert p[0].images == [tmp_path / "pretrain" / "img0.png"]

    suffix = "Please answer with at least 1000 words."
    out = tmp_path / "out" / "stage2.jsonl"
    regenerate(adapter(), p, out, RegenSettings(max_new_tokens=3, first_turn_suffix=suffix))
    rec = lines(out)[0]
    assert rec["turns"] == [f"Render a clear and concise summary of the photo. {suffix}"]
    assert rec["regen"]["first_turn_suffix"] == suffix
    assert Path(rec["image"]) == (tmp_path / "pretrain" / "img0.png").absolute()  # outside the output folder
    assert read_conversations(out)[0].images == [Path(rec["image"])]


def test_bad_input_names_the_file_and_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "turns": ["a"]}\n{"id": "y", "turns": ["a"], "answers": ["a", "b"]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: record 2"):
        read_conversations(bad)
    convs = read_conversations(write_prompts(tmp_path, [PROMPTS[2], PROMPTS[2]]))
    with pytest.raises(DataError, match="'c3' appears twice"):
        regenerate(adapter(), convs, tmp_path / "o.jsonl", RegenSettings(max_new_tokens=1))
    with pytest.raises(RegenError, match="max_new_tokens must be at least 1"):
        RegenSettings(max_new_tokens=0)


def test_jsonl_records_drop_a_torn_tail_and_refuse_a_corrupt_middle(tmp_path):
    path = tmp_path / "r.jsonl"
    append_jsonl(path, '{"id": "a"}')
    with open(path, "a") as fh:
        fh.write('{"id": "b", "ans')
    assert [obj for _, obj in read_jsonl(path)] == [{"id": "a"}]
    append_jsonl(path, '{"id": "c"}')
    assert path.read_text() == '{"id": "a"}\n{"id": "c"}\n'
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(RecordsError, match=r"r\.jsonl:2"):
        read_jsonl(path)
