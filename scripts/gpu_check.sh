#!/usr/bin/env bash
# Builds mtl on a machine with a GPU and checks it there, in stages sized for the device tool's
# machine (one H200, 16 cores; nvcc, CMake, ninja and PyTorch with the NVIDIA wheels, but no
# Debian packages and no network; at most 10 minutes a command, 15 a session):
#   scripts/gpu_check.sh verify        at most 6 min, build included: the test binaries that hold
#                                      cuda cases, `ctest -L cuda` with CUDA_LAUNCH_BLOCKING=1,
#                                      then compute-sanitizer memcheck and racecheck on the
#                                      GroupNorm, loss and metrics tests (real-shape cases left out)
#   scripts/gpu_check.sh bench         at most 6 min: the kernel benchmarks (short minimum time),
#                                      the train-step benchmark and the PyTorch peers in
#                                      bench/reference, in one call
#   scripts/gpu_check.sh all           both, one after the other (over one device call's limit)
#   scripts/gpu_check.sh --build-only  every target, then starts every executable; without a GPU
#                                      every cuda test must start and report SKIPPED
# Each stage prints a short table last; with MTL_GPU_LOG_DIR set it writes its whole log there
# (<stage>.log) and the table (<stage>_table.txt). The exit status is 0 only if every step passed.
#
# Before the first call, here: scripts/pack_gpu_deps.sh, then carry .deps (README.md, "On a GPU").
# There: nvcc and cuBLAS from the CUDA toolkit (/usr/local/cuda, or nvcc on PATH); cuDNN from
# CUDNN_ROOT, the toolkit, or else the nvidia-cudnn-cu13 wheel beside PyTorch, whose real library
# folders (with cuBLAS-Lt, NVRTC and NCCL's) go on LD_LIBRARY_PATH so that the wheels' $ORIGIN
# RUNPATHs resolve; yaml-cpp, Google Benchmark and the header-only libraries from .deps. The CPU
# oracle uses the built-in GEMM (no OpenBLAS there).
# Variables: MTL_GPU_BUILD (build folder, default build-gpu), MTL_CUDA_ARCH (default 90),
# MTL_JOBS (default: all cores), MTL_GPU_BUDGET_S (seconds per stage after which the remaining
# steps are not started; default 340 for verify and bench, none for --build-only), MTL_BENCH_COMPILE=1 (esanet_torch.py also times
# torch.compile, which takes minutes), CUDNN_ROOT.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

stage=${1:-}
case "$stage" in
  verify | bench | all | --build-only) ;;
  *) echo "usage: $0 verify|bench|all|--build-only" >&2; exit 2 ;;
