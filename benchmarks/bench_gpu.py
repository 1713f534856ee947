"""GPU speed benchmarks of the engine (issue 4): decode vs the bandwidth floor, verification cost
per tree size, oracle speedup vs MAT, our PLD vs transformers' prompt lookup, host overhead.

    python benchmarks/bench_gpu.py --models qwen25vl-7b,llava15-7b --sections all --out $OUT

Issue 14 (speed round 2): ``--fusion none,norms,layers`` measures the baseline (and the ``profile``
section: kernels per decode step) at each fusion level of :mod:`mmspec.fusion` on one loaded model;
every other section runs at the last level listed. ``drafts`` also reports each method's own floor
(the weight bytes one round reads, counted, over the measured bandwidth). ``--time_budget_s`` skips
what no longer fits, so a run under a hard time limit still ends with its JSON written.

Random-weight real architectures (benchmarks/random_models.py), bf16, stop tokens disabled so
every turn generates exactly ``--new_tokens`` tokens. Results go to ``<out>/bench.json`` and a
Markdown report to ``<out>/bench.md`` (copied into benchmarks/RESULTS.md with date and command).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import BUILDERS, kv_bytes_per_token, weight_bytes_per_step  # noqa: E402

from mmspec.engine import Engine  # noqa: E402
from mmspec.methods.baseline import Baseline  # noqa: E402
from mmspec.methods.oracle import Oracle  # noqa: E402
from mmspec.methods.pld import PromptLookup  # noqa: E402
from mmspec.tree import DraftTree  # noqa: E402

FILLER = (
    "Describe every object in the picture, its colour, its position and how it relates to the others. "
    "Then explain what the scene suggests about the place and the time of day. "
)
KEY = ("bench", "s", 0)
VERIFY_SIZES = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128)  # the adapter's tree buckets up to 128


def event_times_ms(fn, reps: int) -> list[float]:
    """GPU time of each of ``reps`` calls of ``fn`` (CUDA events; one synchronisation at the end)."""
    events = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        events.append((s, e))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


def copy_bandwidth(device: str = "cuda") -> float:
    """Device-to-device copy, bytes read + written per second (median of 10)."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device=device)  # 1 GiB
    b = torch.empty_like(a)
    times = [ms / 1000 for ms in event_times_ms(partial(b.copy_, a), 12)]
    del a, b
    return 2 * (1 << 30) / statistics.median(times[2:])


def image(size=(896, 672)) -> Image.Image:
    img = Image.new("RGB", size, (40, 90, 150))
    d = ImageDraw.Draw(img)
    for i in range(12):
        d.rectangle([30 * i, 20 * i, 30 * i + 120, 20 * i + 90], fill=(20 * i, 200 - 10 * i, 90))
    return img


def make_prompt(adapter, context: int):
    """An image + text prompt of about ``context`` tokens."""
    text = "What is shown here? "
    while True:
        msgs = [
            {
                "role": "system",
                "content": [{"type": "text", "text": "A chat between a curious human and an AI."}],
            },
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
        ]
        p = adapter.encode(msgs, [image()])
        if p.length >= context:
            return p
        text += FILLER * max(1, (context - p.length) // 60)


def decode_ms(res) -> float:
    return 1000 * (res.wall_time_s - res.prefill_time_s) / (res.new_tokens - 1)


T0 = time.perf_counter()


def log(*parts) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s {time.strftime('%H:%M:%S')}]", *parts, flush=True)


