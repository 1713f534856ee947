"""mmspec.leaderboard: collecting results.json files, sorting, labels, Markdown/HTML views, CLI errors."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _page import require_plots

from mmspec.leaderboard import (
    METRIC_KEYS,
    LeaderboardError,
    build_leaderboard,
    find_results_files,
    load_results,
    render_html,
    render_markdown,
)
from mmspec.leaderboard.cli import main
from mmspec.leaderboard.page import SORT_SCRIPT

TASKS = ("mmspec_general_vqa", "mmspec_chart")
CATEGORIES = ("general vqa", "chart")


def metrics(paired: float | None, global_: float | None, tps: float, **extra: Any) -> dict[str, Any]:
    return {
        "n_samples": 10, "n_failed": 0, "n_turns": 12, "new_tokens": 1200, "wall_time_s": 1200 / tps,
        "prefill_time_s": 0.5, "tokens_per_s": tps, "mat": 2.5,
        "speedup_paired": paired, "speedup_global": global_,
        "exact_match_rate": None if paired is None else 1.0,
        "n_compared": 0 if paired is None else 12, "mismatches": [], **extra,
    }  # fmt: skip


def results(
    model: str,
    spec: str,
    paired: float | None,
    global_: float | None = None,
    tps: float = 100.0,
    dtype: str = "bfloat16",
    execution: str = "graph",
) -> dict[str, Any]:
    """A synthetic results.json: 2 tasks, 2 categories and overall, task speedups a little apart."""
    global_ = paired if global_ is None else global_

    def shift(v: float | None, d: float) -> float | None:  # the baseline is 1.0 everywhere
        return None if v is None else v if spec == "baseline" else round(v + d, 4)

    data = {
        "schema_version": 1,
        "mmspec_version": "0.1.0",
        "model": model,
        "spec": spec,
        "created": "2026-11-22T10:00:00+00:00",
        "config": {
            "model": model,
            "pretrained": f"org/{model}",
            "model_args": {"dtype": dtype},
            "dtype": dtype,
            "attn_implementation": "sdpa",
            "execution": execution,
            "spec": spec,
            "spec_args": {"depth": 3},
            "temperature": 0.0,
            "max_new_tokens": 64,
            "seed": 0,
            "warmup": 1,
            "limit": None,
        },  # fmt: skip
        "environment": {
            "python": "3.12.3",
            "torch": "2.11.0",
            "device": "cuda",
            "device_name": "NVIDIA H100 80GB HBM3",
        },  # fmt: skip
        "tasks": {
            t: metrics(
                shift(paired, -0.01 * (i + 1)), shift(global_, -0.01 * (i + 1)), tps, task_fingerprint="x"
            )
            for i, t in enumerate(TASKS)
        },
        "categories": {
            c: metrics(shift(paired, 0.01 * (i + 1)), global_, tps) for i, c in enumerate(CATEGORIES)
        },
        "overall": metrics(paired, global_, tps, ttft_mean_s=0.05),
    }
    if spec == "baseline":  # plain decoding: one token per target forward
        for block in [*data["tasks"].values(), *data["categories"].values(), data["overall"]]:
            block["mat"] = 1.0
    return data


def write(root: Path, data: Any, model: str = "m", spec: str = "s") -> Path:
    path = root / model / spec / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    runs = [
        results("qwen25vl", "baseline", 1.0, tps=100.0),
        results("qwen25vl", "eagle2", 1.62, 1.55, tps=162.0),
        results("qwen25vl", "medusa", None, tps=150.0),  # no baseline run: null speedups
        results("llava15", "baseline", 1.0, tps=80.0),
        results("llava15", "eagle2", 1.40, 1.35, tps=112.0),
    ]
    for r in runs:
        write(root, r, r["model"], r["spec"])
    return root


def overall(lb: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in lb["entries"] if e["scope"] == "overall"]


def md_tables(md: str) -> dict[str, list[str]]:
    """The Markdown view's table lines (header, separator, rows) by their ``## `` heading."""
    tables: dict[str, list[str]] = {}
    heading = ""
    for line in md.splitlines():
        if line.startswith("## "):
            heading = line[3:]
            tables[heading] = []
        elif line.startswith("|"):
            tables[heading].append(line)
        else:
            assert line == "", line  # nothing but headings, tables and blank lines
    return tables


