#!/usr/bin/env bash
# Builds mtl on a machine with a GPU and runs every `cuda`-labelled test and the kernel
# benchmarks, printing a short table last. Meant for the device tool's machine (nvcc, CMake,
# ninja and PyTorch, but no Debian packages and no network):
#   here:   scripts/pack_gpu_deps.sh            (fills .deps/ with headers and small libraries)
#   there:  scripts/gpu_check.sh [build|test|bench|all]   with .deps carried
# Dependencies there: header-only ones and yaml-cpp/benchmark from .deps; cuDNN from the Python
# wheel nvidia-cudnn-cu13 beside PyTorch (or CUDNN_ROOT); cuBLAS from the CUDA toolkit; the CPU
# oracle uses the built-in GEMM instead of OpenBLAS. Outputs go to ${OUT:-build-gpu/out}.
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:-all}
build=${MTL_GPU_BUILD:-build-gpu}
out=${OUT:-$build/out}
mkdir -p "$out"
deps=$(pwd)/.deps

find_cudnn() {
  [ -n "${CUDNN_ROOT:-}" ] && { echo "$CUDNN_ROOT"; return; }
  [ -f /usr/local/cuda/include/cudnn.h ] && { echo /usr/local/cuda; return; }
  local py d
  for py in python3 /opt/torch/.venv/bin/python3; do
    d=$($py -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null) && break
  done
  [ -n "${d:-}" ] || return 1
  # The wheel ships only versioned libraries: give CMake a prefix with an unversioned name.
  local p=/tmp/mtl-cudnn
  mkdir -p $p/lib
  ln -sfn "$d/include" $p/include
  for f in "$d"/lib/libcudnn*.so.*; do ln -sf "$f" $p/lib/; done
  ln -sf "$(ls "$d"/lib/libcudnn.so.* | head -1)" $p/lib/libcudnn.so
  echo $p
}

do_build() {
  [ -d "$deps" ] || { echo "gpu_check: .deps is missing: run scripts/pack_gpu_deps.sh on the dev machine and carry .deps" >&2; exit 1; }
  local cudnn
  cudnn=$(find_cudnn) || { echo "gpu_check: cuDNN not found (set CUDNN_ROOT)" >&2; exit 1; }
  echo "gpu_check: cuDNN from $cudnn"
  export LD_LIBRARY_PATH="$cudnn/lib:$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES="${MTL_CUDA_ARCH:-90}" -DMTL_USE_OPENBLAS=OFF -DMTL_DEPS_PREFIX="$deps" \
    -DCUDNN_ROOT="$cudnn" \
    -Ddoctest_DIR="$deps/lib/cmake/doctest" \
    -Dbenchmark_DIR="$deps/lib/x86_64-linux-gnu/cmake/benchmark" \
    -Dyaml-cpp_DIR="$deps/lib/x86_64-linux-gnu/cmake/yaml-cpp" \
    -Dnlohmann_json_DIR="$deps/share/cmake/nlohmann_json" \
    -DCLI11_DIR="$deps/share/cmake/CLI11" 2>&1 | tail -3
  cmake --build "$build" -j"$(nproc)" 2>&1 | tail -20
}

do_test() {
  export LD_LIBRARY_PATH="/tmp/mtl-cudnn/lib:$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$out/device.txt"
  (cd "$build" && ctest -L cuda --output-on-failure --timeout 600 -j4 2>&1) | tee "$out/ctest_cuda.txt" | tail -60
}

do_bench() {
  export LD_LIBRARY_PATH="/tmp/mtl-cudnn/lib:$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" --benchmark_counters_tabular=true --benchmark_format=console 2>&1 | tee "$out/$(basename "$b").txt" | grep -v '^\*\*\*'
  done
  for s in bench/reference/*.py; do
    [ -f "$s" ] || continue
    echo "== $s (PyTorch)"
    PYTHONUNBUFFERED=1 python3 "$s" 2>&1 | tee "$out/$(basename "$s" .py).txt"
  done
}

summary() {
  echo
  echo "================ gpu_check summary ================"
  cat "$out/device.txt" 2>/dev/null
  grep -E "tests passed|tests failed|Total Test time" "$out/ctest_cuda.txt" 2>/dev/null
  grep -E "Failed|\*\*\*Exception|Not Run" "$out/ctest_cuda.txt" 2>/dev/null | head -20
  for f in "$out"/bench_*.txt; do
    [ -f "$f" ] || continue
    echo "-- $(basename "$f" .txt)"
    grep -E "bytes_per_second|/s" "$f" | awk '{print $1, $(NF)}' | head -30
  done
}

case "$phase" in
  build) do_build ;;
  test) do_test; summary ;;
  bench) do_bench; summary ;;
  all) do_build && do_test && do_bench; summary ;;
  *) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac
