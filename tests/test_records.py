"""Per-sample records: nothing lost and nothing stuck across kills, torn writes and bad lines."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from mmspec.errors import MmspecError
from mmspec.records import RecordFile, RecordsError, SampleRecord, TurnRecord, read_json

TURN = dict(prompt_tokens=5, text="héllo wörld", token_ids=[1, 2], new_tokens=2, wall_time_s=0.1,
            prefill_time_s=0.05, rounds=1, target_forwards=2, accepted_per_round=[0], tree_size_per_round=[1],
            skipped_rounds=0, draft_time_s=0.0, verify_time_s=0.01, stop_reason="stop")  # fmt: skip


def record(sid: str) -> SampleRecord:
    return SampleRecord(
        id=sid, task="t", category="c", subcategory=None, status="ok", turns=[TurnRecord(**TURN)]
    )


@pytest.fixture
def records(tmp_path: Path) -> RecordFile:
    rf = RecordFile(tmp_path / "samples.jsonl")
    rf.append(record("a"))
    return rf


def test_complete_last_line_without_newline_is_kept(records: RecordFile) -> None:
    """Killed just before the newline: the record is whole, so it counts and the next append keeps it."""
    data = records.path.read_bytes()
    records.path.write_bytes(data + record("b").to_json().encode())  # no trailing newline
    assert set(records.read()) == {"a", "b"}
    records.append(record("c"))
    assert set(records.read()) == {"a", "b", "c"}
    assert records.path.read_bytes().endswith(b"\n") and len(records.path.read_bytes().splitlines()) == 3


def test_torn_multibyte_last_line_is_dropped(records: RecordFile) -> None:
    """Cut inside a UTF-8 character: dropped like any torn line, never a decode error."""
    line = record("b").to_json().encode()
    cut = line.index("ö".encode()) + 1  # inside the two-byte character
    records.path.write_bytes(records.path.read_bytes() + line[:cut])
    assert set(records.read()) == {"a"}
    records.append(record("c"))
    assert set(records.read()) == {"a", "c"}


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (b"null", "not a sample record"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"id": 1}', "not a sample record"),
    ],
)
def test_bad_middle_line_names_file_and_line(records: RecordFile, bad: bytes, what: str) -> None:
    records.path.write_bytes(records.path.read_bytes() + bad + b"\n")
    records.append(record("c"))
    with pytest.raises(RecordsError, match=rf"samples\.jsonl:2: {what}.*Delete that line") as err:
        records.read()
    assert isinstance(err.value, MmspecError)


def test_disk_full_is_a_clear_error(records: RecordFile, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecordsError, match=r"samples\.jsonl: cannot write: No space left on device.*rerun"):
        records.append(record("b"))


@pytest.mark.parametrize(
    ("text", "what"), [("", "empty"), ('{"model": "x", "dty', "not valid JSON"), ("[1]", "not a")]
)
def test_bad_json_files_name_the_file(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(RecordsError, match=rf"run\.json.*{what}"):
        read_json(path)
    path.write_text(json.dumps({"model": "x"}))
    assert read_json(path) == {"model": "x"}
