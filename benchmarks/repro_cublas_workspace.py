"""Reproduce the graph-replay corruption after another compiled program (issue 14) with and without
the fix in ``StepCache.capture``: prints whether a replayed verification step still gives the outputs
it gave before ``torch.compile(mode="reduce-overhead")`` recorded its own graphs.

    python benchmarks/repro_cublas_workspace.py unsafe   # capture as before the fix
    python benchmarks/repro_cublas_workspace.py safe     # capture as now
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def unsafe_capture(self, step) -> None:  # StepCache.capture before the fix (workspace not owned)
    if self.mode != "graph" or step.graph is not None:
        return
    t0 = time.perf_counter()
    stream = self.stream
    stream.wait_stream(torch.cuda.current_stream(self.device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            step.fn()
    torch.cuda.current_stream(self.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=self.pool, stream=stream):
        step.outputs = step.fn()
    step.graph = graph
    torch.cuda.synchronize(self.device)
    self.capture_time_s += time.perf_counter() - t0


def main() -> None:
    import test_gpu_graphs as t
    from _models import prompt

    from mmspec import graphs
    from mmspec.adapters import load_model
    from mmspec.tree import DraftTree

    if sys.argv[1] == "unsafe":
        graphs.StepCache.capture = unsafe_capture
    for model in ("tiny-qwen25vl", "tiny-llava15"):
        adapter = load_model(
            model, {"dtype": "float32", "device": "cuda", "execution": "graph", "max_cache_len": 512}
        )
        p = prompt(adapter)
        tree = DraftTree([5, 6, 7, 8, 9], [-1, 0, 1, 1, 0])
        adapter.prefill(p)
        before = adapter.forward_tree(tree).logits.clone()
        t._other_compiled_program()
        t._scribble()
        adapter.prefill(p)
        after = adapter.forward_tree(tree).logits.clone()
        torch.cuda.synchronize()
        diff = (after - before).abs().max().item()
        print(
            f"{sys.argv[1]} {model}: max |logits after - before| = {diff:.3g}  nan: {bool(after.isnan().any())}"
        )


if __name__ == "__main__":
    main()