esac
name=${stage#--}
build=${MTL_GPU_BUILD:-build-gpu}
deps=$root/.deps
jobs=${MTL_JOBS:-$(nproc)}
# The device call's limits bound verify and bench; --build-only (the rehearsal on 2 cores) has none.
budget=${MTL_GPU_BUDGET_S:-340}
[ "$name" = build-only ] && budget=${MTL_GPU_BUDGET_S:-86400}
work=$build/gpu_check
mkdir -p "$work"
if [ -n "${MTL_GPU_LOG_DIR:-}" ]; then
  mkdir -p "$MTL_GPU_LOG_DIR"
  log=$MTL_GPU_LOG_DIR/$name.log
  table_file=$MTL_GPU_LOG_DIR/${name}_table.txt
else
  log=$work/$name.log
  table_file=$work/${name}_table.txt
fi
: > "$log"

say() { printf '%s\n' "$*" | tee -a "$log"; }
die() { say "gpu_check: error: $*"; exit 1; }

table=()
failed=0
row() { table+=("$(printf '%-44s %-8s %5ss  %s' "$1" "$2" "$3" "${4:-}")"); }

# run_step LABEL CAP_S CMD...: runs CMD with its output in $step_out and the log, for at most
# CAP_S seconds and never past the stage's budget. Sets step_rc (124: out of time) and step_s.
nstep=0
stage_start=$SECONDS
run_step() {
  local label=$1 cap=$2
  shift 2
  local left=$((budget - (SECONDS - stage_start)))
  step_out=$work/step$((++nstep)).txt
  step_s=0
  if [ "$left" -lt 10 ]; then
    step_rc=125
    : > "$step_out"
    say "-- $label: not started, the stage's ${budget}s are spent"
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  printf '\n==== %s (at most %ss): %s\n' "$label" "$cap" "$*" >> "$log"
  local t0=$SECONDS
  timeout --kill-after=10 "$cap" "$@" > "$step_out" 2>&1
  step_rc=$?
  step_s=$((SECONDS - t0))
  cat "$step_out" >> "$log"
  say "-- $label: exit $step_rc after ${step_s}s"
  if [ "$step_rc" -ne 0 ]; then
    echo "   last lines:" && tail -n 25 "$step_out" | sed 's/^/   | /'
  fi
}
# A row for the step just run: ok, FAIL, TIMEOUT or NOT RUN.
step_row() {
  local label=$1 detail=${2:-}
  case "$step_rc" in
    0) row "$label" ok "$step_s" "$detail" ;;
    124 | 137) row "$label" TIMEOUT "$step_s" "$detail"; failed=1 ;;
    125) row "$label" "NOT RUN" 0 "out of time"; failed=1 ;;
    *) row "$label" FAIL "$step_s" "$detail"; failed=1 ;;
  esac
}

# ---- where the toolkit, cuDNN and the carried libraries are ----------------------------------
[ -d "$deps/lib" ] || die ".deps is missing: run scripts/pack_gpu_deps.sh on the dev machine and carry .deps"
[ -d /opt/torch/.venv/bin ] && PATH=$PATH:/opt/torch/.venv/bin
command -v cmake > /dev/null || die "cmake not found on PATH"
command -v ninja > /dev/null || die "ninja not found on PATH"
nvcc=/usr/local/cuda/bin/nvcc
[ -x "$nvcc" ] || nvcc=$(command -v nvcc) || die "nvcc not found in /usr/local/cuda/bin or on PATH"
cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
[ -f "$cuda_root/include/cublas_v2.h" ] || die "cuBLAS (include/cublas_v2.h) is not in the CUDA toolkit at $cuda_root"

# The folder of an installed Python package. __path__, not __file__: the nvidia-* wheels are
# namespace packages without __init__.py, whose __file__ is None.
package_dir() {
  local py
  for py in python3 /opt/torch/.venv/bin/python3; do
    command -v "$py" > /dev/null || continue
    "$py" -c 'import importlib, sys; print(list(importlib.import_module(sys.argv[1]).__path__)[0])' "$1" \
      2> /dev/null && return 0
  done
  return 1
}

lib_dirs=()
if [ -n "${CUDNN_ROOT:-}" ]; then
  cudnn=$CUDNN_ROOT
elif [ -f "$cuda_root/include/cudnn.h" ]; then
  cudnn=$cuda_root
elif cudnn=$(package_dir nvidia.cudnn); then
  # The wheel's libraries find cuBLAS-Lt and NVRTC through $ORIGIN/../../{cublas,cuda_nvrtc,cu13}/lib:
  # use the real folders, never links to them elsewhere.
  nvidia=$(dirname "$cudnn")
  for sub in cudnn cu13 cublas cuda_nvrtc nccl; do
    [ -d "$nvidia/$sub/lib" ] && lib_dirs+=("$nvidia/$sub/lib")
  done
else
  die "cuDNN not found: not in the toolkit at $cuda_root, no nvidia-cudnn-cu13 wheel for python3; set CUDNN_ROOT"
fi
[ -f "$cudnn/include/cudnn.h" ] || die "cuDNN at $cudnn has no include/cudnn.h"
cudnn_lib=""
for f in "$cudnn"/lib/libcudnn.so "$cudnn"/lib64/libcudnn.so "$cudnn"/lib/libcudnn.so.[0-9]* "$cudnn"/lib64/libcudnn.so.[0-9]*; do
  [ -f "$f" ] && { cudnn_lib=$f; break; }
