#!/usr/bin/env bash
# Run HERE (a machine with the project's Debian packages): copies the headers, small libraries and
# CMake package files that the GPU machine lacks into .deps/ (git-ignored), keeping Debian's
# layout under a prefix so their CMake config files resolve relative to it. The device tool then
# carries .deps (name it in `carry`); scripts/gpu_check.sh builds against it. OpenBLAS is not
# carried (36 MB): the GPU build uses the built-in GEMM (MTL_USE_OPENBLAS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps
rm -rf "$out"
mkdir -p "$out"
pkgs=(doctest-dev libbenchmark-dev libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev libstb-dev)
for p in "${pkgs[@]}"; do
  dpkg -L "$p" | while read -r f; do
    case "$f" in /usr/share/doc/*|/usr/share/man/*|/usr/share/lintian/*) continue ;; esac
    [ -f "$f" ] || continue
    rel=${f#/usr/}
    mkdir -p "$out/$(dirname "$rel")"
    cp -L "$f" "$out/$rel"
  done
done
du -sh "$out"