def md_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


# ---------------------------------------------------------------------------------------- building
def test_entries_counts_fields_and_sources(results_dir: Path) -> None:
    lb = build_leaderboard([results_dir], generated="2026-11-22T12:00:00+00:00")
    assert lb["schema_version"] == 2 and lb["generated"] == "2026-11-22T12:00:00+00:00"
    assert set(lb) == {"schema_version", "generated", "sources", "entries", "runs", "models"}
    assert len(lb["sources"]) == 5
    assert lb["sources"] == sorted(lb["sources"])  # deterministic: sorted by path
    assert len(lb["entries"]) == 5 * (1 + len(CATEGORIES) + len(TASKS))
    # scopes kept apart: every overall entry first, then categories, then tasks, each by name
    groups = [(e["scope"], e["name"]) for e in lb["entries"]]
    assert groups == [("overall", "overall")] * 5 + [
        ("category", c) for c in sorted(CATEGORIES) for _ in range(5)
    ] + [("task", t) for t in sorted(TASKS) for _ in range(5)]
    assert [e["rank"] for e in lb["entries"]] == [1, 2, 3, 4, 5] * (1 + len(CATEGORIES) + len(TASKS))
    keys = {(e["model"], e["spec"], e["scope"], e["name"]) for e in lb["entries"]}
    assert len(keys) == 25
    e = next(e for e in overall(lb) if e["spec"] == "eagle2" and e["model"] == "qwen25vl")
    for k in METRIC_KEYS:
        assert k in e
    assert e["label"] == "qwen25vl/eagle2" and e["variant"] is None
    assert e["config"]["dtype"] == "bfloat16" and e["environment"]["device_name"].startswith("NVIDIA")
    assert e["source"].endswith(str(Path("qwen25vl/eagle2/results.json")))
    assert e["ttft_mean_s"] == 0.05  # extra metric fields pass through
    task = next(x for x in lb["entries"] if x["scope"] == "task" and x["model"] == "qwen25vl")
    assert task["task_fingerprint"] == "x"
    json.dumps(lb, allow_nan=False)  # strict JSON


def test_sorting_by_speedup_with_nulls_last(results_dir: Path) -> None:
    lb = build_leaderboard(results_dir)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in lb["entries"]:
        groups.setdefault((e["scope"], e["name"]), []).append(e)
    assert len(groups) == 1 + len(CATEGORIES) + len(TASKS)
    for rows in groups.values():  # within a scope and name: by global speedup, the medusa run last
        speedups = [e["speedup_global"] for e in rows]
        assert speedups[:-1] == sorted(speedups[:-1], reverse=True) and None not in speedups[:-1]
        assert speedups[-1] is None and rows[-1]["spec"] == "medusa"
    assert lb["entries"][0]["model"] == "qwen25vl" and lb["entries"][0]["spec"] == "eagle2"
    assert [(e["model"], e["spec"]) for e in overall(lb)] == [
        ("qwen25vl", "eagle2"), ("llava15", "eagle2"), ("qwen25vl", "baseline"),
        ("llava15", "baseline"), ("qwen25vl", "medusa"),
    ]  # fmt: skip
    # the baselines tie at 1.0 (paired and global): the faster tokens/s comes first
    assert [e["tokens_per_s"] for e in overall(lb) if e["spec"] == "baseline"] == [100.0, 80.0]
    # full ties (one run's entries) are ordered by scope (overall, category, task), then name
    qwen_base = [(e["scope"], e["name"]) for e in lb["entries"] if e["label"] == "qwen25vl/baseline"]
    assert qwen_base == [("overall", "overall"), ("category", "chart"), ("category", "general vqa"),
                         ("task", "mmspec_chart"), ("task", "mmspec_general_vqa")]  # fmt: skip


