#!/usr/bin/env bash
# Run the engine's lossless tests on a CUDA GPU in graph mode (issue 4's "done when").
# Needs the MMSpec question files: MMSPEC_SHARED_DATA=<folder with test/ and testmini/>.
# MMSPEC_TEST_FUSION=norms|layers picks the fusion level (default: graph mode's, layers).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
export HF_HUB_OFFLINE=1 MMSPEC_TEST_DEVICE=cuda MMSPEC_TEST_EXECUTION=graph
python3 -m pytest -q -p no:cacheprovider tests/test_gpu_graphs.py tests/test_engine.py tests/test_lossless.py tests/test_sampling.py "$@"