class Budget:
    """A wall-clock deadline: sections that would start after it are skipped (and recorded)."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if not seconds else time.perf_counter() + seconds

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.perf_counter()

    def ok(self, label: str, need_s: float, out: dict) -> bool:
        if self.left() >= need_s:
            return True
        out.setdefault("skipped", []).append(label)
        log("skip", label, f"(needs ~{need_s:.0f} s, {max(self.left(), 0):.0f} s left)")
        return False


def profile_decode(adapter, p, reps: int = 5, top: int = 15) -> dict:
    """Kernels of one decode step (a one-node tree after the prompt), from the torch profiler over
    ``reps`` graph replays: how many, their summed time, and the top kernels by time."""
    from torch.profiler import ProfilerActivity, profile

    adapter.prefill(p)
    tree = DraftTree([3], [-1])
    for _ in range(3):
        adapter.forward_tree(tree)
    step_ms = statistics.median(event_times_ms(partial(adapter.forward_tree, tree), 10))
    torch.cuda.synchronize()
    cuda = torch.cuda.is_available()  # (CPU: a smoke test of this code, counting CPU ops)
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            adapter.forward_tree(tree)
        torch.cuda.synchronize()
    by_name: dict[str, list[float]] = defaultdict(list)
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    for ev in prof.events():
        if ev.device_type == kind:
            t = ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
            by_name[ev.name[:100]].append(t)
    total_us = sum(sum(v) for v in by_name.values()) / reps
    count = sum(len(v) for v in by_name.values()) / reps
    rows = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]
    return {"step_ms_events": step_ms, "kernel_ms": total_us / 1000, "kernels_per_step": count,
            "top": [{"ms": sum(v) / reps / 1000, "calls": len(v) / reps, "kernel": k} for k, v in rows]}  # fmt: skip


def _step_caches(obj, depth: int = 3) -> list:
    """Every StepCache a drafter (or a wrapper's inner drafter) holds."""
    from mmspec.graphs import StepCache

    found, seen = [], set()

    def walk(o, d):
        if id(o) in seen or d < 0:
            return
        seen.add(id(o))
        if isinstance(o, StepCache):
            found.append(o)
            return
        if isinstance(o, torch.nn.Module | torch.Tensor) or not hasattr(o, "__dict__"):
            return
        for v in vars(o).values():
            walk(v, d - 1)

    walk(obj, depth)
    return found


def draft_bytes_per_round(adapter, drafter, p, tokens: int = 12) -> dict:
    """Weight bytes one draft round reads (propose + the accepted-pairs append): forward hooks on
    every parameter-holding module the drafter calls (its network, the target's lm_head and
    embeddings; an embedding counts only its looked-up rows), over a few rounds run eagerly
    (the drafter's steps switched to static, ``torch.compile`` in force-eager stance)."""
    inner = getattr(drafter, "inner", drafter)
    mods = [m for net in (getattr(inner, "net", None),) if net is not None for m in net.modules()]
    mods += [adapter.lm_head_module, adapter.embed_tokens]
    counting = {"on": False, "bytes": 0, "rounds": 0}

    def hook(module, args, output):
        if not counting["on"]:
            return
        own = list(module.parameters(recurse=False))
        if isinstance(module, torch.nn.Embedding):
            counting["bytes"] += args[0].numel() * module.embedding_dim * module.weight.element_size()
        else:
            counting["bytes"] += sum(t.numel() * t.element_size() for t in own)

    handles = [
        m.register_forward_hook(hook) for m in dict.fromkeys(mods) if list(m.parameters(recurse=False))
    ]
    caches = _step_caches(drafter)
    modes = [c.mode for c in caches]
    propose, observe = drafter.propose, drafter.observe

    def counted(fn, is_round):
        def inner_fn(*a, **k):
            counting["on"] = True
            try:
                return fn(*a, **k)
            finally:
                counting["on"] = False
                counting["rounds"] += is_round

        return inner_fn

    try:
        for c in caches:
            c.mode = "static"
        drafter.propose, drafter.observe = counted(propose, 1), counted(observe, 0)
        with torch.compiler.set_stance("force_eager"):
            Engine(adapter, drafter).generate(p, tokens, key=KEY)
    finally:
        for c, m in zip(caches, modes):
            c.mode = m
        del drafter.propose, drafter.observe
        for h in handles:
            h.remove()
    rounds = max(counting["rounds"], 1)
    return {"bytes_per_round": counting["bytes"] / rounds, "rounds_counted": counting["rounds"]}


class RoundByRound(Baseline):
    """The baseline with one host round per forward (no chained decode): the host-gap comparison."""

    plain_decoding = False


def run_engine(adapter, drafter, p, n, reps=3):
    eng = Engine(adapter, drafter)
    eng.generate(p, n, key=KEY)  # warm-up (allocator, lazily captured graphs)
    runs = [eng.generate(p, n, key=KEY) for _ in range(reps)]
    return sorted(runs, key=decode_ms)[len(runs) // 2]


def oracle_reference(adapter, oracle, p, n, ref, rounds: int = 8) -> list[int]:
    """A reference the oracle reproduces under its own verification shapes.

    In bf16, batched verification rounds differently from one-token decoding, so with random
    weights (flat distributions, many near-ties) the oracle can leave the baseline's path; it then
    drafts nothing. Re-running with its own output as reference converges in a few rounds.
    """
    eng = Engine(adapter, oracle)
    for _ in range(rounds):
        oracle.references = {KEY: ref}
        out = eng.generate(p, n, key=KEY).token_ids
        if out == ref:
            break
        ref = out
    return ref


def hf_generate(adapter, p, n, **kw):
    """transformers' generate on the same model and prompt; returns (ids, ms/token of decode)."""
    model = adapter.model
    inputs = {
        "input_ids": p.input_ids.to(adapter.device),
        **{k: v.to(adapter.device) for k, v in p.model_inputs.items()},
    }
    gc = model.generation_config
    saved = gc.eos_token_id
    gc.eos_token_id = None  # fixed length, like our runs with stops disabled
    from mmspec import attention

    # transformers' own modules, uncompiled by us: its static-cache generate compiles the whole forward
    level = adapter.fusion
    adapter.set_fusion("none")
    attention.set_compile_boundary(False)
    try:

        def timed(m):
            torch.cuda.synchronize()
            t = time.perf_counter()
            out = model.generate(**inputs, do_sample=False, max_new_tokens=m, **kw)
            torch.cuda.synchronize()
            return out, time.perf_counter() - t

        timed(8)
        timed(n)  # warm-up (compilation for the static cache)
        _, t1 = timed(1)
        out, tn = timed(n)
    finally:
        gc.eos_token_id = saved
        adapter.set_fusion(level)
    return out[0, p.length :].tolist(), 1000 * (tn - t1) / (n - 1)


def bench_model(name: str, args, bw: float, save, budget: Budget | None = None) -> dict:
    budget = budget or Budget(None)
    levels = [lv for lv in args.fusion.split(",") if lv] if args.fusion else [None]
    t0 = time.perf_counter()
    adapter = BUILDERS[name](fusion=levels[0])
    adapter.stop_token_ids = frozenset({-1})
    out: dict = {"model": name, "execution": adapter.execution, "dtype": str(adapter.dtype),
                 "build_s": time.perf_counter() - t0}  # fmt: skip
    log(name, "built in", round(out["build_s"], 1), "s")
    wbytes, kvb = weight_bytes_per_step(adapter), kv_bytes_per_token(adapter)
    out["weight_gb"] = wbytes / 1e9
    n = args.new_tokens
    sections = set(args.sections.split(","))
    every = "all" in sections
    if not args.no_prepare:
        t0 = time.perf_counter()
        out["graphs"] = adapter.prepare(128)
        out["capture_s"] = time.perf_counter() - t0

    contexts = [int(c) for c in args.contexts.split(",")]
    prompts = {ctx: make_prompt(adapter, ctx) for ctx in contexts}
    out["context"] = {ctx: p.length for ctx, p in prompts.items()}
    if every or "baseline" in sections or "profile" in sections:
        rows, profiles = [], {}
        out["baseline"], out["profile"] = rows, profiles
        for i, level in enumerate(levels):
            level = adapter.set_fusion(level) if i else adapter.fusion
            for j, (ctx, p) in enumerate(prompts.items()):
                # longer contexts at the last level only (the one every later section uses), unless asked
                if j and i < len(levels) - 1 and not args.all_contexts:
                    continue
                need = 75 if j == 0 and level != "none" else 25  # the first row of a level compiles it
                if not (every or "baseline" in sections) or not budget.ok(
                    f"baseline {level} {ctx}", need, out
                ):
                    continue
                try:
                    t0 = time.perf_counter()
                    base = run_engine(adapter, Baseline(adapter), p, n)
                    mid_ctx = p.length + n // 2
                    floor = 1000 * (wbytes + kvb * mid_ctx) / bw
                    rows.append({"fusion": level, "context": p.length, "ours_ms": decode_ms(base), "floor_ms": floor,
                                 "ttft_ms": 1000 * base.prefill_time_s, "ratio_to_floor": decode_ms(base) / floor,
                                 "section_s": time.perf_counter() - t0})  # fmt: skip
                    if j == 0:  # what queuing forwards ahead of the host (chained decode) saves
                        slow = run_engine(adapter, RoundByRound(adapter), p, n)
                        rows[-1]["round_by_round_ms"] = decode_ms(slow)
                        rows[-1]["round_by_round_same_tokens"] = slow.token_ids == base.token_ids
                    log(name, rows[-1])
                    save(out)
                except Exception as exc:  # a level that fails on this machine: record it, keep the others
                    import traceback

                    traceback.print_exc()
                    out.setdefault("fusion_errors", {})[level] = repr(exc)[:500]
                    log(name, "fusion", level, "FAILED:", repr(exc)[:300])
                    good = [lv for lv in levels if lv and lv != level and lv not in out["fusion_errors"]]
                    adapter.set_fusion(good[-1] if good else "none")
                    break
            if level in out.get("fusion_errors", {}):
                continue
            if (every or "profile" in sections) and budget.ok(f"profile {level}", 15, out):
                try:
                    profiles[level] = pr = profile_decode(adapter, prompts[contexts[0]])
                except Exception as exc:  # a side figure: never lose the timings for it
                    profiles[level] = {"error": repr(exc)[:300]}
                    log(name, "profile", level, "failed:", repr(exc)[:300])
                    continue
                log(
                    name,
                    "profile",
                    level,
                    f"{pr['kernels_per_step']:.0f} kernels/step,",
                    f"{pr['kernel_ms']:.3f} ms kernel time, step {pr['step_ms_events']:.3f} ms (events)",
                )
                save(out)
        out["fusion"] = adapter.fusion  # every later section runs at this level
        # transformers last: its compiled static-cache generate (torch.compile CUDA graphs) has been
        # seen to corrupt later replays of our own graphs in the same process
        for key, kw in (("hf_dynamic_ms", {}), ("hf_static_ms", {"cache_implementation": "static"})):
            if args.skip_hf or (key == "hf_static_ms" and not args.hf_static):
                continue
            for row, p in zip(rows[-len(prompts) :], prompts.values()):
                _, row[key] = hf_generate(adapter, p, n, **kw)
                print(name, row, flush=True)
                save(out)

    working = [lv for lv in levels if lv is not None and lv not in out.get("fusion_errors", {})]
    if working and adapter.fusion != working[-1]:
        adapter.set_fusion(working[-1])  # every later section runs at the last (working) level listed
    out["fusion"] = adapter.fusion
    p = prompts[contexts[0]]
    if every or "drafts" in sections:  # before the oracle: a time budget keeps the drafts
        specs = args.draft_specs.split(",") if args.draft_specs else DRAFT_SPECS
        out["drafts"] = bench_drafts(
            adapter, p, n, name, specs, save, bw=bw, budget=budget, floor=args.draft_floor,
            reserve_s=args.drafts_reserve_s if (every or "oracle" in sections) else 0.0,
        )  # fmt: skip
        save(out)

    if every or "verify" in sections or "overhead" in sections:
        adapter.prefill(p)
        times = {}
        for size in VERIFY_SIZES:
            tree = DraftTree(list(range(3, 3 + size)), [-1] + [(i - 1) // 2 for i in range(1, size)])
            for _ in range(3):
                adapter.forward_tree(tree)
            times[size] = statistics.median(event_times_ms(partial(adapter.forward_tree, tree), 20))
        out["verify_ms"] = times
        out["verify_rel"] = {k: v / times[1] for k, v in times.items()}
        print(name, "verify", out["verify_rel"], flush=True)
        save(out)

    if every or "oracle" in sections or "overhead" in sections:
        base = run_engine(adapter, Baseline(adapter), p, n)
        ref = base.token_ids
    if every or "oracle" in sections:
        rows = []
        out["oracle"] = rows
        shapes = (("chain", range(1, 9)), ("tree60", (1, 2, 4, 6, 8)))
        if args.oracle_k:
            shapes = (("chain", [int(k) for k in args.oracle_k.split(",")]),)
        for shape, k_list in shapes:
            for k in k_list:
                if not budget.ok(f"oracle {shape} k={k}", 12, out):
                    continue
                o = Oracle(adapter, k=k, tree_nodes=60 if shape == "tree60" else 0)
                o.references = {KEY: oracle_reference(adapter, o, p, n, ref, rounds=args.oracle_reruns)}
                res = run_engine(adapter, o, p, n)
                # bf16: batched verification may round differently from one-token decoding and flip a
                # near-tie of the random weights; the oracle then stops drafting. Report, don't assert.
                agree = next((i for i, (a, b) in enumerate(zip(res.token_ids, ref)) if a != b), len(ref))
                mat = res.new_tokens / res.target_forwards
                sp = decode_ms(base) / decode_ms(res)
                e2e = base.wall_time_s / res.wall_time_s
                rows.append({"shape": shape, "k": k, "mat": mat, "speedup_decode": sp, "speedup_e2e": e2e,
                             "speedup_over_mat": sp / mat, "tokens_equal_to_baseline": agree, "ms_per_round": 1000 * (res.wall_time_s - res.prefill_time_s) / res.rounds})  # fmt: skip
                log(name, rows[-1])
                save(out)
        out["baseline_ref_ms"] = decode_ms(base)
        save(out)

    if every or "pld" in sections:
        ours = run_engine(adapter, PromptLookup(adapter), p, n)
        hf_ids, hf_ms = hf_generate(adapter, p, n, prompt_lookup_num_tokens=10)
        out["pld"] = {"ours_ms": decode_ms(ours), "hf_ms": hf_ms, "ratio": hf_ms / decode_ms(ours),
                      "identical": hf_ids == ours.token_ids, "ours_mat": ours.new_tokens / ours.target_forwards}  # fmt: skip
        print(name, "pld", out["pld"], flush=True)
        save(out)

    if "pld32" in sections:  # identical-output check where float32 leaves no near-ties to flip
        out["pld_float32"] = compare_pld(BUILDERS[name](dtype=torch.float32), args)
        save(out)

    if every or "overhead" in sections:
        rows = {}
        for label, drafter in (("baseline", Baseline(adapter)), ("pld", PromptLookup(adapter)),
                               ("oracle_k4", Oracle(adapter, k=4))):  # fmt: skip
            if isinstance(drafter, Oracle):
                drafter.references = {KEY: ref}
            res = run_engine(adapter, drafter, p, n)
            per_round = 1000 * (res.wall_time_s - res.prefill_time_s) / res.rounds
            gpu = statistics.mean(times[_bucket(s)] for s in res.tree_size_per_round)
            rows[label] = {"ms_per_round": per_round, "gpu_ms_per_round": gpu, "host_ms_per_round": per_round - gpu,
                           "draft_ms_per_round": 1000 * res.draft_time_s / res.rounds}  # fmt: skip
        out["overhead"] = rows
        print(name, "overhead", rows, flush=True)
    del adapter
    torch.cuda.empty_cache()
    return out


DRAFT_SPECS = ("medusa", "eagle", "eagle2", "eagle3", "msd", "vispec", "vispec_vskip", "msd_vskip", "sam_vskip",
               "vispec_vskip:noskip", "msd_vskip:noskip", "sam_vskip:noskip")  # fmt: skip


def bench_drafts(
    adapter, p, n, name, specs=DRAFT_SPECS, save=None, bw=None, budget=None, floor=False, reserve_s=0.0
) -> list[dict]:
    """Issue 5: every draft-model method with a random (seeded) draft, graph mode, per-round costs.

    Random drafts are almost never accepted, so MAT is ~1 and these runs measure cost, not speedup:
    draft time and verify time per round (CUDA events around the propose and verify calls)."""
    from mmspec.methods import get_spec

    if any(s.endswith("_vskip") for s in specs):
        adapter.enable_query_tap()  # before any capture: enabling it later re-captures every step
    base = run_engine(adapter, Baseline(adapter), p, n)
    rows = [{"method": "baseline", "ms_per_token": decode_ms(base), "mat": 1.0, "draft_ms_per_round": 0.0,
             "verify_ms_per_round": 1000 * base.verify_time_s / base.rounds}]  # fmt: skip
    budget = budget or Budget(None)
    for label in specs:
        if not budget.ok(f"drafts {label}", 30 + reserve_s, {"skipped": []}):
            rows.append({"method": label, "skipped": "time budget"})
            continue
        # "<spec>:noskip" runs a ViSkip variant with the gate measured but never firing
        spec, _, variant = label.partition(":")
        kwargs = {} if spec == "sam_vskip" else {"checkpoint": "random"}
        if variant == "noskip":
            kwargs["visual_attn_threshold"] = 1.01
        t0 = time.perf_counter()
        drafter = get_spec(spec)(adapter, **kwargs)
        build_s = time.perf_counter() - t0
        adapter.prepare(drafter.max_tree_size(), drafter.capture_verify)
        graphs = drafter.prepare()
        res = run_engine(adapter, drafter, p, n)
        row = {"method": label, "ms_per_token": decode_ms(res), "mat": res.new_tokens / res.target_forwards,
               "rounds": res.rounds, "skipped_rounds": res.skipped_rounds,
               "tree_size": statistics.mean(res.tree_size_per_round),
               "draft_ms_per_round": 1000 * res.draft_time_s / res.rounds,
               "verify_ms_per_round": 1000 * res.verify_time_s / res.rounds,
               "ms_per_round": 1000 * (res.wall_time_s - res.prefill_time_s) / res.rounds,
               "draft_graphs": graphs, "draft_capture_s": drafter.capture_time_s, "build_s": build_s}  # fmt: skip
        if floor and bw:
            try:
                counted = draft_bytes_per_round(adapter, drafter, p)
                row.update(counted, draft_floor_ms=1000 * counted["bytes_per_round"] / bw)
                row["draft_ratio_to_floor"] = row["draft_ms_per_round"] / row["draft_floor_ms"]
            except Exception as exc:  # the floor is a side figure: never lose the timing row for it
                row["draft_floor_error"] = repr(exc)[:300]
        rows.append(row)
        log(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        if save is not None:
            save({"drafts": rows})
        del drafter
        torch.cuda.empty_cache()
    return rows


def compare_pld(adapter, args) -> dict:
    adapter.stop_token_ids = frozenset({-1})
    p = make_prompt(adapter, 1000)
    ours = run_engine(adapter, PromptLookup(adapter), p, args.new_tokens)
    hf_ids, hf_ms = hf_generate(adapter, p, args.new_tokens, prompt_lookup_num_tokens=10)
    row = {"ours_ms": decode_ms(ours), "hf_ms": hf_ms, "ratio": hf_ms / decode_ms(ours),
           "identical": hf_ids == ours.token_ids, "ours_mat": ours.new_tokens / ours.target_forwards}  # fmt: skip
    print("pld float32", row, flush=True)
    return row


def _bucket(n: int) -> int:
    return next(b for b in VERIFY_SIZES if b >= n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="qwen25vl-7b,llava15-7b")
    ap.add_argument("--sections", default="all")
    ap.add_argument("--new_tokens", type=int, default=256)
    ap.add_argument("--hf_static", action="store_true")
    ap.add_argument("--skip_hf", action="store_true")
    ap.add_argument("--draft_specs", default="", help="comma list for --sections drafts (default: all)")
    ap.add_argument(
        "--draft_floor", action="store_true", help="drafts: count each round's weight bytes (its floor)"
    )
    ap.add_argument(
        "--fusion",
        default="",
        help="comma list of fusion levels (none,norms,layers); the baseline "
        "and profile sections run at each, everything else at the last (default: the adapter's)",
    )
    ap.add_argument("--contexts", default="1000,4000", help="prompt lengths (tokens) of the baseline section")
    ap.add_argument(
        "--all_contexts",
        action="store_true",
        help="with --fusion: every context at every level (default: last)",
    )
    ap.add_argument(
        "--drafts_reserve_s", type=float, default=45, help="budget the drafts leave to the oracle"
    )
    ap.add_argument("--oracle_k", default="", help="oracle: only chains of these k (e.g. 1,2,3,4,5,6)")
    ap.add_argument(
        "--oracle_reruns", type=int, default=8, help="oracle: fixed-point reruns of the reference"
    )
    ap.add_argument(
        "--no_prepare", action="store_true", help="capture graphs lazily (only those a section uses)"
    )
    ap.add_argument(
        "--time_budget_s", type=float, default=0, help="skip sections that would start after this"
    )
    ap.add_argument(
        "--model_share", default="", help="fractions of the remaining budget per model, e.g. 0.6,1"
    )
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bw = copy_bandwidth()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "copy_bandwidth_tb_s": bw / 1e12,
              "args": vars(args), "models": []}  # fmt: skip
    import transformers

    result["transformers"] = transformers.__version__
    log("copy bandwidth TB/s", bw / 1e12)
    total = Budget(args.time_budget_s or None)
    names = args.models.split(",")
    shares = [float(x) for x in args.model_share.split(",")] if args.model_share else []
    for i, name in enumerate(names):
        entry: dict = {}
        result["models"].append(entry)

        def save(partial: dict, entry=entry) -> None:
            entry.update(partial)
            (out / "bench.json").write_text(json.dumps(result, indent=2, default=str))

        share = shares[i] if i < len(shares) else 1.0 / (len(names) - i)
        budget = Budget(total.left() * share if total.deadline is not None else None)
        log("==", name, f"budget {budget.left():.0f} s" if budget.deadline else "")
        try:
            save(bench_model(name, args, bw, save, budget))
        except Exception as exc:  # keep what the other model measures
            import traceback

            traceback.print_exc()
            save({"model": name, "error": repr(exc)[:500]})
        torch.cuda.empty_cache()
    log("done")


if __name__ == "__main__":
    main()
