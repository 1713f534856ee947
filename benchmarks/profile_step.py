"""Kernel-time breakdown of one decode step (static shapes, eager launch) on the GPU.

python benchmarks/profile_step.py --model qwen25vl-7b --context 1000 --nodes 1
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import make_prompt  # noqa: E402
from random_models import BUILDERS  # noqa: E402

from mmspec.tree import DraftTree  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen25vl-7b")
    ap.add_argument("--context", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--fusion", default="none", help="fusion level (mmspec.fusion): none, norms or layers")
    ap.add_argument("--fused", action="store_true", help="same as --fusion norms (the first version's flag)")
    args = ap.parse_args()
    adapter = BUILDERS[args.model](execution="static", fusion="norms" if args.fused else args.fusion)
    p = make_prompt(adapter, args.context)
    adapter.prefill(p)
    tree = DraftTree(list(range(3, 3 + args.nodes)), [-1] + list(range(args.nodes - 1)))
    for _ in range(3):
        adapter.forward_tree(tree)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            adapter.forward_tree(tree)
        torch.cuda.synchronize()
    by_name: dict[str, list[float]] = defaultdict(list)
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            by_name[ev.name[:90]].append(
                ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
            )
    total = sum(sum(v) for v in by_name.values()) / 5
    count = sum(len(v) for v in by_name.values()) / 5
    print(
        f"{args.model} ctx {p.length} nodes {args.nodes}: {total / 1000:.3f} ms kernel time, {count:.0f} kernels/step"
    )
    for name, v in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:25]:
        print(f"{sum(v) / 5 / 1000:8.3f} ms {len(v) / 5:6.0f}x  {name}")


if __name__ == "__main__":
    main()
