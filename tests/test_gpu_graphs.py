"""Captured CUDA graphs survive other compiled programs in the same process (GPU only).

torch.compile's CUDA-graph trees (``mode="reduce-overhead"``, what transformers' compiled
static-cache ``generate`` uses) free every cached cuBLAS workspace whenever they record. A graph
captured while pointing at such a workspace would then write into freed memory — the "illegal
memory access" seen after transformers' compiled ``generate``. Our captures own their workspace
(``mmspec.graphs.StepCache.capture``); this test runs a recording compiled program and scribbles
over freed memory between two replays of the same verification step and checks the outputs.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu  # deselected without CUDA (tests/conftest.py); run by benchmarks/gpu_tests.sh


def _other_compiled_program() -> None:
    """A small matmul-heavy program compiled with CUDA-graph trees, recorded and replayed."""
    lin = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 512)).cuda()
    fn = torch.compile(lin, mode="reduce-overhead")
    x = torch.randn(64, 512, device="cuda")
    for _ in range(4):
        fn(x)
    torch.cuda.synchronize()


def _scribble() -> None:
    """Take freed memory and fill it with garbage (what other code would do with it)."""
    junk = [torch.full((1 << 20,), float("nan"), device="cuda") for _ in range(64)]
    torch.cuda.synchronize()
    del junk


@pytest.mark.parametrize("model", ["tiny-qwen25vl", "tiny-llava15"])
def test_graph_replays_are_unchanged_by_other_compiled_programs(model):
    from _models import prompt

    from mmspec.adapters import load_model
    from mmspec.tree import DraftTree

    adapter = load_model(
        model, {"dtype": "float32", "device": "cuda", "execution": "graph", "max_cache_len": 512}
    )
    p = prompt(adapter)
    tree = DraftTree([5, 6, 7, 8, 9], [-1, 0, 1, 1, 0])

    def verify() -> tuple[torch.Tensor, torch.Tensor]:
        adapter.prefill(p)
        out = adapter.forward_tree(tree)
        return out.logits.clone(), out.argmax.clone()

    before = verify()  # captures the step
    _other_compiled_program()
    _scribble()
    after = verify()  # replays it
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    assert torch.equal(after[1], before[1])


def test_staged_buffer_is_not_refilled_under_a_queued_copy():
    """Steps issued back to back (no result read in between) each get their own inputs: refilling
    the pinned host buffer waits until the queued copy has read it (``StagedBuffer.writable``).
    Without that, the KV-compaction test's sequential reference cache intermittently held another
    step's tokens (graph mode, H200)."""
    from mmspec.graphs import StagedBuffer

    buf = StagedBuffer.zeros(4096, torch.int32, torch.device("cuda"))
    seen = []
    for i in range(4):
        torch.cuda._sleep(20_000_000)  # keep the stream busy: the upload below stays queued
        buf.writable().fill_(i)
        buf.upload()
        seen.append(buf.device.clone())  # runs on the stream right after that upload
    torch.cuda.synchronize()
    assert [sorted(set(t.tolist())) for t in seen] == [[0], [1], [2], [3]]
