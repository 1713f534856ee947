"""The proxy pipeline end to end at micro size on the CPU: build a trained target, regenerate
answers with it, train one draft, run the harness for the baseline and the draft, build the
leaderboard — a trained draft accepts real tokens and stays token-identical to the baseline."""

from __future__ import annotations

import json

import pytest

from mmspec.proxy.pipeline import PipelineConfig, run_pipeline


@pytest.mark.slow
def test_micro_pipeline_accepts_real_tokens_losslessly(tmp_path):
    cfg = PipelineConfig(
        family="qwen25vl", out=str(tmp_path / "proxy"), size="micro", build_steps=30, build_eval=False,
        n_train=6, regen_max_new_tokens=16, fit_steps=15, fit_seconds=None, fit_lr=3e-3,
        methods=("baseline", "eagle2"), limit=1, max_new_tokens=16, warmup=0,
    )  # fmt: skip
    summary = run_pipeline(cfg)
    eagle2, base = summary["methods"]["eagle2"], summary["methods"]["baseline"]
    assert base["mat"] == 1.0
    assert eagle2["mat"] > 1.0, eagle2
    assert eagle2["exact_match_rate"] == 1.0 and eagle2["n_compared"] >= 6
    assert eagle2["acceptance_by_depth"] and eagle2["acceptance_by_depth"][0] > 0
    assert summary["target"]["weights_sha256"]
    assert summary["drafts"]["eagle"]["steps"] == 15
    out = tmp_path / "proxy"
    board = json.loads((out / "leaderboard.json").read_text())
    assert {e["spec"] for e in board["entries"]} == {"baseline", "eagle2"}
    assert "eagle2" in (out / "leaderboard.html").read_text()  # the page renders the runs
    # a rerun finds every stage done and only rewrites the summary
    again = run_pipeline(cfg)
    assert again["methods"]["eagle2"]["mat"] == eagle2["mat"]
    # RESULTS.md's tables render from the summary (benchmarks/proxy_tables.py)
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "proxy_tables.py"
    spec = importlib.util.spec_from_file_location("proxy_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    rows = tables.method_table(summary).splitlines()
    assert rows[0].startswith("| method | MAT | chart") and len(rows) == 4  # header, rule, 2 methods
    assert rows[3].startswith(f"| eagle2 | **{eagle2['mat']:.2f}** |") and "1.000 (" in rows[3]
    other_seed = json.loads(json.dumps(summary))
    other_seed["pipeline"]["seed"] = 1
    other_seed["methods"]["eagle2"]["mat"] = eagle2["mat"] + 0.5
    spread = tables.spread_table([summary, other_seed]).splitlines()
    assert len(spread) == 3 and spread[2].endswith("| 0.50 |")  # baseline left out; range max - min
