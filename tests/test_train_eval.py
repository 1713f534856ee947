"""``mmspec-train eval`` and the ``mmspec-train`` command line (help, one-line errors, end to end)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _models import tiny_adapter
from _train_data import PROMPTS, write_prompts

from mmspec.methods import SPECS, SpecEntry
from mmspec.methods.base import Drafter
from mmspec.methods.baseline import Baseline
from mmspec.train.cli import main
from mmspec.train.data import read_conversations
from mmspec.train.evaluate import acceptance_by_depth, accepted_histogram, evaluate_draft
from mmspec.train.loading import load_method
from mmspec.tree import DraftTree

MAX_NEW = 6


def adapter(model: str = "tiny-qwen25vl"):
    return tiny_adapter(model, "float32")


def test_acceptance_by_depth_counts_rounds_reaching_each_depth():
    accepted = [0, 1, 3, 2, 0]
    assert acceptance_by_depth(accepted) == [0.6, 0.4, 0.2]
    assert acceptance_by_depth(accepted, max_depth=5) == [0.6, 0.4, 0.2, 0.0, 0.0]
    assert acceptance_by_depth([0, 0]) == [0.0]
    assert acceptance_by_depth([]) == []
    assert accepted_histogram(accepted) == [2, 1, 1, 1]
    assert accepted_histogram([]) == []


@pytest.mark.parametrize(("model", "spec"), [("tiny-qwen25vl", "eagle2"), ("tiny-llava15", "medusa")])
def test_random_draft_is_lossless_and_reports_acceptance(tmp_path, model, spec):
    convs = read_conversations(write_prompts(tmp_path))
    drafter = load_method(adapter(model), spec, "checkpoint=random,total_token=8")
    report = evaluate_draft(adapter(model), drafter, convs, max_new_tokens=MAX_NEW, progress=False)
    overall = report["overall"]
    n_turns = sum(len(c.turns) for c in convs)
    assert overall["n_turns"] == overall["n_compared"] == n_turns
    assert overall["exact_match_rate"] == 1.0 and overall["mismatches"] == []
    assert 1 <= overall["new_tokens"] <= n_turns * MAX_NEW
    assert overall["target_forwards"] == overall["rounds"] + n_turns
    assert overall["mat"] == round(overall["new_tokens"] / overall["target_forwards"], 4)
    assert 1.0 <= overall["mat"] < 1.5  # an untrained draft: almost nothing accepted

    hist, depth = overall["accepted_histogram"], overall["acceptance_by_depth"]
    assert sum(hist) == overall["rounds"]
    assert len(depth) == max(1, len(hist) - 1)
    assert depth == sorted(depth, reverse=True) and all(0.0 <= x <= 1.0 for x in depth)
    assert depth[0] == round(1 - hist[0] / overall["rounds"], 6)
    assert overall["mean_accepted_per_round"] == round(sum(n * c for n, c in enumerate(hist)) / sum(hist), 4)

    assert sorted(report["categories"]) == ["chart", "general"]
    assert report["categories"]["general"]["n_samples"] == 2
    assert sum(m["new_tokens"] for m in report["categories"].values()) == overall["new_tokens"]
    s = report["settings"]
    assert (s["spec"], s["spec_args"]["checkpoint"], s["temperature"]) == (spec, "random", 0.0)
    json.dumps(report)  # the report is plain JSON


def test_baseline_as_draft_has_mat_one_and_sampling_skips_the_comparison(tmp_path):
    convs = read_conversations(write_prompts(tmp_path, PROMPTS[1:]))  # one image prompt, one text prompt
    report = evaluate_draft(
        adapter(), Baseline(adapter()), convs, max_new_tokens=3, max_depth=2, progress=False
    )
    assert report["overall"]["mat"] == 1.0 and report["overall"]["exact_match_rate"] == 1.0
    assert report["overall"]["acceptance_by_depth"] == []  # no round verified a draft
    sampled = evaluate_draft(adapter(), Baseline(adapter()), convs[1:], max_new_tokens=3, temperature=1.0,
                             progress=False)  # fmt: skip
    assert sampled["overall"]["exact_match_rate"] is None and sampled["overall"]["n_compared"] == 0


# ------------------------------------------------------------------------------------ command line
def test_help_is_fast_and_loads_no_torch():
    code = "import sys, mmspec.train.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    for argv in (["--help"], ["regen", "--help"], ["eval", "--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{tmp}/missing.jsonl"], "training data file not found: {tmp}/missing.jsonl"),
        (["--data", "{tmp}/bad.jsonl"], "{tmp}/bad.jsonl: record 2 (id 'y') has no user turn"),
        (
            ["--data", "{tmp}/noimg.jsonl"],
            "{tmp}/noimg.jsonl: 1 image file(s) not found, first: {tmp}/images/gone.png",
        ),
        (
            ["--data", "{tmp}/prompts.jsonl", "--model", "tiny-qwen"],
            "unknown model 'tiny-qwen' (did you mean `tiny-qwen25vl`?)",
        ),
        (["--data", "{tmp}/prompts.jsonl", "--model_args", "dtyp=float32"], "unknown key 'dtyp'"),
        (["--data", "{tmp}/prompts.jsonl", "--model_args", "float32"], "expected key=value pairs"),
        (["--data", "{tmp}/prompts.jsonl", "--out", "{tmp}/prompts.jsonl"], "is the input --data file"),
    ],
)
def test_bad_input_is_one_line_naming_it(tmp_path, capsys, args, message):
    write_prompts(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "turns": ["a"]}\n{"id": "y", "turns": []}\n')
    (tmp_path / "noimg.jsonl").write_text('{"id": "x", "image": "gone.png", "turns": ["a"]}\n')
    argv = ["regen", "--model", "tiny-qwen25vl", "--out", str(tmp_path / "o.jsonl"),
            *[a.format(tmp=tmp_path) for a in args]]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmspec-train regen: error: ")
    assert message.format(tmp=tmp_path) in err[0]


@pytest.fixture
def cached_target(monkeypatch):
    """``--model tiny-qwen25vl`` resolves to the tests' cached tiny adapter (the CLI wiring is what
    is tested here); the arguments it was asked for are collected."""
    import mmspec.adapters

    target, loaded = adapter("tiny-qwen25vl"), []
    monkeypatch.setattr(
        mmspec.adapters, "load_model", lambda name, args: loaded.append((name, args)) or target
    )
    return loaded


def test_cli_regen_then_eval_end_to_end(tmp_path, capsys, cached_target):
    data = write_prompts(tmp_path, PROMPTS[1:])
    out, report = tmp_path / "answers.jsonl", tmp_path / "report.json"
    common = ["--model", "tiny-qwen25vl", "--model_args", "dtype=float32,device=cpu", "--max_new_tokens", "4"]
    assert main(["regen", *common, "--data", str(data), "--out", str(out)]) == 0
    assert cached_target == [("tiny-qwen25vl", {"dtype": "float32", "device": "cpu"})]
    assert "2 conversations (2 regenerated now, 0 already there)" in capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["c2", "c3"]
    assert main(["regen", *common, "--data", str(data), "--out", str(out)]) == 0
    assert "(0 regenerated now, 2 already there)" in capsys.readouterr().out
    assert main(["regen", *common, "--data", str(data), "--out", str(out), "--temperature", "0.7"]) == 1
    assert "different settings (temperature: 0.0 -> 0.7)" in capsys.readouterr().err

    argv = ["eval", *common, "--data", str(out), "--spec", "eagle", "--spec_args", "checkpoint=random,tree=dynamic",
            "--out", str(report), "--strict"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "tiny-qwen25vl / eagle" in table and "| overall" in table and "acceptance by depth" in table
    rep = json.loads(report.read_text())
    assert rep["overall"]["exact_match_rate"] == 1.0 and rep["settings"]["data"] == str(out)

    bad = ["eval", *common, "--data", str(out), "--spec", "eagle", "--spec_args", "checkpoint=random,dept=2"]
    assert main(bad) == 1
    assert "has no parameter 'dept' (did you mean `depth`?)" in capsys.readouterr().err
    assert main(["eval", *common, "--data", str(out), "--spec", "eagel"]) == 1
    assert "unknown spec 'eagel'" in capsys.readouterr().err


class LossyDrafter(Drafter):
    """Drafts one fixed token; paired with a broken acceptance rule it corrupts the output."""

    name = "lossy_train_test"
    defaults = {}

    def propose(self, ctx):
        return DraftTree.chain(ctx.last_token, [5])

    def max_tree_size(self):
        return 2


def test_a_lossy_draft_is_caught(tmp_path, capsys, monkeypatch, cached_target):
    import mmspec.engine

    real_walk = mmspec.engine.greedy_walk

    def accept_first_child(tree, argmax):  # a lossy acceptance rule, active for the lossy draft only
        return real_walk(tree, argmax) if len(tree) == 1 else ([0, 1], int(argmax[1]))

    monkeypatch.setattr(mmspec.engine, "greedy_walk", accept_first_child)
    monkeypatch.setitem(SPECS, "lossy_train_test", SpecEntry(f"{__name__}:LossyDrafter"))
    data, report = write_prompts(tmp_path, PROMPTS[2:]), tmp_path / "report.json"
    argv = ["eval", "--model", "tiny-qwen25vl", "--data", str(data), "--spec", "lossy_train_test",
            "--max_new_tokens", "6", "--out", str(report)]  # fmt: skip
    assert main(argv) == 0  # reported, not fatal
    assert "differ from the baseline (not lossless); first: id c3 turn 0" in capsys.readouterr().err
    overall = json.loads(report.read_text())["overall"]
    assert overall["exact_match_rate"] == 0.0 and overall["mismatches"][0]["first_diff"] >= 1
    assert main([*argv, "--strict"]) == 3
