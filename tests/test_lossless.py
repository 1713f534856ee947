"""Every method reproduces the baseline's token ids on every tiny adapter (the demo and every
testmini category, float64), and drafts hit where the output repeats earlier text (so a drafter
that proposes nothing fails)."""

from __future__ import annotations

import pytest
from _models import TINY_MODELS, looping_adapter, tiny_adapter

from mmspec.harness import Harness, RunConfig

#: every registered method; draft models use seeded random drafts (trained ones: test_sampling)
#: and, to keep CI short, shorter answers (each of their rounds costs several draft forwards)
DRAFT_MODEL_TOKENS = 12
METHODS: dict[str, dict] = {
    "pld": {},
    "lookahead": {},
    "recycling": {},
    "sam": {},
    "oracle": {"k": 3, "wrong_tail": 2},
    "medusa": {"checkpoint": "random"},
    "eagle": {"checkpoint": "random"},
    "eagle2": {"checkpoint": "random"},
    "eagle3": {"checkpoint": "random"},
    "msd": {"checkpoint": "random"},
    "vispec": {"checkpoint": "random"},
    "vispec_vskip": {"checkpoint": "random"},
    "msd_vskip": {"checkpoint": "random"},
    "sam_vskip": {},
}
#: samples per task: the demo and each of testmini's six categories (multi-turn included); 4 keeps
#: every category and CI short (the GPU run, benchmarks/gpu_tests.sh, uses the same subset)
LIMIT = 4


@pytest.fixture(scope="module", params=TINY_MODELS)
def runner(request, mmspec_root, tmp_path_factory):
    """Runs a spec over demo + testmini on one tiny adapter, after a baseline of the same length."""
    model = request.param
    root = tmp_path_factory.mktemp(f"lossless-{model}")
    adapter = tiny_adapter(model, "float64")

    def run(spec: str, max_new_tokens: int, **spec_args):
        out = root / f"len{max_new_tokens}"
        if spec != "baseline" and not out.exists():
            run("baseline", max_new_tokens)
        cfg = RunConfig(tasks=["mmspec_demo", "mmspec_testmini"], model=model, spec=spec, spec_args=spec_args,
                        output_path=out, max_new_tokens=max_new_tokens, warmup=0, limit=LIMIT,
                        dataset_root=str(mmspec_root))  # fmt: skip
        return Harness(cfg, adapter=adapter).run()

    return run


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(METHODS))
def test_greedy_output_equals_baseline(runner, spec):
    args = METHODS[spec]
    tokens = DRAFT_MODEL_TOKENS if "checkpoint" in args else 24
    res = runner(spec, tokens, **args)
    overall = res["overall"]
    assert len(res["tasks"]) == 7 and overall["n_failed"] == 0
    assert overall["n_compared"] == overall["n_turns"] >= 7 * LIMIT  # every turn paired with the baseline
    assert overall["mismatches"] == []
    assert overall["exact_match_rate"] == 1.0
    assert all(t["exact_match_rate"] == 1.0 for t in res["tasks"].values())


@pytest.mark.parametrize("spec", ["pld", "lookahead", "recycling", "sam"])
def test_drafts_hit_where_the_output_repeats(spec, tmp_path):
    """On a looping tiny model (answers repeat earlier text) every method's MAT is clearly above 1."""
    adapter = looping_adapter("tiny-qwen25vl")
    results = {}
    for s in ("baseline", spec):
        cfg = RunConfig(tasks=["mmspec_demo"], model="tiny-qwen25vl", spec=s, output_path=tmp_path,
                        max_new_tokens=64, warmup=0)  # fmt: skip
        results[s] = Harness(cfg, adapter=adapter).run()["overall"]
    assert results["baseline"]["mat"] == 1.0
    assert results[spec]["exact_match_rate"] == 1.0
    assert results[spec]["mat"] > 1.2, results[spec]["mat"]
