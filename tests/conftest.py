"""Shared pytest fixtures (keep them generic: any test module may use them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Where the MMSpec question files are looked for (a folder holding test/ and testmini/).
SHARED_DATA = Path(os.environ.get("MMSPEC_SHARED_DATA") or REPO.parent / "shared" / "data" / "mmspec")


@pytest.fixture(scope="session")
def mmspec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in MMSpec data root (`<root>/{test,testmini}/mmspec.jsonl` + `images/`).

    Built once per session from the real question files in `$MMSPEC_SHARED_DATA` (default
    `../shared/data/mmspec`) with small generated images. Without them the tests that need them
    skip with a one-line reason; `MMSPEC_REQUIRE_DATA=1` (set by `.ci/run`) makes that a failure.
    """
    from mmspec.tasks.standin import make_standin_dataset

    missing = [s for s in ("test", "testmini") if not (SHARED_DATA / s / "mmspec.jsonl").is_file()]
    if missing:
        reason = (
            f"needs MMSpec's question files ({SHARED_DATA}/{missing[0]}/mmspec.jsonl not found): clone "
            "https://github.com/killthefullmoon/MMSpec and set MMSPEC_SHARED_DATA=MMSpec/dataset/MMSpec"
        )
        if os.environ.get("MMSPEC_REQUIRE_DATA", "") not in ("", "0"):
            pytest.fail(f"MMSPEC_REQUIRE_DATA is set but the test {reason}", pytrace=False)
        pytest.skip(reason)
    return make_standin_dataset(SHARED_DATA, tmp_path_factory.mktemp("mmspec_root"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests (marker ``gpu``) are deselected, not skipped, on a machine without CUDA: CI's run
    then has zero skips, and ``benchmarks/gpu_tests.sh`` runs them on the GPU."""
    import torch

    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]
