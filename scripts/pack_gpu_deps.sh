#!/usr/bin/env bash
# Run HERE (a machine with the project's Debian packages): copies the headers, libraries and CMake
# package files that the GPU machine lacks into .deps/ (git-ignored), keeping Debian's layout under
# a prefix so that their CMake config files resolve relative to it. The device tool then carries
# .deps (name it in `carry`); scripts/gpu_check.sh builds against it.
#
# A -dev package's CMake target files name the versioned runtime library (benchmarkTargets-none.cmake
# names libbenchmark.so.1.7.1), which lives in the runtime package: both are carried, and every
# file that a carried CMake file names under its prefix is checked to be in .deps, so that a
# missing one fails here rather than at configure time on the GPU machine. OpenBLAS is not carried
# (36 MB): the GPU build uses the built-in GEMM (MTL_USE_OPENBLAS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps
rm -rf "$out"
mkdir -p "$out"
pkgs=(doctest-dev
      libbenchmark-dev libbenchmark1debian
      libyaml-cpp-dev libyaml-cpp0.7
      nlohmann-json3-dev libcli11-dev
      libstb-dev libstb0)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "pack_gpu_deps: package $p is not installed here (run scripts/setup.sh first)" >&2; exit 1; }
  dpkg -L "$p" | while read -r f; do
    case "$f" in /usr/share/doc/*|/usr/share/man/*|/usr/share/lintian/*) continue ;; esac
    [ -f "$f" ] || continue
    rel=${f#/usr/}
    mkdir -p "$out/$(dirname "$rel")"
    cp -L "$f" "$out/$rel"
  done
done

# Every ${_IMPORT_PREFIX}/... path in the carried CMake files must exist under .deps.
missing=0
while IFS= read -r ref; do
  [ -e "$out/${ref#\$\{_IMPORT_PREFIX\}/}" ] && continue
  echo "pack_gpu_deps: a carried CMake file names $ref, which is not in $out" >&2
  missing=1
done < <(grep -rhoE '\$\{_IMPORT_PREFIX\}/[^";) ]+' --include='*.cmake' "$out" | sort -u)
[ "$missing" -eq 0 ] || exit 1
echo "pack_gpu_deps: $(du -sh "$out" | cut -f1) in $out ($(find "$out" -type f | wc -l) files); carry it to the GPU machine"
