#!/usr/bin/env bash
# Installs what mtl needs from Debian's packages (idempotent) and the tests' Python packages from
# PyPI (scripts/requirements-test.txt), then configures and builds.
# The CUDA toolkit (nvcc, cuDNN, cuBLAS) is expected in /usr/local/cuda, as on the project's
# machines; nothing here needs a GPU.
#   scripts/setup.sh            install + configure + build everything into ./build
#   MTL_BUILD_DIR=dir           build elsewhere
#   MTL_SETUP_NO_BUILD=1        install and configure only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build ccache pkg-config
          libyaml-cpp-dev doctest-dev libbenchmark-dev libopenblas-dev
          nlohmann-json3-dev libcli11-dev libstb-dev libboost-context-dev
          openmpi-bin libopenmpi-dev)  # mpirun and MPI: data-parallel training on CPUs (docs/distributed.md)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python readers some tests check mtl's files with (TensorBoard's event reader, ONNX's checker
# and ONNX Runtime); the tests use the same Python (MTL_PYTHON when CMake first configures).
python=${MTL_PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(0)' 2>/dev/null; then
  echo "setup: error: $python is needed by the tests (set MTL_PYTHON)" >&2
  exit 1
fi
if ! "$python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt; then
  echo "setup: error: installing scripts/requirements-test.txt with $python -m pip failed" >&2
  exit 1
fi

if [ ! -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  echo "setup: error: the CUDA toolkit (nvcc) was not found in /usr/local/cuda or on PATH" >&2
  exit 1
fi

build=${MTL_BUILD_DIR:-build}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
if [ -z "${MTL_SETUP_NO_BUILD:-}" ]; then
  jobs=${MTL_JOBS:-$(nproc)}
  cmake --build "$build" -j"$jobs"
fi
