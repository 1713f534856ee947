"""Data-parallel runs (``accelerate launch``): shares, per-process records, merging, resume, locks.

The launch test starts real processes through accelerate's launcher (torchrun underneath, gloo
between the processes) on the CPU; the rest test the pieces in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmspec.cli import main
from mmspec.distributed import World, launch_position, place_process
from mmspec.errors import UsageError
from mmspec.harness import HarnessError
from mmspec.locks import FolderLock
from mmspec.records import (
    RecordFile,
    SampleRecord,
    TurnRecord,
    merge_shards,
    read_run,
    read_task,
    shard_files,
    shard_path,
)

TESTS = Path(__file__).resolve().parent
MODEL = "tiny-llava15"
#: flags shared by every run compared here (the demo task: 7 samples, 9 turns)
COMMON = ["--tasks", "mmspec_demo", "--model", MODEL, "--max_new_tokens", "10", "--warmup", "1",
          "--model_args", "dtype=float64,device=cpu"]  # fmt: skip
DEMO_IDS = [f"demo_00{i}" for i in range(1, 8)]
#: what must not change with the number of processes (timings may)
TURN_KEYS = ("text", "token_ids", "new_tokens", "prompt_tokens", "rounds", "target_forwards",
             "accepted_per_round", "tree_size_per_round", "skipped_rounds", "stop_reason")  # fmt: skip
METRIC_KEYS = ("n_samples", "n_failed", "n_turns", "new_tokens", "mat", "rounds", "mean_accepted_per_round",
               "skipped_rounds", "exact_match_rate", "n_compared", "mismatches")  # fmt: skip


def launch(out: Path, *args: str, processes: int = 2, entry: tuple[str, ...] = ("-m", "mmspec.cli"),
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """``accelerate launch`` of ``processes`` CPU processes (torchrun underneath; accelerate's own
    ``--cpu`` starts several processes only through mpirun)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           *entry, *COMMON, "--output_path", str(out), *args]  # fmt: skip
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=full_env)


def turns_by_id(run_dir: Path) -> dict[str, list[dict]]:
    recs = read_run(run_dir).by_task["mmspec_demo"]
    return {r.id: [{k: getattr(t, k) for k in TURN_KEYS} for t in r.turns] for r in recs if r.status == "ok"}


def metrics(results: dict) -> dict:
    scopes = {"overall": results["overall"], **results["tasks"], **results["categories"]}
    return {name: {k: m[k] for k in METRIC_KEYS} for name, m in scopes.items()}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def shards_left(task_dir: Path) -> dict[int, list[SampleRecord]]:
    """The records each process of a killed launch left, by rank (a torn last line dropped)."""
    rank = {p: int(p.stem.removeprefix("samples.rank")) for p in shard_files(task_dir)}
    return {rank[p]: list(RecordFile(p).read().values()) for p in rank}


