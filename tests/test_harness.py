"""The harness end to end: CLI, records, results, resume, speedups, lossless check, bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from _models import TINY_MODELS, tiny_adapter

from mmspec.cli import main
from mmspec.harness import Harness, HarnessError, RunConfig
from mmspec.methods import SPECS, get_spec, register_spec
from mmspec.methods.base import Drafter, SpecArgError
from mmspec.plan import assign_spec_args, resolve_specs
from mmspec.records import RecordFile
from mmspec.tasks import TaskManager
from mmspec.tree import DraftTree

DEMO_SAMPLES, DEMO_TURNS = 7, 9


def cli(*args: str) -> int:
    return main(list(args))


def read_results(out: Path, model: str, spec: str) -> dict:
    return json.loads((out / model / spec / "results.json").read_text())


@pytest.mark.parametrize("model", TINY_MODELS)
def test_cli_end_to_end_on_demo(tmp_path, model, capsys):
    common = ["--tasks", "mmspec_demo", "--model", model, "--output_path", str(tmp_path),
              "--max_new_tokens", "20", "--warmup", "1", "--model_args", "dtype=float64"]  # fmt: skip
    assert cli(*common) == 0
    assert cli(*common, "--spec", "pld", "--strict") == 0
    out = capsys.readouterr().out
    assert f"{model} / pld" in out and "mmspec_demo" in out

    lines = (tmp_path / model / "baseline" / "mmspec_demo" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == DEMO_SAMPLES
    rec = json.loads(lines[0])
    assert {"id", "task", "category", "subcategory", "status", "turns"} <= rec.keys()
    turn = rec["turns"][0]
    for key in (
        "text",
        "token_ids",
        "new_tokens",
        "wall_time_s",
        "prefill_time_s",
        "rounds",
        "accepted_per_round",
    ):
        assert key in turn
    assert turn["new_tokens"] == len(turn["token_ids"]) <= 20
    assert 0 < turn["prefill_time_s"] <= turn["wall_time_s"]

    base = read_results(tmp_path, model, "baseline")
    assert base["tasks"]["mmspec_demo"]["n_samples"] == DEMO_SAMPLES
    assert base["tasks"]["mmspec_demo"]["n_turns"] == DEMO_TURNS
    assert base["overall"]["mat"] == 1.0
    assert base["overall"]["speedup_paired"] is not None
    assert len(base["categories"]) == 6
    assert base["environment"]["transformers"] and base["config"]["dtype"] == "float64"

    pld = read_results(tmp_path, model, "pld")
    m = pld["tasks"]["mmspec_demo"]
    assert m["exact_match_rate"] == 1.0 and m["n_compared"] == DEMO_TURNS
    assert m["speedup_paired"] > 0 and m["speedup_global"] > 0
    assert pld["config"]["spec_args"] == {"max_ngram": 4, "min_ngram": 1, "num_draft": 10}

    from mmspec.leaderboard.cli import main as leaderboard

    assert leaderboard([str(tmp_path), "-o", str(tmp_path / "lb.json"), "-q"]) == 0
    entries = json.loads((tmp_path / "lb.json").read_text())["entries"]
    assert {e["spec"] for e in entries} == {"baseline", "pld"}


@pytest.fixture(scope="module")
def testmini_baselines(mmspec_root, tmp_path_factory):
    """Baseline records of demo + testmini for each tiny model (float32, 24 tokens per turn)."""
    out = tmp_path_factory.mktemp("hf_equal")
    for model in TINY_MODELS:
        cfg = RunConfig(tasks=["mmspec_demo", "mmspec_testmini"], model=model, output_path=out,
                        max_new_tokens=24, warmup=0, dataset_root=str(mmspec_root))  # fmt: skip
        Harness(cfg, adapter=tiny_adapter(model, "float32")).run()
    return out


@pytest.mark.parametrize("model", TINY_MODELS)
def test_baseline_equals_transformers_greedy(testmini_baselines, mmspec_root, model):
    """Our decode loop == transformers' greedy generate, for every demo and testmini turn."""
    adapter = tiny_adapter(model, "float32")
    tm = TaskManager()
    names = tm.resolve(["mmspec_demo", "mmspec_testmini"])
    turns = samples = 0
    for name in names:
        task = tm.load(name, dataset_root=mmspec_root)
        recs = RecordFile(testmini_baselines / model / "baseline" / name / "samples.jsonl").read()
        for sample in task.samples():
            rec = recs[sample.id]
            assert rec.status == "ok"
            samples += 1
            history = [t.text for t in rec.turns]
            for i, turn in enumerate(rec.turns):
                prompt = adapter.encode(task.build_messages(sample, i, history[:i]), sample.load_images())
                out = adapter.model.generate(
                    input_ids=prompt.input_ids, **prompt.model_inputs, do_sample=False, max_new_tokens=24,
                    eos_token_id=sorted(adapter.stop_token_ids), pad_token_id=sorted(adapter.stop_token_ids)[0],
                )  # fmt: skip
                assert out[0, prompt.length :].tolist() == turn.token_ids, (name, sample.id, i)
                turns += 1
    assert (samples, turns) == (DEMO_SAMPLES + 60, DEMO_TURNS + 69)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    adapter = tiny_adapter("tiny-llava15")
    cfg = RunConfig(
        tasks=["mmspec_demo"], model="tiny-llava15", output_path=tmp_path, max_new_tokens=12, warmup=0
    )
    real = Harness._run_sample
    calls: list[str] = []

    def flaky(self, engine, adapter_, tr, sample):
        if len(calls) == 4:
            raise _Interrupt  # the process dies while sample 5 is in flight
        calls.append(sample.id)
        return real(self, engine, adapter_, tr, sample)

    monkeypatch.setattr(Harness, "_run_sample", flaky)
    with pytest.raises(_Interrupt):
        Harness(cfg, adapter=adapter).run()
    path = tmp_path / "tiny-llava15" / "baseline" / "mmspec_demo" / "samples.jsonl"
    first = path.read_text()
    assert len(first.splitlines()) == 4
    with open(path, "a") as fh:  # a torn write from the killed process
        fh.write('{"id": "demo_00')

    calls.clear()
    monkeypatch.setattr(Harness, "_run_sample", lambda self, *a: (calls.append(a[-1].id), real(self, *a))[1])
    results = Harness(cfg, adapter=adapter).run()
    assert len(calls) == DEMO_SAMPLES - 4  # finished samples are not redone
    text = path.read_text()
    assert text.startswith(first)
    ids = [json.loads(line)["id"] for line in text.splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == DEMO_SAMPLES
    assert results["tasks"]["mmspec_demo"]["n_samples"] == DEMO_SAMPLES

    calls.clear()
    cfg.warmup = 2
    Harness(cfg, adapter=adapter).run()  # a third run has nothing left to do: not even a warm-up
    assert calls == [] and path.read_text() == text


def test_changed_settings_refuse_to_mix_records(tmp_path):
    adapter = tiny_adapter("tiny-llava15")
    cfg = RunConfig(tasks=["mmspec_demo"], model="tiny-llava15", output_path=tmp_path, max_new_tokens=4,
                    warmup=0, limit=1)  # fmt: skip
    Harness(cfg, adapter=adapter).run()
    cfg.max_new_tokens = 5
    with pytest.raises(HarnessError, match="max_new_tokens"):
        Harness(cfg, adapter=adapter).run()


class LossyDrafter(Drafter):
    """Drafts one fixed token; paired with a broken acceptance rule it corrupts the output."""

    name = "lossy_test"
    defaults = {}

    def propose(self, ctx):
        return DraftTree.chain(ctx.last_token, [5])

    def max_tree_size(self):
        return 2


def test_strict_turns_a_mismatch_into_failure(tmp_path, capsys, monkeypatch):
    import mmspec.engine

    real_walk = mmspec.engine.greedy_walk

    def accept_first_child(tree, argmax):  # a lossy acceptance rule, active for the lossy spec only
        if len(tree) == 1:
            return real_walk(tree, argmax)
        return [0, 1], int(argmax[1])

    register_spec("lossy_test", f"{__name__}:LossyDrafter")
    try:
        common = ["--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
                  "--max_new_tokens", "8", "--warmup", "0", "--limit", "2"]  # fmt: skip
        assert cli(*common) == 0
        monkeypatch.setattr(mmspec.engine, "greedy_walk", accept_first_child)
        assert cli(*common, "--spec", "lossy_test") == 0  # reported, not fatal
        res = read_results(tmp_path, "tiny-llava15", "lossy_test")
        assert res["overall"]["exact_match_rate"] < 1.0
        mm = res["overall"]["mismatches"][0]
        assert mm["first_diff"] >= 1 and mm["task"] == "mmspec_demo"
        assert cli(*common, "--spec", "lossy_test", "--strict") == 3
        assert "differ from the baseline" in capsys.readouterr().err
    finally:
        SPECS.pop("lossy_test", None)


def test_missing_image_fails_that_sample_only(tmp_path, mmspec_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(mmspec_root / "testmini", root / "testmini")
    victim = json.loads((root / "testmini" / "mmspec.jsonl").read_text().splitlines()[0])
    (root / "testmini" / "images" / victim["image"]).unlink()
    task = next(t for t in TaskManager().resolve(["mmspec_testmini"]) if victim["topic"].split()[0] in t)
    assert cli("--tasks", task, "--model", "tiny-llava15", "--output_path", str(tmp_path / "out"),
               "--dataset_root", str(root), "--max_new_tokens", "4", "--warmup", "0", "--limit", "3") == 0  # fmt: skip
    recs = RecordFile(tmp_path / "out" / "tiny-llava15" / "baseline" / task / "samples.jsonl").read()
    assert recs[victim["id"]].status == "failed"
    assert victim["id"] in recs[victim["id"]].error and victim["image"] in recs[victim["id"]].error
    assert sum(r.status == "ok" for r in recs.values()) == 2
    res = read_results(tmp_path / "out", "tiny-llava15", "baseline")
    assert res["tasks"][task]["n_failed"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tiny-qwen25v"], "(did you mean `tiny-qwen25vl`"),
        (["--spec", "eagel"], "unknown spec 'eagel' (did you mean `eagle`"),
        (["--spec", "baseline,eagel"], "unknown spec 'eagel'"),
        (["--tasks", "mmspec_demoo"], "(did you mean `mmspec_demo`"),
        (["--model_args", "dtipe=float32"], "(did you mean `dtype`?)"),
        (["--model_args", "dtype"], "key=value"),
        (["--spec", "pld", "--spec_args", "max_ngrams=3"], "(did you mean `max_ngram`"),
        (["--spec", "pld", "--spec_args", "max_ngram=x"], "expected a int"),
        (["--tasks", "mmspec_testmini", "--dataset_root", "/nonexistent/mmspec"], "/nonexistent/mmspec"),
    ],
)
def test_bad_input_gives_one_clear_error(tmp_path, capsys, args, message):
    base = {"--tasks": "mmspec_demo", "--model": "tiny-llava15", "--output_path": str(tmp_path)}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv]
    assert cli(*argv, "--max_new_tokens", "2", "--warmup", "0") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_list_names(capsys):
    assert cli("--list", "models") == 0
    assert "tiny-llava16" in capsys.readouterr().out
    assert cli("--list", "specs") == 0
    out = capsys.readouterr().out
    assert "pld" in out and "recycling" in out
    assert cli("--list", "tasks") == 0
    assert "mmspec_testmini" in capsys.readouterr().out


def test_list_specs_matches_the_classes():
    """The static table `--list specs` prints (no imports) says what each class says."""
    for name, entry in SPECS.items():
        cls = get_spec(name)
        assert entry.summary == cls.paper, name
        assert entry.draft == (getattr(cls, "checkpoint_method", None) or ("medusa" if name == "medusa" else None)
                               or getattr(getattr(cls, "inner_cls", None), "checkpoint_method", None)), name  # fmt: skip


# ---------------------------------------------------------------------- several methods in one run
def test_spec_lists_and_all():
    assert resolve_specs("pld") == ["pld"]
    assert resolve_specs("pld, baseline,pld") == ["baseline", "pld"]  # baseline first, once
    everything = resolve_specs("all")
    assert everything[0] == "baseline" and "oracle" not in everything
    assert set(everything) == set(SPECS) - {"oracle"}
    gates = [i for i, n in enumerate(everything) if SPECS[n].gate]
    assert gates == list(range(len(everything) - len(gates), len(everything)))  # ViSkip methods last
    assert resolve_specs("sam_vskip,pld,oracle") == ["pld", "oracle", "sam_vskip"]


def test_spec_args_go_to_the_methods_that_take_them():
    args = assign_spec_args(["baseline", "pld", "sam"], {"max_ngram": "3", "sam.n_predicts": "7"})
    assert args == {"baseline": {}, "pld": {"max_ngram": "3"}, "sam": {"n_predicts": "7"}}
    with pytest.raises(SpecArgError, match=r"--spec_args max_ngrams: none of the methods run .* takes it "
                                           r"\(did you mean `max_ngram`"):  # fmt: skip
        assign_spec_args(["baseline", "pld"], {"max_ngrams": "3"})
    with pytest.raises(ValueError, match=r"'sam' is not one of the methods run"):
        assign_spec_args(["baseline", "pld"], {"sam.n_predicts": "3"})


def test_several_methods_load_the_target_once(tmp_path, capsys, caplog, monkeypatch):
    import mmspec.adapters

    adapter = tiny_adapter("tiny-llava15")
    loads, prepared = [], []
    monkeypatch.setattr(mmspec.adapters, "load_model", lambda *a: loads.append(a) or adapter)
    real_prepare = type(adapter).prepare
    monkeypatch.setattr(
        type(adapter), "prepare", lambda self, *a, **k: prepared.append(a) or real_prepare(self, *a, **k)
    )
    common = ["--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
              "--max_new_tokens", "6", "--warmup", "1", "--limit", "2"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="mmspec"):
        assert cli(*common, "--spec", "pld,baseline", "--spec_args", "num_draft=4", "--strict") == 0
    assert len(loads) == 1 and len(prepared) == 2  # one target; each method prepares (graphs are reused)
    order = [r.getMessage() for r in caplog.records if r.getMessage().startswith("method ")]
    assert order == ["method 1/2: baseline", "method 2/2: pld"]
    assert any(r.getMessage().startswith("pld mmspec_demo: 2/2") for r in caplog.records)  # progress names it
    out = capsys.readouterr().out
    assert "tiny-llava15 / baseline" in out and "tiny-llava15 / pld" in out
    pld = read_results(tmp_path, "tiny-llava15", "pld")
    assert pld["config"]["spec_args"]["num_draft"] == 4
    assert pld["overall"]["exact_match_rate"] == 1.0  # compared with the baseline run just before
    assert read_results(tmp_path, "tiny-llava15", "baseline")["config"]["warmup"] == 1


def test_spec_all_skips_draft_methods_without_a_checkpoint(tmp_path, caplog, monkeypatch):
    from mmspec.plan import check_methods

    with caplog.at_level(logging.WARNING, logger="mmspec"):
        kept = check_methods(resolve_specs("all"), {}, "tiny-qwen25vl", {}, skip_unavailable=True)
    assert kept == [n for n in resolve_specs("all") if SPECS[n].draft is None]
    assert "skipping eagle2 (no published eagle draft is known" in caplog.text
    with_random = assign_spec_args(resolve_specs("all"), {"checkpoint": "random"})
    assert check_methods(resolve_specs("all"), with_random, "tiny-qwen25vl", {}, True) == resolve_specs("all")


def _no_model_load(monkeypatch):
    import mmspec.adapters

    def refuse(*args):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(mmspec.adapters, "load_model", refuse)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--spec", "eagle2"], "eagle2: no published eagle draft is known for this model; pass --spec_args "
                               "checkpoint=DIR"),
        (["--spec", "eagle2", "--spec_args", "checkpoint=/nonexistent/draft"], "checkpoint=/nonexistent/draft: no "
                                                                               "such folder"),
        (["--spec", "pld,eagle", "--spec_args", "eagle.checkpoint=~nope"], "checkpoint=~nope: no such folder"),
        (["--spec", "pld", "--spec_args", "num_draft=x"], "expected a int"),
        (["--tasks", "mmspec_testmini", "--dataset_root", "/nonexistent"], "github.com/killthefullmoon/MMSpec"),
        (["--model_args", "pretrained=/nonexistent/model"], "pretrained=/nonexistent/model: no such folder"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_the_model_loads(tmp_path, capsys, monkeypatch, args, message):
    _no_model_load(monkeypatch)
    base = {"--tasks": "mmspec_demo", "--model": "tiny-llava15", "--output_path": str(tmp_path)}
    base.update(zip(args[::2], args[1::2]))
    assert cli(*[x for kv in base.items() for x in kv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "tiny-llava15").exists()  # nothing written either


def test_offline_hub_id_fails_fast_with_a_way_out(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    import mmspec.hub

    _no_model_load(monkeypatch)
    # going offline is process-wide; put it back for the other tests
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mmspec.hub.hub_unavailable_reason.cache_clear()
    try:
        from mmspec.adapters.registry import load_model  # the real one: it must fail before loading

        with pytest.raises(mmspec.hub.HubUnavailableError, match=r"'Qwen/No-Such-Model-7B' is a Hugging Face hub "
                           r"id, but HF_HUB_OFFLINE is set .* pass --model_args pretrained=DIR"):  # fmt: skip
            load_model("qwen25vl", {"pretrained": "Qwen/No-Such-Model-7B"})
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
        mmspec.hub.hub_unavailable_reason.cache_clear()
        assert "http://127.0.0.1:9 is unreachable" in mmspec.hub.hub_unavailable_reason()
    finally:
        mmspec.hub.hub_unavailable_reason.cache_clear()


def test_only_our_errors_become_one_line(tmp_path, monkeypatch):
    def bug(self):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr(Harness, "_run_method", bug)
    with pytest.raises(ValueError, match="a bug"):  # keeps its traceback
        cli(
            "--tasks",
            "mmspec_demo",
            "--model",
            "tiny-llava15",
            "--output_path",
            str(tmp_path),
            "--limit",
            "1",
        )


def test_show_prompt_needs_no_model(capsys, monkeypatch):
    _no_model_load(monkeypatch)
    assert cli("--tasks", "mmspec_demo", "--show_prompt", "7") == 0
    out = capsys.readouterr().out
    assert out.count("=== mmspec_demo / sample ") == 7
    assert "[user] <image> What color is the car" in out and "[assistant] <answer to turn 0>" in out


def test_every_sample_failing_exits_non_zero(tmp_path, capsys, monkeypatch):
    from mmspec.tasks import Sample, SampleError

    def broken(self):
        raise SampleError(f"task mmspec_demo: sample {self.id}: cannot read image {self.image_paths[0]}")

    monkeypatch.setattr(Sample, "load_images", broken)
    code = cli("--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
               "--limit", "2", "--warmup", "0")  # fmt: skip
    assert code == 4
    assert "every sample of mmspec_demo failed (baseline); first error: task mmspec_demo: sample demo_00" in (
        capsys.readouterr().err
    )


def test_names_and_task_errors_import_no_torch(tmp_path):
    """`--list`, name typos and task errors answer before torch/transformers are imported."""
    import subprocess
    import sys

    (tmp_path / "t.yaml").write_text("task: t\ndataset_path: json\ntest_split: train\nsytem_prompt: x\n")
    code = f"""
import sys
from mmspec.cli import main
for argv in (["--list", "specs"], ["--list", "models"], ["--list", "tasks"],
             ["--tasks", "mmspec_demoo", "--model", "tiny-llava15"],
             ["--tasks", "t", "--model", "tiny-llava15", "--include_path", {str(tmp_path)!r}],
             ["--tasks", "mmspec_demo", "--model", "tiny-llava15", "--spec", "eagel"],
             ["--tasks", "mmspec_demo", "--model", "tiny-llava15", "--limit", "0"]):
    main(argv)
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print("HEAVY", heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert out.stderr.count("mmspec-harness: error:") == 4


# ---------------------------------------------------------------------- issue 13: nothing lost, nothing stuck
def user_task(folder: Path, name: str, sizes: tuple[tuple[int, int], ...] = ((96, 64), (64, 96))) -> Path:
    """A user task folder: one YAML, a data file and one image per record (of the given sizes)."""
    from _models import make_image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f'task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files: "{{{{ task_dir }}}}/{name}.jsonl"\n'
        'test_split: train\nimage_field: image\nimage_dir: "{{ task_dir }}/images"\n'
    )
    (folder / "images").mkdir(exist_ok=True)
    lines = []
    for i, size in enumerate(sizes, 1):
        make_image(size, seed=i).save(folder / "images" / f"{name}_{i}.png")
        lines.append(
            json.dumps({"id": f"{name}_{i}", "image": f"{name}_{i}.png", "turns": ["What is shown?"]})
        )
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_rejected_image_fails_that_sample_only(tmp_path):
    """Qwen2.5-VL's processor refuses an aspect ratio over 200: a failed record naming the file."""
    user_task(tmp_path / "tasks", "wide", sizes=((8000, 20), (96, 64)))
    out = tmp_path / "out"
    assert cli("--tasks", "wide", "--model", "tiny-qwen25vl", "--include_path", str(tmp_path / "tasks"),
               "--output_path", str(out), "--max_new_tokens", "4", "--warmup", "0") == 0  # fmt: skip
    recs = RecordFile(out / "tiny-qwen25vl" / "baseline" / "wide" / "samples.jsonl").read()
    assert recs["wide_2"].status == "ok" and recs["wide_1"].status == "failed"
    assert "sample wide_1" in recs["wide_1"].error and "wide_1.png" in recs["wide_1"].error
    assert "aspect ratio" in recs["wide_1"].error


def test_results_cover_every_task_recorded_in_the_folder(tmp_path):
    for name in ("task_a", "task_b"):
        user_task(tmp_path / "tasks" / name, name)
    common = ["--model", "tiny-llava15", "--include_path", str(tmp_path / "tasks"), "--output_path",
              str(tmp_path / "out"), "--max_new_tokens", "3", "--warmup", "0"]  # fmt: skip
    assert cli("--tasks", "task_a,task_b", "--limit", "1", *common) == 0
    first = read_results(tmp_path / "out", "tiny-llava15", "baseline")["run"]
    assert cli("--tasks", "task_b", *common) == 0
    res = read_results(tmp_path / "out", "tiny-llava15", "baseline")
    second = res["run"]
    assert first != second
    assert set(res["tasks"]) == {"task_a", "task_b"}  # task_a is not dropped by the second run
    assert res["tasks"]["task_a"]["runs"] == {first: 1}
    assert res["tasks"]["task_b"]["runs"] == {first: 1, second: 1}
    assert {t["task"] for t in res["config"]["tasks"]} == {"task_a", "task_b"}
    assert res["overall"]["n_samples"] == 3


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, capsys):
    from mmspec.locks import FolderLock

    with FolderLock(tmp_path / "tiny-llava15" / "baseline" / "mmspec_demo"):  # another run holds it
        assert cli("--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
                   "--limit", "1", "--warmup", "0") == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "mmspec_demo is being written by another run (pid" in err and "Traceback" not in err
    assert cli("--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
               "--limit", "1", "--warmup", "0", "--max_new_tokens", "2") == 0  # released: runs  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max_new_tokens", "0"], "--max_new_tokens must be at least 1 (got 0)"),
        (["--limit", "-1"], "--limit must be at least 1 (got -1)"),
        (["--temperature", "-1"], "--temperature must be a number >= 0 (got -1.0)"),
        (["--temperature", "nan"], "--temperature must be a number >= 0 (got nan)"),
        (["--warmup", "-2"], "--warmup must be 0 or more"),
        (["--model_args", "device=gpu"], "device='gpu': expected cpu, cuda or cuda:N"),
        (["--model_args", "attn_implementation=flash_attention_2"], "choose one of sdpa, eager"),
        (["--model_args", "device=cpu,execution=graph"], "execution=graph needs a CUDA device"),
        (["--model_args", "execution=fast"], "execution='fast': choose one of eager, static, graph"),
        (["--model", "tiny-qwen25vl", "--model_args", "min_pixels=5000,max_pixels=1000"],
         "min_pixels=5000 is larger than max_pixels=1000"),
        (["--model", "tiny-qwen25vl", "--model_args", "max_pixels=0"], "max_pixels='0': must be at least 784"),
        (["--model_args", "min_pixels=1000"], "only Qwen2.5-VL models take pixel bounds"),
        (["--output_path", "FILE"], "is a file"),
        (["--output_path", "FILE/sub"], "is a file, so the folder cannot be created"),
    ],
)  # fmt: skip
def test_bad_values_are_clear_errors(tmp_path, capsys, monkeypatch, args, message):
    _no_model_load(monkeypatch)
    (tmp_path / "FILE").write_text("x")
    base = {"--tasks": "mmspec_demo", "--model": "tiny-llava15", "--output_path": str(tmp_path / "out")}
    base.update(zip(args[::2], [a.replace("FILE", str(tmp_path / "FILE")) for a in args[1::2]]))
    assert cli(*[x for kv in base.items() for x in kv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_cuda_on_a_machine_without_one(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_model_load(monkeypatch)
    assert cli("--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
               "--model_args", "device=cuda") == 1  # fmt: skip
    assert "device=cuda: no CUDA device is available" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("victim", "text"), [("run.json", '{"model": "tiny-l'), ("mmspec_demo/task.json", "")]
)
def test_damaged_settings_files_are_named(tmp_path, capsys, victim, text):
    common = ["--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
              "--limit", "1", "--warmup", "0", "--max_new_tokens", "2"]  # fmt: skip
    assert cli(*common) == 0
    (tmp_path / "tiny-llava15" / "baseline" / victim).write_text(text)
    assert cli(*common) == 1
    err = capsys.readouterr().err
    assert f"baseline/{victim}: " in err and "Traceback" not in err


class CheckedDrafter(Drafter):
    """A method with the optional cheap `check_args` hook the harness calls before loading."""

    name = "checked_test"
    defaults = {"size": 1}

    @classmethod
    def check_args(cls, args):
        if args["size"] > 4:
            raise SpecArgError(f"checked_test: size={args['size']} is more than 4")


def test_a_methods_check_args_hook_runs_before_loading(tmp_path, capsys, monkeypatch):
    _no_model_load(monkeypatch)
    register_spec("checked_test", f"{__name__}:CheckedDrafter")
    try:
        assert cli("--tasks", "mmspec_demo", "--model", "tiny-llava15", "--output_path", str(tmp_path),
                   "--spec", "checked_test", "--spec_args", "size=9") == 1  # fmt: skip
        assert "checked_test: size=9 is more than 4" in capsys.readouterr().err
    finally:
        SPECS.pop("checked_test", None)
