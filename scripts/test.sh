#!/usr/bin/env bash
# The project's test command (and CI's): set up, build, run every ctest test. CUDA tests
# (label `cuda`) report SKIPPED on machines without a GPU; scripts/gpu_check.sh runs them on one.
# Their twins on the CPU execution layer (label `simt`, tests/simt) run the hand-written kernels
# here, in every run; `ctest -L simt` runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${MTL_BUILD_DIR:-build}
cd "$build"
ctest --output-on-failure --timeout 900 -j"${MTL_JOBS:-$(nproc)}" "$@"