@pytest.mark.slow
def test_two_processes_give_what_one_gives_and_a_killed_one_loses_nothing(tmp_path):
    """Two processes run baseline, oracle (it accepts: MAT > 1) and pld; process 1 dies (SIGKILL, no
    cleanup) right after its 2nd pld record and the launcher stops process 0. Baseline and oracle
    were merged by then: records and results are those of one process. A rerun of pld with one
    process (another process count) keeps every record the launch finished, runs only the rest,
    and ends with what one process gives too. (One launch tests both: each costs ~15 s.)"""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*COMMON, "--spec", "baseline,oracle,pld", "--output_path", str(one), "--strict"]) == 0
    share = len(DEMO_IDS[1::2])  # process 1's samples of each method
    killed = launch(two, "--spec", "baseline,oracle,pld", entry=(str(TESTS / "_dp_entry.py"),),
                    env={"MMSPEC_TEST_KILL": f"1:{2 * share + 2}"})  # fmt: skip
    log = killed.stdout[-3000:] + killed.stderr[-3000:]
    assert killed.returncode != 0, log
    for spec in ("baseline", "oracle"):
        # each process decoded its own share, and only that
        assert f"{spec} mmspec_demo [process 0/2]: 4/4 samples" in killed.stderr, log
        assert f"{spec} mmspec_demo [process 1/2]: {share}/{share} samples" in killed.stderr, log
        task = two / MODEL / spec / "mmspec_demo"
        assert [r["id"] for r in lines(task / "samples.jsonl")] == DEMO_IDS  # in sample order, once each
        assert shard_files(task) == []  # per-process files merged and gone
        assert turns_by_id(two / MODEL / spec) == turns_by_id(one / MODEL / spec)
        res1 = json.loads((one / MODEL / spec / "results.json").read_text())
        res2 = json.loads((two / MODEL / spec / "results.json").read_text())
        assert metrics(res2) == metrics(res1)
        assert res2["environment"]["world_size"] == 2 and res1["environment"]["world_size"] == 1
        assert [p["rank"] for p in res2["environment"]["processes"]] == [0, 1]
        assert all(p["devices"] == ["cpu"] and p["device_names"] for p in res2["environment"]["processes"])
        assert list(res2["tasks"]["mmspec_demo"]["runs"].values()) == [len(DEMO_IDS)]  # one run: the launch
    oracle = json.loads((two / MODEL / "oracle" / "results.json").read_text())["overall"]
    assert oracle["mat"] > 1.5 and oracle["exact_match_rate"] == 1.0  # drafts accepted, lossless

    task = two / MODEL / "pld" / "mmspec_demo"
    left = shards_left(task)
    assert [r.id for r in left[1]] == DEMO_IDS[1::2][:2]  # process 1's share, up to its death
    assert [r.id for r in left.get(0, [])] == DEMO_IDS[0::2][: len(left.get(0, []))]
    assert not (task / "samples.jsonl").exists() and not (task.parent / "results.json").exists()
    finished = {r.id: r for part in left.values() for r in part}

    assert main([*COMMON, "--spec", "pld", "--output_path", str(two), "--strict"]) == 0
    assert sorted(r["id"] for r in lines(task / "samples.jsonl")) == DEMO_IDS  # every sample once
    merged = RecordFile(task / "samples.jsonl").read()
    assert all(merged[i] == rec for i, rec in finished.items()) and shard_files(task) == []  # kept as written
    assert turns_by_id(two / MODEL / "pld") == turns_by_id(one / MODEL / "pld")
    res1 = json.loads((one / MODEL / "pld" / "results.json").read_text())
    res2 = json.loads((two / MODEL / "pld" / "results.json").read_text())
    assert metrics(res2) == metrics(res1)
    runs = res2["tasks"]["mmspec_demo"]["runs"]  # the launch's run and the rerun's
    assert sorted(runs.values()) == sorted([len(finished), len(DEMO_IDS) - len(finished)])


# ---------------------------------------------------------------------- pieces, in this process
def record(
    sample_id: str, status: str = "ok", tokens: tuple[int, ...] = (1, 2), run: str = "r1"
) -> SampleRecord:
    turn = TurnRecord(prompt_tokens=3, text="x", token_ids=list(tokens), new_tokens=len(tokens), wall_time_s=0.1,
                      prefill_time_s=0.01, rounds=1, target_forwards=2, accepted_per_round=[0],
                      tree_size_per_round=[1], skipped_rounds=0, draft_time_s=0.0, verify_time_s=0.0,
                      stop_reason="stop")  # fmt: skip
    turns = [turn] if status == "ok" else []
    return SampleRecord(sample_id, "t", "c", None, status, turns, None if status == "ok" else "boom", run)