def test_tie_breaks(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, results("b", "x", 1.5, 1.2, tps=10.0), "b", "x")
    write(root, results("a", "x", 1.4, 1.3, tps=10.0), "a", "x")  # higher global, lower paired: first
    write(root, results("f", "x", 1.6, 1.2, tps=10.0), "f", "x")  # same global as b, higher paired
    write(root, results("c", "x", 1.5, 1.2, tps=20.0), "c", "x")  # same paired and global as b, faster
    write(root, results("d", "x", 1.5, 1.2, tps=10.0), "d", "x")  # full tie with b -> by name
    paired_only = results("e", "x", 1.9, tps=5.0)
    paired_only["overall"]["speedup_global"] = None  # paired only: after every global speedup
    write(root, paired_only, "e", "x")
    lb = build_leaderboard(root)
    order = [e["model"] for e in overall(lb)]
    assert order == ["a", "f", "c", "b", "d", "e"]
    assert [e["rank"] for e in overall(lb)] == [1, 2, 3, 4, 5, 6]
    again = build_leaderboard(root, generated="t")
    assert [e["source"] for e in again["entries"]] == [
        e["source"] for e in build_leaderboard(root)["entries"]
    ]


def test_baseline_has_speedup_one_and_null_run_renders_dash(results_dir: Path) -> None:
    lb = build_leaderboard(results_dir)
    base = next(e for e in overall(lb) if e["model"] == "qwen25vl" and e["spec"] == "baseline")
    assert base["speedup_paired"] == 1.0 and base["mat"] == 1.0
    null = next(e for e in overall(lb) if e["spec"] == "medusa")
    assert null["speedup_paired"] is None and null["exact_match_rate"] is None
    table = md_tables(render_markdown(lb))["Overall (ranked by global speedup)"]
    header = md_cells(table[0])
    assert header[:9] == ["rank", "model", "spec", "speedup (global)", "speedup (paired)", "MAT", "tokens/s",
                          "TTFT ms", "exact match"]  # fmt: skip
    row = next(md_cells(line) for line in table[2:] if "medusa" in line)
    assert row[3:6] == ["—", "—", "2.50"] and row[8] == "unchecked"
    ok = next(md_cells(line) for line in table[2:] if "| qwen25vl" in line and "eagle2" in line)
    assert ok[:9] == ["1", "qwen25vl", "eagle2", "1.55", "1.62", "2.50", "162.0", "50.0", "100.0% lossless"]


def test_missing_and_nan_metrics_become_null(tmp_path: Path) -> None:
    data = results("m", "s", 1.2)
    del data["overall"]["speedup_global"]
    data["tasks"]["mmspec_chart"]["speedup_paired"] = float("nan")
    data["categories"] = None
    write(tmp_path, json.dumps(data))  # json.dumps writes NaN, which Python's json reads back
    lb = build_leaderboard(tmp_path)
    assert len(lb["entries"]) == 1 + len(TASKS)
    assert overall(lb)[0]["speedup_global"] is None
    chart = next(e for e in lb["entries"] if e["name"] == "mmspec_chart")
    assert chart["speedup_paired"] is None and chart["speedup_global"] == 1.18 and chart["rank"] == 1
    json.dumps(lb, allow_nan=False)