done
[ -n "$cudnn_lib" ] || die "cuDNN at $cudnn has no lib/libcudnn.so*"
[ ${#lib_dirs[@]} -eq 0 ] && lib_dirs=("$(dirname "$cudnn_lib")")
lib_dirs+=("$deps/lib/x86_64-linux-gnu")
# PyTorch loads its own wheels' libraries; it runs with the environment it came with.
torch_ld_path=${LD_LIBRARY_PATH:-}
LD_LIBRARY_PATH=$(IFS=:; echo "${lib_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH

# nvidia-smi names the GPU; PyTorch is asked where nvidia-smi is missing.
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2> /dev/null) || gpu=""
[ -n "$gpu" ] || gpu=$(env LD_LIBRARY_PATH="$torch_ld_path" python3 -c \
  'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2> /dev/null) || gpu=""
if [ -n "$gpu" ]; then
  have_gpu=1
else
  have_gpu=0
  gpu="none visible (nvidia-smi, PyTorch)"
fi
say "gpu_check $name, $(date -u '+%Y-%m-%d %H:%M UTC') on ${HOSTNAME:-?}, $jobs jobs"
say "  GPU:     $gpu"
say "  nvcc:    $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*'))"
say "  cmake:   $(command -v cmake) ($(cmake --version | head -1)), ninja $(ninja --version), $(c++ --version | head -1)"
say "  cuDNN:   $cudnn_lib"
say "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if [ "$name" != build-only ] && [ "$have_gpu" -eq 0 ]; then
  die "$name needs a GPU and neither nvidia-smi nor PyTorch sees one (without a GPU, use --build-only)"
fi

# ---- steps ------------------------------------------------------------------------------------
configure() {
  run_step configure 180 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${MTL_CUDA_ARCH:-90}" \
    -DMTL_USE_OPENBLAS=OFF -DMTL_DEPS_PREFIX="$deps" \
    -DCUDNN_INCLUDE_DIR="$cudnn/include" -DCUDNN_LIBRARY="$cudnn_lib" \
    -Ddoctest_DIR="$deps/lib/cmake/doctest" \
    -Dbenchmark_DIR="$deps/lib/x86_64-linux-gnu/cmake/benchmark" \
    -Dyaml-cpp_DIR="$deps/lib/x86_64-linux-gnu/cmake/yaml-cpp" \
    -Dnlohmann_json_DIR="$deps/share/cmake/nlohmann_json" \
    -DCLI11_DIR="$deps/share/cmake/CLI11"
  step_row "configure (sm_${MTL_CUDA_ARCH:-90})"
}

# build LABEL [TARGET...]: all targets when none is named.
build_targets() {
  local label=$1
  shift
  local args=()
  for t in "$@"; do args+=(--target "$t"); done
  run_step "build $label" "$budget" cmake --build "$build" -j"$jobs" "${args[@]}"
  step_row "build $label" "$(grep -c '^\[' "$step_out") ninja steps"
}

# The test binaries that hold cuda cases.
cuda_test_targets() { grep -l 'TEST_SUITE("cuda")' tests/test_*.cpp | xargs -n1 basename | sed 's/\.cpp$//'; }

# ctest's verdicts in the step just run: sets n_pass, n_fail, n_skip and lists failures.
ctest_counts() {
  n_pass=$(grep -cE 'Test +#[0-9]+: .* Passed' "$step_out")
  n_skip=$(grep -cE '\*\*\*Skipped' "$step_out")
  n_fail=$(grep -cE '\*\*\*(Failed|Timeout|Exception|Not Run)' "$step_out")
  grep -E '\*\*\*(Failed|Timeout|Exception|Not Run)' "$step_out" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: /     failed: /; s/ \.+.*//' |
    head -n 12 >> "$work/failures.txt"
}

# ctest_cuda LABEL CPU_THREADS ARGS...: the cuda tests selected by ARGS, which must all pass (none
# skipped), each with CPU_THREADS OpenMP threads for its CPU reference.
ctest_cuda() {
  local label=$1 threads=$2
  shift 2
  : > "$work/failures.txt"
  run_step "$label" 300 env CUDA_LAUNCH_BLOCKING=1 OMP_NUM_THREADS="$threads" \
    ctest --test-dir "$build" -L cuda --output-on-failure "$@"
  ctest_counts
  local why=""
  [ "$n_skip" -gt 0 ] && why=" (a skip here: the CUDA runtime saw no device)"
  [ "$step_rc" -eq 0 ] && [ "$n_skip" -gt 0 ] && step_rc=1
  [ "$step_rc" -eq 0 ] && [ "$n_pass" -eq 0 ] && step_rc=1
  step_row "$label" "$n_pass passed, $n_fail failed, $n_skip skipped$why"
  while IFS= read -r l; do table+=("$l"); done < "$work/failures.txt"
}

find_sanitizer() {
  local s
  for s in "$(command -v compute-sanitizer)" "$cuda_root/bin/compute-sanitizer" \
    "$cuda_root/compute-sanitizer/compute-sanitizer" /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -n "$s" ] && [ -x "$s" ] && { echo "$s"; return 0; }
  done
  return 1
}

# sanitize TOOL BINARY: the binary's cuda cases except the real shapes under compute-sanitizer.
sanitize() {
  local tool=$1 bin=$2 extra=()
  [ "$tool" = memcheck ] && extra=(env MTL_CUDA_NO_CACHE=1)  # exact allocations: overruns are seen
  run_step "$tool $bin" 120 "${extra[@]}" "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
    "$build/tests/$bin" --test-suite=cuda '--test-case-exclude=cuda real shapes*'
  local summary
  summary=$(grep -oE 'ERROR SUMMARY: [0-9]+ errors?|RACECHECK SUMMARY: .*' "$step_out" | tail -1)
  [ "$step_rc" -eq 99 ] && summary="$summary (sanitizer errors)"
  step_row "$tool $bin" "${summary:-no summary}"
}

verify() {
  configure
  [ "$step_rc" -eq 0 ] || return
  mapfile -t targets < <(cuda_test_targets)
  build_targets "(${#targets[@]} test binaries)" "${targets[@]}"
  [ "$step_rc" -eq 0 ] || return
  # The small cases side by side (two CPU threads each), then the real shapes one at a time with
  # every core for their CPU references.
  ctest_cuda "ctest -L cuda (small)" 2 -E 'cuda real shapes' -j8 --timeout 120
  ctest_cuda "ctest -L cuda (real shapes)" "$jobs" -R 'cuda real shapes' --timeout 240
  if ! sanitizer=$(find_sanitizer); then
    row "compute-sanitizer" FAIL 0 "not found (PATH, $cuda_root)"
    failed=1
    return
  fi
  for tool in memcheck racecheck; do
    for bin in test_group_norm test_cross_entropy test_depth_loss test_metrics; do
      sanitize "$tool" "$bin"
    done
  done
}

# The benchmarks' CSV as table rows: name, time, and GB/s or images/s.
bench_rows() {
  python3 - "$1" << 'EOF'
import csv, io, sys
text = open(sys.argv[1]).read()
start = text.find("name,iterations")
for r in csv.DictReader(io.StringIO(text[start:])) if start >= 0 else []:
    if r.get("error_occurred") == "true":
        print(f"     {r['name']:<44} error: {r.get('error_message', '')}")
        continue
    rate = ""
    if r.get("bytes_per_second"):
        rate = f"{float(r['bytes_per_second']) / 1e9:9.1f} GB/s"
    elif r.get("images/s"):
        rate = f"{float(r['images/s']):9.1f} images/s"
    print(f"     {r['name']:<44} {float(r['real_time']):10.3f} {r['time_unit']:<3} {rate}")
EOF
}

bench() {
  configure
  [ "$step_rc" -eq 0 ] || return
  build_targets "(benchmarks)" bench_copy bench_group_norm bench_loss bench_train_step
  [ "$step_rc" -eq 0 ] || return
  local b filter
  for b in bench_copy bench_group_norm bench_loss bench_train_step; do
    filter=.
    [ "$b" = bench_train_step ] && filter=CUDA
    rm -f "$work/$b.csv"
    run_step "$b" 150 "$build/bench/$b" --benchmark_min_time=0.1 --benchmark_filter="$filter" \
      --benchmark_out="$work/$b.csv" --benchmark_out_format=csv
    local rows=()
    [ -f "$work/$b.csv" ] && mapfile -t rows < <(bench_rows "$work/$b.csv")
    # A case that reports an error (no device, a CUDA error) fails the step.
    local errors
    errors=$(printf '%s\n' "${rows[@]}" | grep -c ' error: ')
    [ "$step_rc" -eq 0 ] && [ "$errors" -gt 0 ] && step_rc=1
    step_row "$b" "${#rows[@]} cases, $errors with errors"
    table+=("${rows[@]}")
  done
  local s args
  for s in group_norm_torch loss_torch esanet_torch; do
    case "$s" in
      group_norm_torch) args=(--iters 50 --warmup 10) ;;
      loss_torch) args=(--iters 20) ;;
      esanet_torch) args=(--iters 10); [ -n "${MTL_BENCH_COMPILE:-}" ] || args+=(--no-compile) ;;
    esac
    run_step "$s.py (PyTorch)" 150 env LD_LIBRARY_PATH="$torch_ld_path" PYTHONUNBUFFERED=1 \
      python3 "bench/reference/$s.py" "${args[@]}"
    step_row "$s.py (PyTorch)"
    while IFS= read -r l; do table+=("     $l"); done < <(grep -v '^\s*$' "$step_out" | tail -n 14)
  done
}

