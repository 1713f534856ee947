#!/usr/bin/env bash
# Round-2 GPU measurements in one detached run (the device runs one command for at most 10 minutes,
# so this starts itself in the background and later commands poll it).
#
#   bash benchmarks/gpu_round2.sh start      # install, then run everything below detached
#   bash benchmarks/gpu_round2.sh poll [S]   # wait up to S seconds (default 560), print progress
#   bash benchmarks/gpu_round2.sh collect    # copy the results archive and logs to $OUT
#
# Steps (each logs to $R/log and leaves its outputs in $R):
#   1. graph-capture safety test (tests/test_gpu_graphs.py: replays stay identical after another
#      compiled program ran in the process)
#   2. the proxy pipeline for qwen25vl and llava15 (benchmarks/proxy_pipeline.py, size S), for each
#      seed of SEEDS (default "0"; e.g. SEEDS="0 1 2" for the seed spread); PARALLEL=1 runs all of
#      them at once (a 7M-parameter build keeps an H200 ~20 % busy: launch-bound), SPREAD_METHODS
#      limits the methods of seeds other than 0, FIT_STEPS/FIT_SECONDS set each draft's equal step
#      budget and its time cap. SKIP_GRAPH_TEST=1 skips step 1.
set -uo pipefail
cd "$(dirname "$0")/.."
R=${MMSPEC_ROUND_DIR:-/tmp/mmspec_round2}
SIZE=${PROXY_SIZE:-S}
case "${1:-}" in
  start)
    mkdir -p "$R"
    python3 -m pip install -q --no-deps --no-build-isolation -e . >"$R/install.log" 2>&1 || { cat "$R/install.log"; exit 1; }
    setsid nohup bash "$0" run >"$R/log" 2>&1 < /dev/null &
    sleep 5; cat "$R/log"
    ;;
  run)
    export HF_HUB_OFFLINE=1 MMSPEC_CACHE="$R/cache" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    echo "== start $(date -u +%FT%TZ)"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    if [ "${SKIP_GRAPH_TEST:-0}" != 1 ]; then
      echo "== step 1: graph capture safety $(date -u +%T)"
      MMSPEC_TEST_DEVICE=cuda timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_graphs.py 2>&1 | tail -5
    fi
    run_one() {  # family seed: one pipeline, its log in $R/pipeline_<family>_<seed>.log
      local fam=$1 seed=$2 methods=${METHODS:-}
      if [ "$seed" != 0 ] && [ -n "${SPREAD_METHODS:-}" ]; then methods=$SPREAD_METHODS; fi
      python3 benchmarks/proxy_pipeline.py --family "$fam" --size "$SIZE" --seed "$seed" --out "$R/proxy_${fam}_$seed" \
        --build_time_budget "${BUILD_SECONDS:-150}" --build_eval_seconds "${EVAL_SECONDS:-60}" \
        --n_train "${N_TRAIN:-300}" --regen_max_new_tokens 384 --fit_steps "${FIT_STEPS:-4000}" \
        --fit_seconds "${FIT_SECONDS:-25}" ${methods:+--methods "$methods"} \
        --limit "${LIMIT:-6}" --copy_to "$R/results" >"$R/pipeline_${fam}_$seed.log" 2>&1
      echo "== pipeline $fam seed $seed finished rc=$? $(date -u +%T)"
      grep -v "Loading weights" "$R/pipeline_${fam}_$seed.log" | tail -n 25
      cp "$R/proxy_${fam}_$seed/target/manifest.json" "$R/results/${fam}_seed${seed}_target_manifest.json" 2>/dev/null
    }
    echo "== step 2: proxy pipelines (seeds ${SEEDS:-0}; parallel=${PARALLEL:-0}) $(date -u +%T)"
    mkdir -p "$R/results"
    for seed in ${SEEDS:-0}; do for fam in qwen25vl llava15; do
      if [ "${PARALLEL:-0}" = 1 ]; then OMP_NUM_THREADS=2 run_one "$fam" "$seed" & else run_one "$fam" "$seed"; fi
    done; done
    wait
    tar -czf "$R/results.tar.gz" -C "$R" results 2>/dev/null
    echo "== done $(date -u +%T)"
    ;;
  poll)
    limit=${2:-560}; waited=0
    while [ "$waited" -lt "$limit" ] && ! grep -q "^== done" "$R/log" 2>/dev/null; do sleep 10; waited=$((waited + 10)); done
    grep "^== " "$R/log"; for f in "$R"/pipeline_*.log; do [ -f "$f" ] && { echo "-- $f"; grep -v "Loading weights" "$f" | tail -n 4; }; done
    ;;
  collect)
    tar -czf "$R/results.tar.gz" -C "$R" results 2>/dev/null
    tar -czf "$OUT/logs.tar.gz" -C "$R" log $(cd "$R" && ls pipeline_*.log 2>/dev/null) 2>/dev/null
    cp "$R/results.tar.gz" "$OUT"/ 2>/dev/null; ls -la "$OUT"
    ;;
  *) echo "usage: $0 start|poll [seconds]|collect" >&2; exit 2 ;;
esac
