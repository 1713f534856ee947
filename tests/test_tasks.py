"""Tests of `mmspec.tasks`: built-in tasks, the MMSpec prompt protocol, user tasks, and errors."""

from __future__ import annotations

import json
import logging
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2.sandbox import SecurityError
from PIL import Image

from mmspec.tasks import Sample, SampleError, Task, TaskError, TaskManager
from mmspec.tasks.standin import standin_image

VICUNA = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
TOPICS = {
    "general_vqa": "general vqa",
    "text_vqa": "text vqa",
    "captioning": "image captioning",
    "chart_vqa": "chart understanding",
    "reasoning": "complex reasoning pro",
    "multiturn": "multi-turn conversation",
}
USER_TASK = """\
task: my_task
dataset_path: json
dataset_kwargs:
  data_files: "{{ task_dir }}/data.jsonl"
test_split: train
image_field: image
image_dir: "{{ task_dir }}/images"
"""
RECORDS = [
    {"id": "r1", "image": "r1.jpg", "turns": ["What is this?"], "kind": "a"},
    {"id": "r2", "image": "r2.jpg", "turns": ["First?", "Second?"], "kind": "b"},
]


def write_task(
    folder: Path, yaml_text: str = USER_TASK, records: list | None = None, name: str = "task.yaml"
) -> Path:
    """A user task folder: one YAML file, `data.jsonl` and an image per record (unless given `records=[]`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    records = RECORDS if records is None else records
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (folder / "images").mkdir(exist_ok=True)
    for r in records:
        if isinstance(r.get("image"), str):
            standin_image(r["image"]).save(folder / "images" / r["image"])
    return folder


def load_user_task(folder: Path, name: str = "my_task") -> Task:
    return TaskManager(include_paths=[folder]).load(name)


@pytest.fixture(scope="module", autouse=True)
def private_datasets_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the datasets cache of the many throwaway tasks below out of the shared temp folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSPEC_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def tm() -> TaskManager:
    return TaskManager()


# ---------------------------------------------------------------------- built-in tasks
def test_builtin_names(tm: TaskManager) -> None:
    expected = {f"mmspec_{k}" for k in TOPICS} | {f"mmspec_testmini_{k}" for k in TOPICS} | {"mmspec_demo"}
    expected |= {f"proxy_{k}" for k in TOPICS}  # generated held-out data for trained proxy targets
    assert set(tm.task_names()) == expected
    assert tm.group_names() == ["mmspec_test", "mmspec_testmini", "proxy_test"]


def test_every_builtin_task_loads(tm: TaskManager, mmspec_root: Path) -> None:
    for name in tm.task_names():
        task = tm.load(name, dataset_root=mmspec_root)
        samples = task.samples()
        assert samples and all(isinstance(s, Sample) for s in samples), name
        assert all(p.is_file() for s in samples for p in s.image_paths), name
        max_new = 64 if name == "mmspec_demo" else 1024  # the demo is capped so tiny-model demos are quick
        assert task.generation_kwargs == {"max_new_tokens": max_new, "temperature": 0.0, "do_sample": False}
        assert task.config["system_prompt"] == VICUNA
        assert len(task.fingerprint) == 64


@pytest.mark.parametrize(
    ("group", "n_samples", "n_turns"), [("mmspec_testmini", 60, 69), ("mmspec_test", 600, 723)]
)
def test_split_counts(tm: TaskManager, mmspec_root: Path, group: str, n_samples: int, n_turns: int) -> None:
    samples = [s for name in tm.resolve([group]) for s in tm.load(name, dataset_root=mmspec_root).samples()]
    assert len(samples) == n_samples
    assert sum(len(s.turns) for s in samples) == n_turns
    assert len({s.id for s in samples}) == n_samples


def test_test_categories(tm: TaskManager, mmspec_root: Path) -> None:
    for key, topic in TOPICS.items():
        samples = tm.load(f"mmspec_{key}", dataset_root=mmspec_root).samples()
        assert len(samples) == 100
        assert {s.category for s in samples} == {topic}
        assert all(s.subcategory == s.doc["category"] for s in samples)
        assert all(s.image_paths == [mmspec_root / "test" / "images" / s.doc["image"]] for s in samples)


def test_group_expansion(tm: TaskManager, tmp_path: Path) -> None:
    assert tm.resolve(["mmspec_testmini"]) == [f"mmspec_testmini_{k}" for k in TOPICS]
    assert tm.resolve(["mmspec_testmini_text_vqa", "mmspec_demo", "mmspec_testmini", "mmspec_demo"]) == [
        "mmspec_testmini_text_vqa",
        "mmspec_demo",
        *[f"mmspec_testmini_{k}" for k in TOPICS if k != "text_vqa"],
    ]
    assert tm.resolve(["mmspec_testmini_*v*"]) == [
        "mmspec_testmini_chart_vqa",
        "mmspec_testmini_general_vqa",
        "mmspec_testmini_text_vqa",
    ]
    (tmp_path / "all.yaml").write_text(
        "group: everything\ntask: [mmspec_demo, mmspec_test, mmspec_testmini]\n"
    )
    nested = TaskManager(include_paths=[tmp_path]).resolve(["everything"])
    assert nested == [
        "mmspec_demo",
        *[f"mmspec_{k}" for k in TOPICS],
        *[f"mmspec_testmini_{k}" for k in TOPICS],
    ]


def test_demo_task(tm: TaskManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSPEC_ROOT", "/nonexistent")  # the demo reads its own folder
    task = tm.load("mmspec_demo")
    samples = task.samples()
    assert len(samples) == 7 and sum(len(s.turns) for s in samples) == 9
    assert {s.category for s in samples} == set(TOPICS.values())
    assert [len(s.turns) for s in samples if s.category == "multi-turn conversation"] == [3]
    sizes = 0
    for s in samples:
        images = s.load_images()
        assert len(images) == 1 and images[0].mode == "RGB"
        assert min(images[0].size) >= 224 and max(images[0].size) <= 448
        sizes += s.image_paths[0].stat().st_size
    assert sizes < 300_000


def test_messages_follow_the_mmspec_protocol(tm: TaskManager, mmspec_root: Path) -> None:
    task = tm.load("mmspec_testmini_multiturn", dataset_root=mmspec_root)
    sample = next(s for s in task.samples() if s.id == "mmspec_509")
    q = sample.turns
    assert len(q) == 3
    system = {"role": "system", "content": [{"type": "text", "text": VICUNA}]}
    first_user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q[0]}]}
    assert task.build_messages(sample, 0, []) == [system, first_user]
    assert task.build_messages(sample, 2, ["answer 0", "answer 1"]) == [
        system,
        first_user,
        {"role": "assistant", "content": [{"type": "text", "text": "answer 0"}]},
        {"role": "user", "content": [{"type": "text", "text": q[1]}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer 1"}]},
        {"role": "user", "content": [{"type": "text", "text": q[2]}]},
    ]
    with pytest.raises(ValueError, match="needs 2 earlier answers"):
        task.build_messages(sample, 2, ["answer 0"])


# ---------------------------------------------------------------------- user tasks
def test_text_only_task_and_doc_to_text(tmp_path: Path) -> None:
    yaml_text = USER_TASK.replace("image_field: image\n", "") + (
        'system_prompt: null\ndoc_to_text: "[{{ doc.kind }} #{{ turn_index }}] {{ turn }}"\n'
    )
    task = load_user_task(write_task(tmp_path, yaml_text))
    sample = task.samples()[1]
    assert sample.image_paths == [] and sample.load_images() == []
    assert sample.category == "my_task" and sample.subcategory is None
    assert task.build_messages(sample, 1, ["one"]) == [
        {"role": "user", "content": [{"type": "text", "text": "[b #0] First?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "one"}]},
        {"role": "user", "content": [{"type": "text", "text": "[b #1] Second?"}]},
    ]


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    task = load_user_task(write_task(tmp_path, USER_TASK + "doc_to_text: \"{{ ''.__class__.__mro__ }}\"\n"))
    with pytest.raises(TaskError, match="sandbox") as err:
        task.build_messages(task.samples()[0], 0, [])
    assert isinstance(err.value.__cause__, SecurityError)


def test_function_next_to_the_yaml(tmp_path: Path) -> None:
    folder = write_task(
        tmp_path / "t",
        USER_TASK + "process_docs: !function helpers.only_b\ndoc_to_messages: !function helpers.build\n",
    )
    (folder / "helpers.py").write_text(
        textwrap.dedent(
            """\
            def only_b(dataset):
                return dataset.filter(lambda doc: doc["kind"] == "b")

            def build(doc, turn_index, history, config):
                return [{"role": "user", "content": [{"type": "text", "text": f"{config['task']}:{doc['turns'][turn_index]}"}]}]
            """
        )
    )
    task = load_user_task(folder)
    [sample] = task.samples()
    assert sample.id == "r2"
    assert task.build_messages(sample, 1, ["x"]) == [
        {"role": "user", "content": [{"type": "text", "text": "my_task:Second?"}]}
    ]


def test_include_path_adds_and_overrides_tasks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_task(tmp_path / "mine")
    assert "my_task" in TaskManager(include_paths=[folder]).task_names()
    assert "my_task" not in TaskManager().task_names()
    override = USER_TASK.replace("task: my_task", "task: mmspec_demo")
    write_task(tmp_path / "over", override)
    with caplog.at_level(logging.WARNING):
        task = TaskManager(include_paths=[tmp_path / "over"]).load("mmspec_demo")
    assert task.source == (tmp_path / "over" / "task.yaml").resolve()
    assert "overrides" in caplog.text


def test_dataset_root_resolution(tm: TaskManager, mmspec_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSPEC_ROOT", str(mmspec_root))
    assert tm.load("mmspec_testmini_text_vqa").config["image_dir"] == str(mmspec_root / "testmini" / "images")
    monkeypatch.delenv("MMSPEC_ROOT")
    monkeypatch.chdir(mmspec_root.parent)
    data = tm.load("mmspec_text_vqa").config["dataset_kwargs"]["data_files"]
    assert data == str(mmspec_root.parent / "dataset" / "MMSpec" / "test" / "mmspec.jsonl")
    assert tm.load("mmspec_text_vqa", dataset_root="/x").config["image_dir"] == "/x/test/images"


def test_fingerprint_tracks_config_and_data(tmp_path: Path) -> None:
    folder = write_task(tmp_path)
    first = load_user_task(folder).fingerprint
    assert load_user_task(folder).fingerprint == first
    (folder / "task.yaml").write_text(USER_TASK + "generation_kwargs: {max_new_tokens: 8}\n")
    assert load_user_task(folder).fingerprint != first
    # the first YAML again, one more record
    write_task(folder, records=[*RECORDS, {"id": "r3", "turns": ["x"], "image": "r3.jpg"}])
    assert load_user_task(folder).fingerprint != first


def test_stdlib_reader_when_datasets_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_task(tmp_path)
    expected = [(s.id, s.turns, s.image_paths) for s in load_user_task(folder).samples()]
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    assert [(s.id, s.turns, s.image_paths) for s in load_user_task(folder).samples()] == expected


def test_standin_images_are_deterministic() -> None:
    """Same key -> same pixels in another process (another hash seed); other keys -> other images."""
    import hashlib
    import subprocess

    code = (
        "import hashlib; from mmspec.tasks.standin import standin_image; "
        "print(hashlib.sha256(standin_image('mmspec_001.jpg').tobytes()).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert hashlib.sha256(standin_image("mmspec_001.jpg").tobytes()).hexdigest() == other
    assert standin_image("mmspec_001.jpg").size == (128, 232)  # a function of sha256 of the name only
    assert standin_image("mmspec_002.jpg").tobytes() != standin_image("mmspec_001.jpg").tobytes()
    sizes = [standin_image(f"mmspec_{i:03d}.jpg").size for i in range(1, 21)]
    assert all(64 <= n <= 256 for size in sizes for n in size) and len(set(sizes)) > 10


# ---------------------------------------------------------------------- errors
def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    write_task(tmp_path, USER_TASK + "generation_kwargs: {max_new_tokens: 8\n")
    with pytest.raises(TaskError, match=r"task\.yaml:\d+: invalid YAML"):
        TaskManager(include_paths=[tmp_path]).resolve(["my_task"])


def test_unknown_key_names_file_and_suggests(tmp_path: Path) -> None:
    write_task(tmp_path, USER_TASK + "sytem_prompt: hi\n")
    with pytest.raises(
        TaskError, match=r"task\.yaml: unknown key `sytem_prompt` \(did you mean `system_prompt`\?\)"
    ):
        TaskManager(include_paths=[tmp_path]).load("my_task")
    write_task(tmp_path, USER_TASK + "generation_kwargs: {max_tokens: 8}\n")
    with pytest.raises(
        TaskError, match=r"`generation_kwargs.max_tokens` \(did you mean `max_new_tokens`\?\)"
    ):
        TaskManager(include_paths=[tmp_path]).load("my_task")


def test_duplicate_task_names_in_one_folder(tmp_path: Path) -> None:
    write_task(tmp_path)
    (tmp_path / "again.yaml").write_text(USER_TASK)
    with pytest.raises(TaskError, match=r"'my_task' is defined twice: in .*again\.yaml and in .*task\.yaml"):
        TaskManager(include_paths=[tmp_path]).load("my_task")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"id": "a", "image": "a.jpg", "turns": []}],
            r"record 1 \(id 'a'\) `turns` must be a non-empty list",
        ),
        ([{"id": "a", "image": "a.jpg", "turns": ["ok", ""]}], r"record 1 \(id 'a'\) `turns` must be"),
        (
            [{"id": "a", "image": "a.jpg", "turns": ["q"]}, {"image": "b.jpg", "turns": ["q"]}],
            r"record 2 has no `id`",
        ),
        (
            [{"id": "a", "image": "a.jpg", "turns": ["q"]}, {"id": "a", "image": "a.jpg", "turns": ["q"]}],
            r"record 2 \(id 'a'\) duplicate id \(also record 1\)",
        ),
    ],
    ids=["empty-turns", "blank-turn", "missing-id", "duplicate-id"],
)
def test_bad_records_name_data_file_and_record(tmp_path: Path, records: list, message: str) -> None:
    task = load_user_task(write_task(tmp_path, records=records))
    with pytest.raises(TaskError, match=message) as err:
        task.samples()
    assert str(tmp_path / "data.jsonl") in str(err.value)


def test_missing_jsonl_says_where_and_how(
    tm: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSPEC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError) as err:
        tm.load("mmspec_testmini_general_vqa").samples()
    text = str(err.value)
    assert str(tmp_path / "dataset" / "MMSpec" / "testmini" / "mmspec.jsonl") in text
    assert "--dataset_root" in text and "MMSPEC_ROOT" in text and "testmini/images/" in text
    assert "github.com/killthefullmoon/MMSpec" in text


def test_missing_image_fails_only_that_sample(tmp_path: Path) -> None:
    folder = write_task(tmp_path)
    (folder / "images" / "r2.jpg").unlink()
    (folder / "images" / "r1.jpg").write_bytes(b"not a jpeg")
    samples = load_user_task(folder).samples()
    with pytest.raises(SampleError, match=r"task my_task: sample r2: image file not found: .*r2\.jpg"):
        samples[1].load_images()
    with pytest.raises(SampleError, match=r"task my_task: sample r1: cannot read image .*r1\.jpg"):
        samples[0].load_images()


def test_unknown_task_name_suggests_close_matches(tm: TaskManager) -> None:
    with pytest.raises(TaskError, match=r"unknown task 'mmspec_testmni'.*mmspec_testmini.*--list tasks"):
        tm.resolve(["mmspec_testmni"])
    with pytest.raises(TaskError, match="is a group"):
        tm.load("mmspec_test")


def test_until_is_rejected_with_the_reason(tmp_path: Path) -> None:
    write_task(tmp_path, USER_TASK + "generation_kwargs: {until: ['</s>']}\n")
    with pytest.raises(
        TaskError, match=r"task\.yaml: `generation_kwargs\.until`: stop strings are not supported"
    ):
        TaskManager(include_paths=[tmp_path]).load("my_task")


def test_broken_yaml_below_an_include_path_spares_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_task(tmp_path / "good")
    (tmp_path / "bad" / "deep").mkdir(parents=True)
    (tmp_path / "bad" / "deep" / "broken.yaml").write_text("task: [unclosed\n")
    (tmp_path / "bad" / "typo.yaml").write_text(
        USER_TASK.replace("my_task", "typo_task") + "sytem_prompt: x\n"
    )
    (tmp_path / "bad" / "group.yaml").write_text("group: my_group\ntask: [my_task, nope_task]\n")
    with caplog.at_level(logging.WARNING):
        tm = TaskManager(include_paths=[tmp_path])
    assert tm.resolve(["my_task"]) == ["my_task"] and tm.load("my_task").samples()
    assert set(tm.problems) == {tmp_path / "bad" / "deep" / "broken.yaml", tmp_path / "bad" / "typo.yaml",
                                tmp_path / "bad" / "group.yaml"}  # fmt: skip
    assert caplog.text.count("broken.yaml") == 1  # reported once
    with pytest.raises(
        TaskError, match=r"'typo_task' cannot be used: .*typo\.yaml: unknown key `sytem_prompt`"
    ):
        tm.resolve(["typo_task"])
    with pytest.raises(
        TaskError, match=r"'my_group' cannot be used: .*group\.yaml: group 'my_group' lists 'nope_task'"
    ):
        tm.resolve(["my_group"])
    with pytest.raises(TaskError, match=r"could not be read \(see the warnings above\): .*broken\.yaml"):
        tm.resolve(["what_was_in_broken"])  # a name no file can be tied to: the files to fix are listed


def test_check_renders_templates_and_needs_the_image_folder(tmp_path: Path) -> None:
    folder = write_task(tmp_path / "ok")
    load_user_task(folder).check()
    shown = load_user_task(folder).preview(load_user_task(folder).samples()[1])
    assert shown[1][-2] == {"role": "assistant", "content": [{"type": "text", "text": "<answer to turn 0>"}]}
    bad_template = write_task(tmp_path / "tpl", USER_TASK + 'doc_to_text: "{{ doc.nope }}"\n')
    with pytest.raises(
        TaskError, match=r"`doc_to_text` \(sample r1, turn 0\): template uses an undefined value"
    ):
        load_user_task(bad_template).check()
    no_images = write_task(tmp_path / "noimg")
    for image in (no_images / "images").iterdir():
        image.unlink()
    with pytest.raises(TaskError, match=r"none of the 2 images is in .*noimg/images.*check `image_dir`"):
        load_user_task(no_images).check()
    (no_images / "images").rmdir()
    with pytest.raises(TaskError, match=r"image folder not found: .*noimg/images"):
        load_user_task(no_images).check()


def test_missing_mmspec_images_say_how_to_get_them(tm: TaskManager, tmp_path: Path) -> None:
    (tmp_path / "testmini").mkdir()
    (tmp_path / "testmini" / "mmspec.jsonl").write_text(json.dumps(RECORDS[0] | {"topic": "text vqa"}) + "\n")
    with pytest.raises(TaskError, match=r"image folder not found: .*testmini/images\. Get MMSpec with its images: "
                                        r"`git clone --depth 1 https://github\.com/killthefullmoon/MMSpec`"):  # fmt: skip
        tm.load("mmspec_testmini_text_vqa", dataset_root=tmp_path).check()


def test_yaml_tags_are_safe(tmp_path: Path) -> None:
    write_task(tmp_path, USER_TASK + "metadata: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(TaskError, match=r"task\.yaml:\d+: invalid YAML"):
        TaskManager(include_paths=[tmp_path]).resolve(["my_task"])


def test_load_images_returns_rgb(tmp_path: Path) -> None:
    folder = write_task(tmp_path)
    Image.new("L", (70, 90), 128).save(folder / "images" / "r1.jpg")
    [image] = load_user_task(folder).samples()[0].load_images()
    assert image.mode == "RGB" and image.size == (70, 90)


# ---------------------------------------------------------------------- untrusted data and bad values
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for i in range(200000) %}x{% endfor %}", "template error: OverflowError: Range too big"),
        ("{{ 'x' * 10**8 }}", "template output is larger than 1000000 characters"),
        ("{% for i in range(90000) %}{{ 'y' * 90000 }}{% endfor %}", "template output is larger than"),
        ("{{ 2 ** 100000000 }}", "template output is larger than"),
        ("{{ '%999999999d' % 1 }}", "template output is larger than"),
        ("{{ '{:>999999999}'.format(1) }}", "template output is larger than"),
        ("{{ 'a'.ljust(999999999) }}", "template output is larger than"),
        ("{{ 'a' | center(999999999) }}", "template output is larger than"),
        ("{{ ('a' * 999999) | replace('a', 'aaaa') }}", "template output is larger than"),
    ],
    ids=["range", "repeat", "loop", "power", "percent", "format", "ljust", "center", "replace"],
)
def test_templates_are_bounded(tmp_path: Path, template: str, message: str) -> None:
    task = load_user_task(write_task(tmp_path, USER_TASK + f'doc_to_text: "{template}"\n'))
    with pytest.raises(TaskError, match=rf"`doc_to_text` \(sample r1, turn 0\): {message}"):
        task.build_messages(task.samples()[0], 0, [])


def test_bad_data_files_name_the_file(tmp_path: Path) -> None:
    folder = write_task(tmp_path)
    data = folder / "data.jsonl"
    data.write_bytes(data.read_bytes() + b'{"id": "r3", "turns": ["caf\xe9"]}\n')  # Latin-1, not UTF-8
    with pytest.raises(TaskError, match=rf"{data}:3: not valid UTF-8"):
        load_user_task(folder).samples()
    data.write_text("")
    with pytest.raises(TaskError, match=rf"{data}: the data file is empty"):
        load_user_task(folder).samples()


@pytest.mark.parametrize("name", ["../escape.jpg", "/etc/hostname", "sub/../../escape.jpg"])
def test_image_paths_stay_inside_the_image_folder(tmp_path: Path, name: str) -> None:
    folder = write_task(tmp_path / "t", records=[])
    (folder / "data.jsonl").write_text(json.dumps({"id": "a", "image": name, "turns": ["q"]}) + "\n")
    with pytest.raises(TaskError, match=rf"record 1 \(id 'a'\) image {re.escape(repr(name))} is outside the image "
                                        r"folder .*image_roots"):  # fmt: skip
        load_user_task(folder).samples()


def test_absolute_image_path_with_a_relative_image_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_task(
        tmp_path / "t", USER_TASK.replace('"{{ task_dir }}/images"', "rel_images"), records=[]
    )
    (folder / "data.jsonl").write_text(
        json.dumps({"id": "a", "image": "/etc/hostname", "turns": ["q"]}) + "\n"
    )
    with pytest.raises(TaskError, match=r"image '/etc/hostname' is outside the image folder rel_images"):
        load_user_task(folder).samples()


def test_image_roots_allow_another_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared_images"
    shared.mkdir()
    standin_image("x.jpg").save(shared / "x.jpg")
    records = [{"id": "a", "image": str(shared / "x.jpg"), "turns": ["q"]},
               {"id": "b", "image": "../../shared_images/x.jpg", "turns": ["q"]}]  # fmt: skip
    folder = write_task(tmp_path / "t", USER_TASK + f"image_roots: [{str(shared)!r}]\n", records=records)
    samples = load_user_task(folder).samples()
    assert [len(s.load_images()) for s in samples] == [1, 1]


def test_only_image_formats_are_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An EPS file named .jpg never reaches PIL's EPS plugin (which would run Ghostscript)."""
    from PIL import EpsImagePlugin

    def ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("the EPS decoder was reached")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", ghostscript)
    folder = write_task(tmp_path)
    (folder / "images" / "r1.jpg").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    )
    with pytest.raises(
        SampleError,
        match=r"sample r1: cannot read image .*r1\.jpg: not an image of an allowed format \(BMP, GIF, JPEG",
    ):
        load_user_task(folder).samples()[0].load_images()


def test_include_stays_inside_the_task_folders(tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text("dataset_path: json\ntest_split: train\n")
    folder = write_task(tmp_path / "tasks", "include: ../outside.yaml\ntask: my_task\n")
    with pytest.raises(
        TaskError, match=r"task\.yaml: `include: \.\./outside\.yaml` is outside the task folders"
    ):
        load_user_task(folder)
    (tmp_path / "tasks" / "base_yaml").write_text("dataset_path: json\ntest_split: train\n")
    (tmp_path / "tasks" / "task.yaml").write_text("include: base_yaml\ntask: my_task\n")
    assert load_user_task(folder).config["dataset_path"] == "json"


def test_list_never_imports_task_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mmspec.cli import main

    folder = write_task(tmp_path, USER_TASK + "process_docs: !function helpers.mark\n")
    marker = tmp_path / "imported"
    (folder / "helpers.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef mark(d):\n    return d\n")
    assert main(["--list", "tasks", "--include_path", str(folder)]) == 0
    assert "my_task" in capsys.readouterr().out and not marker.exists()
    load_user_task(folder).samples()  # loading the task is what runs its code
    assert marker.exists()