def test_the_union_of_every_file_is_what_is_recorded(tmp_path):
    main_file = RecordFile(tmp_path / "samples.jsonl")
    for rec in (record("a"), record("b", "failed")):
        main_file.append(rec)
    for rec in (record("b", run="r2"), record("c", run="r2")):
        RecordFile(shard_path(tmp_path, 0)).append(rec)
    RecordFile(shard_path(tmp_path, 1)).append(record("d", "failed", run="r2"))
    RecordFile(shard_path(tmp_path, 1)).append(record("a", "failed", run="r2"))  # never beats a finished one
    with open(shard_path(tmp_path, 1), "a") as fh:
        fh.write('{"id": "e", "ta')  # the process died mid-write
    union = read_task(tmp_path)
    assert {k: (r.status, r.run) for k, r in union.items()} == {
        "a": ("ok", "r1"), "b": ("ok", "r2"), "c": ("ok", "r2"), "d": ("failed", "r2")}  # fmt: skip

    before = (tmp_path / "samples.jsonl").read_text()
    shards = {p: p.read_bytes() for p in shard_files(tmp_path)}
    assert merge_shards(tmp_path, ["d", "c", "b", "a"]) == 3
    assert [(r["id"], r["status"]) for r in lines(tmp_path / "samples.jsonl")] == [
        ("a", "ok"), ("b", "failed"), ("d", "failed"), ("c", "ok"), ("b", "ok")]  # fmt: skip
    assert (tmp_path / "samples.jsonl").read_text().startswith(before) and shard_files(tmp_path) == []
    assert read_task(tmp_path) == union

    merged = (tmp_path / "samples.jsonl").read_text()
    for path, data in shards.items():  # killed after appending, before deleting: merging again adds nothing
        path.write_bytes(data)
    assert merge_shards(tmp_path, ["d", "c", "b", "a"]) == 0
    assert (tmp_path / "samples.jsonl").read_text() == merged and shard_files(tmp_path) == []


def test_each_process_takes_its_share_of_what_is_left():
    left = [f"s{i}" for i in range(11)]
    for size in (1, 2, 3, 4):
        parts = [World(rank=r, size=size).share(left) for r in range(size)]
        assert sorted(x for p in parts for x in p) == sorted(left)  # nothing lost, nothing twice
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert parts == [World(rank=r, size=size).share(left) for r in range(size)]  # deterministic


def test_a_launch_does_not_lock_itself_out_but_others_are_refused(tmp_path, capsys):
    folder = tmp_path / MODEL / "baseline" / "mmspec_demo"
    with FolderLock(folder, rank=0, world_size=2), FolderLock(folder, rank=1, world_size=2):  # one launch
        with pytest.raises(HarnessError, match=r"being written by another run \(pid \d+ on .*process 0 of 2"):
            FolderLock(folder).acquire()  # a second, unrelated run
        with pytest.raises(HarnessError, match="process 1 of this launch cannot take its records file"):
            FolderLock(folder, rank=1, world_size=3).acquire()  # a process of another launch
    with FolderLock(folder, rank=1, world_size=2):  # its main process died, process 1 still writes
        assert main([*COMMON, "--spec", "baseline", "--output_path", str(tmp_path), "--limit", "1"]) == 1
    err = capsys.readouterr().err
    assert "still being written by process 1 of an earlier launch" in err and "Traceback" not in err
    assert not (folder / "samples.jsonl").exists()
    with FolderLock(folder), FolderLock(folder, rank=1, world_size=2):  # all free again: both taken
        pass


def test_launch_position_and_devices(monkeypatch):
    for name in (
        "RANK",
        "WORLD_SIZE",
        "PMI_RANK",
        "PMI_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert launch_position() == (0, 1)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")  # accelerate's CPU launch goes through mpirun
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launch_position() == (3, 4)
    monkeypatch.setenv("WORLD_SIZE", "x")
    with pytest.raises(UsageError, match=r"\$WORLD_SIZE='x': expected an integer"):
        launch_position()

    two = World(rank=1, size=2, local_rank=1, local_size=2)
    assert place_process(World(), {"dtype": "float64"}) == ({"dtype": "float64"}, None)
    assert place_process(two, {"device": "cpu"}) == ({"device": "cpu"}, None)
    with pytest.raises(UsageError, match="device=cuda:1 with 2 processes: each process takes its own GPU"):
        place_process(two, {"device": "cuda:1"})
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")  # accelerate launch --cpu
    assert place_process(two, {})[0] == {"device": "cpu"}
    with pytest.raises(UsageError, match="device_map=FILE with several processes"):
        place_process(two, {"parallelize": "true", "device_map": {"": 0}})
