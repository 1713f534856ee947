#!/usr/bin/env bash
# Issue 14, speed round 2: one GPU run (<= 8 minutes wall, model creation included) that measures,
# for random-weight Qwen2.5-VL-7B and LLaVA-1.5-7B in graph mode (bf16):
#   - baseline ms/token vs the bandwidth floor at each fusion level (mmspec.fusion: norms = per-module
#     compilation, layers = whole-layer compilation, the graph-mode default; QWEN_FUSION=none,norms,layers adds eager kernels) at ~1k
#     context, and at ~4.5k for the last level;
#   - a kernel-count/time profile of one decode step at each level (torch profiler, graph replays);
#   - Qwen: draft ms/round for eagle2, eagle3, vispec, msd, medusa (default trees) vs each one's own
#     floor (weight bytes a round reads, counted, / measured bandwidth), and the chain-oracle
#     speedup-vs-MAT table (k = 1..6);
#   - LLaVA: eagle2 and medusa drafts if time is left.
# Sections that would not fit are skipped and listed under "skipped" in the JSON. Expected wall time:
# ~7.5 minutes (install ~15 s, Qwen <= QWEN_S + tail, LLaVA <= LLAVA_S + tail, hard timeouts around both).
#
#   bash benchmarks/gpu_speed_round.sh          # from the repo root on the GPU machine; results in $OUT
#
# Writes bench_qwen/bench.json, bench_llava/bench.json and speed_round.log under $OUT (partial JSON is
# written after every row, so a timeout still leaves results); scratch caches go under $OUT/.scratch
# and are removed at the end. Budgets (seconds) can be changed: QWEN_S, LLAVA_S, TOTAL_S; also
# QWEN_FUSION/LLAVA_FUSION (levels), QWEN_DRAFTS (order matters for the budget), DRAFTS_RESERVE_S.
# Round 3 (benchmarks/RESULTS.md section 10) ran, after a default run for the norms rows:
#   QWEN_FUSION=layers QWEN_S=470 TOTAL_S=530 QWEN_DRAFTS=eagle2,eagle3,vispec,msd,medusa \
#     DRAFTS_RESERVE_S=80 bash benchmarks/gpu_speed_round.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mmspec_speed_round}
mkdir -p "$OUT"
LOG="$OUT/speed_round.log"
SCRATCH="$OUT/.scratch"
mkdir -p "$SCRATCH"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export MMSPEC_CACHE="$SCRATCH/mmspec" TORCHINDUCTOR_CACHE_DIR="$SCRATCH/inductor" TRITON_CACHE_DIR="$SCRATCH/triton"
QWEN_S=${QWEN_S:-300}
LLAVA_S=${LLAVA_S:-125}
TOTAL_S=${TOTAL_S:-445}  # both models together (LLaVA gets what Qwen left, at most LLAVA_S; <= 60 s skips it)
QWEN_DRAFTS=${QWEN_DRAFTS:-eagle2,vispec,msd,medusa,eagle3}
DRAFTS_RESERVE_S=${DRAFTS_RESERVE_S:-45}  # what Qwen's drafts leave to the oracle
# norms = per-module compilation, layers = whole-layer compilation (the graph-mode default); add "none" when time allows
QWEN_FUSION=${QWEN_FUSION:-norms,layers}
LLAVA_FUSION=${LLAVA_FUSION:-norms,layers}
START=$(date +%s)
stamp() { echo "== $(date -u +%T) (+$(($(date +%s) - START)) s) $*" | tee -a "$LOG"; }

stamp "install"
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$SCRATCH/install.log" 2>&1 || { cat "$SCRATCH/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$LOG"

# Qwen2.5-VL-7B: every fusion level, profile, drafts with floors, oracle chain k=1..6.
stamp "qwen25vl-7b (budget ${QWEN_S} s)"
timeout $((QWEN_S + 40)) python3 benchmarks/bench_gpu.py --models qwen25vl-7b --skip_hf --no_prepare \
  --sections baseline,profile,drafts,oracle --fusion $QWEN_FUSION --contexts 1000,4500 \
  --new_tokens 128 --draft_specs "$QWEN_DRAFTS" --draft_floor --drafts_reserve_s "$DRAFTS_RESERVE_S" \
  --oracle_k 1,2,3,4,5,6 --oracle_reruns 4 --time_budget_s "$QWEN_S" --out "$OUT/bench_qwen" 2>&1 \
  | grep -v "Loading weights" | tee -a "$LOG"
stamp "qwen25vl-7b done (rc ${PIPESTATUS[0]})"

# LLaVA-1.5-7B: fusion levels none and layers, profile, then two drafts if time is left.
LEFT=$((TOTAL_S - ($(date +%s) - START)))
[ "$LEFT" -lt "$LLAVA_S" ] && LLAVA_S=$LEFT
if [ "$LLAVA_S" -gt 60 ]; then
  stamp "llava15-7b (budget ${LLAVA_S} s)"
  timeout $((LLAVA_S + 25)) python3 benchmarks/bench_gpu.py --models llava15-7b --skip_hf --no_prepare \
    --sections baseline,profile,drafts --fusion $LLAVA_FUSION --contexts 1000,5000 --new_tokens 128 \
    --draft_specs eagle2,medusa --draft_floor --time_budget_s "$LLAVA_S" --out "$OUT/bench_llava" 2>&1 \
    | grep -v "Loading weights" | tee -a "$LOG"
  stamp "llava15-7b done (rc ${PIPESTATUS[0]})"
else
  stamp "llava15-7b skipped: ${LLAVA_S} s left"
fi

rm -rf "$SCRATCH"
stamp "done; results: $(ls "$OUT" | tr '\n' ' ')"