# ------------------------------------------------------------------------------ disambiguation
def test_same_model_spec_with_different_configs_are_both_kept(results_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "fp16"
    write(other, results("qwen25vl", "eagle2", 1.70, tps=170.0, dtype="float16"), "qwen25vl", "eagle2")
    lb = build_leaderboard([results_dir, other])
    eagle = [e for e in overall(lb) if (e["model"], e["spec"]) == ("qwen25vl", "eagle2")]
    assert len(eagle) == 2
    assert [e["variant"] for e in eagle] == ["dtype=float16", "dtype=bfloat16"]
    assert eagle[0]["label"] == "qwen25vl/eagle2 (dtype=float16)"
    assert len({e["label"] for e in eagle}) == 2
    assert "eagle2 (dtype=float16)" in render_markdown(lb)
    # other (model, spec) pairs keep a plain label
    assert all(
        e["variant"] is None for e in lb["entries"] if e["spec"] != "eagle2" or e["model"] != "qwen25vl"
    )


def test_several_differences_and_identical_copies(tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / n for n in ("a", "b", "c", "d"))
    write(a, results("m", "s", 1.5, dtype="bfloat16", execution="graph"))
    write(b, results("m", "s", 1.4, dtype="float16", execution="graph"))
    write(c, results("m", "s", 1.3, dtype="float16", execution="eager"))
    write(d, results("m", "s", 1.2, dtype="float16", execution="eager"))  # same settings as c
    lb = build_leaderboard([a, b, c, d])
    variants = [e["variant"] for e in overall(lb)]
    assert variants == [
        "dtype=bfloat16, execution=graph",
        "dtype=float16, execution=graph",
        "dtype=float16, execution=eager, from=c",
        "dtype=float16, execution=eager, from=d",
    ]
    assert len(lb["entries"]) == 4 * 5  # nothing dropped


def test_same_file_twice_is_read_once(results_dir: Path) -> None:
    one = results_dir / "qwen25vl" / "eagle2" / "results.json"
    files = find_results_files([results_dir, one, results_dir / "qwen25vl"])
    assert len(files) == 5
    assert [r.model for r in load_results(one)] == ["qwen25vl"]


# ----------------------------------------------------------------------------------- rendering
def test_markdown_table_shape_and_escaping(tmp_path: Path) -> None:
    write(tmp_path, results("evil|model\nline2", "s`*[x]", 1.1), "evil", "s")
    md = render_markdown(build_leaderboard(tmp_path))
    tables = md_tables(md)  # also: nothing but headings, tables and blank lines
    assert list(tables) == ["Overall (ranked by global speedup)", "By category", "By task"]
    first = {"Overall (ranked by global speedup)": "| rank | model ", "By category": "| rank | category ",
             "By task": "| rank | task "}  # fmt: skip
    for heading, lines in tables.items():
        assert lines[0].startswith(first[heading]) and "speedup (paired)" in lines[0] and "device" in lines[0]
        assert "failed" in lines[0] and "mismatches" in lines[0] and "flags" in lines[0]
        assert set(lines[1]) <= {"|", "-", ":"}
    assert [len(lines) - 2 for lines in tables.values()] == [1, len(CATEGORIES), len(TASKS)]
    assert "evil\\|model<br>line2" in md
    assert "s\\`\\*\\[x\\]" in md

    def unescaped_pipes(line: str) -> int:
        return sum(1 for i, ch in enumerate(line) if ch == "|" and (i == 0 or line[i - 1] != "\\"))

    overall_columns = len(md_cells(tables["Overall (ranked by global speedup)"][0]))
    assert {unescaped_pipes(line) for line in tables["Overall (ranked by global speedup)"]} == {
        overall_columns + 1
    }
    assert {unescaped_pipes(line) for line in tables["By category"] + tables["By task"]} == {
        overall_columns + 2
    }


def test_html_escapes_untrusted_text(tmp_path: Path) -> None:
    data = results("<script>alert(1)</script>", 'spec"><img src=x onerror=alert(2)>', 1.3)
    data["environment"]["device_name"] = "<b>gpu</b>"
    data["tasks"]["<iframe>"] = data["tasks"].pop("mmspec_chart")
    data["categories"]["<script>c</script> $x$"] = data["categories"].pop("chart")  # heatmap label
    src = write(tmp_path, data, "evil", "x")
    lb = build_leaderboard(tmp_path)
    script_hash = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    for with_plots in (False, True):
        if with_plots:
            require_plots()
        page = render_html(lb, title="<title>&", with_plots=with_plots)
        assert ('id="m0-heatmap-speedup"' in page) is with_plots  # the labels went through matplotlib too
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;c&lt;/script&gt;" in page
        # the one script is the page's own sorting script, allowed by its hash and nothing else
        assert page.lower().count("<script") == 1 and f"<script>{SORT_SCRIPT}</script>" in page
        assert f"script-src 'sha256-{script_hash}'" in page and "default-src 'none'" in page
        assert "<img" not in page and "<iframe" not in page and "<b>" not in page
        assert "&lt;iframe&gt;" in page and "&lt;title&gt;&amp;" in page and "&lt;b&gt;gpu&lt;/b&gt;" in page
        assert "src=" not in page.replace("src=x", "")  # no external resources
        assert "href=" not in page.replace('href="#m0', "")  # no links out, only to the page's own ids
        assert page.startswith("<!DOCTYPE html>")
        assert str(src) in page
    md = render_markdown(lb)
    assert "<script>" not in md and "\\<script\\>alert(1)\\</script\\>" in md


# -------------------------------------------------------------------------------------- errors
def test_invalid_json_names_file(tmp_path: Path) -> None:
    bad = write(tmp_path, '{"model": "m", "spec": ')
    with pytest.raises(LeaderboardError, match="not valid JSON") as e:
        build_leaderboard(tmp_path)
    assert str(bad) in str(e.value) and "line 1" in str(e.value)


@pytest.mark.parametrize("key", ["model", "spec", "tasks"])
def test_missing_required_key_names_file_and_key(tmp_path: Path, key: str) -> None:
    data = results("m", "s", 1.0)
    del data[key]
    path = write(tmp_path, data)
    with pytest.raises(LeaderboardError) as e:
        load_results(tmp_path)
    assert str(path) in str(e.value) and f"missing required key '{key}'" in str(e.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(model=3), "key 'model' must be a non-empty string"),
        (lambda d: d.update(tasks=[]), "key 'tasks' must be a JSON object, got array"),
        (
            lambda d: d["overall"].update(speedup_paired="fast"),
            "overall.speedup_paired must be a number or null",
        ),
        (lambda d: d["tasks"].update(t=5), "tasks.t must be a JSON object"),
        (lambda d: d.update(config="x"), "key 'config' must be a JSON object or null"),
    ],
)
def test_wrong_types_name_file_and_key(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = copy.deepcopy(results("m", "s", 1.0))
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(LeaderboardError, match="^" + str(path).replace("\\", "\\\\") + ": ") as e:
        load_results(tmp_path)
    assert expected in str(e.value)


def test_folder_without_results_names_searched_folders(tmp_path: Path, results_dir: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(LeaderboardError, match="no results.json found under") as e:
        build_leaderboard([results_dir, empty])
    assert str(empty) in str(e.value) and str(results_dir) in str(e.value)
    with pytest.raises(LeaderboardError, match="no such file or folder"):
        build_leaderboard(tmp_path / "missing")


# ----------------------------------------------------------------------------------------- CLI
def test_cli_writes_outputs(results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main([str(results_dir), "-o", str(out / "lb.json"), "--markdown", str(out / "lb.md"),
               "--html", str(out / "lb.html")])  # fmt: skip
    assert rc == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("## Overall (ranked by global speedup)\n\n| rank | model")
    tables = md_tables(stdout)
    assert [len(t) - 2 for t in tables.values()] == [5, 5 * len(CATEGORIES), 5 * len(TASKS)]  # all 25 entries
    lb = json.loads((out / "lb.json").read_text(encoding="utf-8"))
    assert set(lb) == {"schema_version", "generated", "sources", "entries", "runs", "models"}
    assert lb["schema_version"] == 2 and len(lb["entries"]) == 25
    assert (out / "lb.md").read_text(encoding="utf-8") == stdout
    page = (out / "lb.html").read_text(encoding="utf-8")
    assert 'id="m0-ranking"' in page and 'id="m1-ranking"' in page and 'id="m2-ranking"' not in page


def test_cli_html_without_matplotlib_says_how_to_get_the_figures(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmspec.leaderboard import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    assert main([str(results_dir), "--html", str(tmp_path / "lb.html"), "-q"]) == 0
    assert 'pip install "mmspec[plots]"' in capsys.readouterr().err
    page = (tmp_path / "lb.html").read_text(encoding="utf-8")
    assert 'id="plots-missing"' in page and "<svg" not in page and 'id="m0-ranking"' in page


def test_cli_bad_input_exits_nonzero_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = results("m", "s", 1.0)
    del data["spec"]
    path = write(tmp_path, data)
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmspec-leaderboard: error: ") and str(path) in err and "'spec'" in err
    assert "Traceback" not in err
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main([str(empty)]) == 1
    assert str(empty) in capsys.readouterr().err


def test_cli_as_module(results_dir: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "mmspec.leaderboard.cli", str(results_dir), "-q"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout == ""
    (results_dir / "qwen25vl" / "eagle2" / "results.json").write_text("[", encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "mmspec.leaderboard", str(results_dir)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr and "Traceback" not in bad.stderr
    assert "eagle2" in bad.stderr and bad.stdout == ""
