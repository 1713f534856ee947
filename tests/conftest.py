"""Shared pytest fixtures (keep them generic: any test module may use them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mmspec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in MMSpec data root (`<root>/{test,testmini}/mmspec.jsonl` + `images/`).

    Built once per session from the real question files in `../shared/data/mmspec` (or
    `$MMSPEC_SHARED_DATA`) with small generated images. Missing question files fail the tests
    that need them instead of skipping them.
    """
    from mmspec.tasks.standin import make_standin_dataset

    shared = Path(os.environ.get("MMSPEC_SHARED_DATA") or REPO.parent / "shared" / "data" / "mmspec")
    missing = [s for s in ("test", "testmini") if not (shared / s / "mmspec.jsonl").is_file()]
    if missing:
        pytest.fail(
            f"MMSpec question files missing: {', '.join(f'{shared}/{s}/mmspec.jsonl' for s in missing)}. "
            "Set MMSPEC_SHARED_DATA to the folder holding test/ and testmini/.",
            pytrace=False,
        )
    return make_standin_dataset(shared, tmp_path_factory.mktemp("mmspec_root"))
