"""mmspec.leaderboard's honesty flags, per-round record reading and setting differences, on small inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmspec.leaderboard.collect import RunResults
from mmspec.leaderboard.flags import entry_flags, lossless, timing_meaningful, timing_noise, trained
from mmspec.leaderboard.records import (
    MAX_DEPTH,
    acceptance_by_depth,
    first_divergences,
    load_turns,
    read_samples,
)
from mmspec.leaderboard.settings import setting_differences


# ------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize(
    ("speedup", "mat", "noise"),
    [(2.2, 2.0, False), (2.21, 2.0, True), (0.5, 1.0, False), (1.2, None, False), (None, 3.0, False)],
)
def test_timing_noise_is_a_speedup_above_what_mat_allows(speedup: Any, mat: Any, noise: bool) -> None:
    assert timing_noise({"speedup_global": speedup, "mat": mat}) is noise
    # the paired speedup stands in when the global one is missing
    assert timing_noise({"speedup_global": None, "speedup_paired": speedup, "mat": mat}) is noise


def test_trained_timing_and_lossless_flags() -> None:
    assert trained({"spec_args": {"checkpoint": "random", "trained": False}}) is False
    assert trained({"spec_args": {"checkpoint": "random"}}) is False
    assert trained({"spec_args": {"checkpoint": "/m/eagle", "trained": True}}) is True
    assert trained({"spec_args": {"k": 4}}) is None and trained({}) is None
    assert timing_meaningful("qwen25vl", {}, {"device": "cuda"}) is True
    assert timing_meaningful("qwen25vl", {"device": "cpu"}, {}) is False
    assert timing_meaningful("tiny-llava15", {}, {"device": "cuda"}) is False
    assert lossless({"exact_match_rate": 1.0, "n_compared": 9}) is True
    assert lossless({"exact_match_rate": 0.9, "n_compared": 9}) is False
    assert lossless({"exact_match_rate": None, "n_compared": 0}) is None
    entry = {"model": "tiny-x", "config": {"spec_args": {"checkpoint": "random"}}, "environment": {},
             "speedup_global": 3.0, "mat": 1.5, "exact_match_rate": 0.5, "n_compared": 2}  # fmt: skip
    assert entry_flags(entry) == ["untrained_draft", "timing_noise", "timing_not_meaningful", "not_lossless"]
    clean = {"model": "qwen25vl", "config": {}, "environment": {"device": "cuda"}, "speedup_global": 1.8,
             "mat": 2.5, "exact_match_rate": 1.0, "n_compared": 2}  # fmt: skip
    assert entry_flags(clean) == []


# ----------------------------------------------------------------------------------------- records
def turn(
    accepted: list[int], sizes: list[int] | None = None, ids: list[int] | None = None, text: str = ""
) -> dict:
    t: dict[str, Any] = {"accepted_per_round": accepted, "token_ids": ids or [], "text": text}
    if sizes is not None:
        t["tree_size_per_round"] = sizes
    return t


def write_samples(run_dir: Path, task: str, records: list[Any], tail: str = "") -> None:
    path = run_dir / task / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


def test_read_samples_skips_bad_lines_and_keeps_the_last_of_an_id(tmp_path: Path) -> None:
    recs = [{"id": "a", "status": "failed", "turns": []}, "not an object", {"no": "id"},
            {"id": "a", "status": "ok", "turns": [turn([1])]}]  # fmt: skip
    write_samples(tmp_path, "t", recs, tail='{"id": "b", "tur')  # a torn last line
    got = read_samples(tmp_path / "t" / "samples.jsonl")
    assert [(r["id"], r["status"]) for r in got] == [("a", "ok")]
    assert read_samples(tmp_path / "missing.jsonl") == []


def test_load_turns_uses_only_plain_task_names(tmp_path: Path) -> None:
    run = tmp_path / "m" / "s"
    write_samples(run, "t", [{"id": "1", "status": "ok", "turns": [turn([1]), turn([2])]},
                             {"id": "2", "status": "failed", "turns": [turn([3])]}])  # fmt: skip
    write_samples(tmp_path / "m", "outside", [{"id": "x", "turns": [turn([9])]}])
    assert set(load_turns(run, ["t"]) or {}) == {("t", "1", 0), ("t", "1", 1)}  # failed samples left out
    assert load_turns(run, ["../outside", "..", "", "nothing"]) is None  # never read outside the run


def test_acceptance_by_depth_counts_drafted_rounds_only() -> None:
    turns = {
        ("t", "1", 0): turn([2, 0, 0, 1], sizes=[5, 1, 3, 4]),  # round 2: ViSkip skipped (one-node tree)
        ("t", "1", 1): turn([3], sizes=[5]),
        ("t", "2", 0): turn([1, "x"]),  # bad field: ignored
    }
    acc = acceptance_by_depth(turns)
    assert acc == {"rounds": 4, "p_at_least": [0.75, 0.5, 0.25]}  # accepted 2, 0, 1, 3
    assert acceptance_by_depth({("t", "1", 0): turn([0, 0], sizes=[1, 1])}) is None  # the baseline
    assert acceptance_by_depth({("t", "1", 0): turn([0], sizes=[3])}) == {"rounds": 1, "p_at_least": [0.0]}
    deep = acceptance_by_depth({("t", "1", 0): turn([100], sizes=[101])})
    assert deep is not None and len(deep["p_at_least"]) == MAX_DEPTH


def test_first_divergences_read_both_runs_texts(tmp_path: Path) -> None:
    model = tmp_path / "m"
    base_ids, run_ids = [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 9, 9]
    write_samples(
        model / "baseline", "t", [{"id": "s1", "turns": [turn([], ids=base_ids, text="The cat sat.")]}]
    )
    write_samples(model / "x", "t", [{"id": "s1", "turns": [turn([], ids=run_ids, text="The cow ran.")]}])
    mismatches = [{"task": "t", "id": "s1", "turn": 0, "first_diff": 5}, {"task": "t", "id": "gone", "turn": 0,
                  "first_diff": 1}, {"task": 3}, "junk"]  # fmt: skip
    div = first_divergences(model / "x", mismatches)
    assert len(div) == 2
    assert div[0]["position"] == 5 and div[0]["tokens"] == {"start": 1, "run": [2, 3, 4, 5, 9, 9],
                                                           "baseline": [2, 3, 4, 5, 6, 7, 8]}  # fmt: skip
    assert div[0]["text"] == {"before": "The c", "run": "ow ran.", "baseline": "at sat."}
    assert div[1]["tokens"] is None and div[1]["text"] is None  # no records for that sample
    assert first_divergences(model / "x", mismatches, limit=1) == div[:1]


# ---------------------------------------------------------------------------------------- settings
def test_setting_differences_leave_out_the_methods_own_parameters() -> None:
    def run(spec: str, dtype: str, spec_args: dict[str, Any]) -> RunResults:
        data = {"model": "m", "spec": spec, "tasks": {}, "environment": {"torch": "2.11"},
                "config": {"spec": spec, "dtype": dtype, "spec_args": spec_args, "method": {"name": spec}}}  # fmt: skip
        return RunResults.from_dict(data, f"/r/m/{spec}/results.json")

    runs = [
        run("baseline", "bfloat16", {}),
        run("pld", "bfloat16", {"k": 4}),
        run("eagle2", "float16", {"depth": 3}),
    ]
    diffs = setting_differences(runs, ["m/baseline", "m/pld", "m/eagle2"])
    assert [d["key"] for d in diffs] == ["config.dtype"]
    assert [v["value"] for v in diffs[0]["values"]] == ["bfloat16", "bfloat16", "float16"]
    assert diffs[0]["values"][2] == {
        "label": "m/eagle2",
        "source": "/r/m/eagle2/results.json",
        "value": "float16",
    }
    assert setting_differences(runs[:2], ["a", "b"]) == [] and setting_differences(runs[:1], ["a"]) == []