build_only() {
  configure
  [ "$step_rc" -eq 0 ] || return
  build_targets "(every target)"
  [ "$step_rc" -eq 0 ] || return
  # Every executable starts: its libraries (cuDNN, cuBLAS, yaml-cpp, benchmark) are found.
  local b
  for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    run_step "start $(basename "$b")" 60 "$b" --benchmark_list_tests
    step_row "start $(basename "$b")" "$(grep -c . "$step_out") benchmarks listed"
  done
  for b in "$build"/apps/mtl_*; do
    [ -x "$b" ] || continue
    run_step "start $(basename "$b")" 60 "$b" --help
    step_row "start $(basename "$b")"
  done
  if [ "$have_gpu" -eq 0 ]; then
    : > "$work/failures.txt"
    run_step "start the cuda tests (no GPU)" 600 ctest --test-dir "$build" -L cuda -j"$jobs" --timeout 120
    ctest_counts
    local total=$((n_pass + n_fail + n_skip))
    # Without a GPU every case must start and report SKIPPED: a pass would mean the case never
    # asked for the device, a failure that the binary could not start or run its prologue.
    if [ "$step_rc" -eq 0 ] && { [ "$total" -eq 0 ] || [ "$n_skip" -ne "$total" ] ||
      ! grep -q 'no CUDA device' "$build/Testing/Temporary/LastTest.log"; }; then
      step_rc=1
    fi
    step_row "start the cuda tests (no GPU)" "$total started: $n_skip SKIPPED, $n_pass passed, $n_fail failed"
    while IFS= read -r l; do table+=("$l"); done < "$work/failures.txt"
  fi
}

case "$name" in
  verify) verify ;;
  bench) bench ;;
  all) verify; stage_start=$SECONDS; bench ;;
  build-only) build_only ;;
esac

{
  echo
  echo "================ gpu_check $name: $gpu ================"
  printf '%s\n' "${table[@]}"
  echo "total $((SECONDS))s; whole log: $log"
  [ "$failed" -eq 0 ] && echo "RESULT: every step passed" || echo "RESULT: FAILED (see the rows above and the log)"
} > "$table_file"
tee -a "$log" < "$table_file"
exit "$failed"
