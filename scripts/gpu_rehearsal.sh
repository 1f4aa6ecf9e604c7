#!/usr/bin/env bash
# Proves scripts/gpu_check.sh here before a GPU sees it. Makes a bare Debian root (debootstrap,
# minbase: no development packages beyond the C++ compiler that nvcc needs) and gives it only what
# the device tool's GPU machine holds: the CUDA toolkit without cuDNN (copied from /usr/local/cuda),
# and /opt/torch/.venv with the NVIDIA wheels from PyPI (nvidia-cudnn-cu13, nvidia-cublas,
# nvidia-cuda-nvrtc, nvidia-nccl-cu13) and CMake and ninja as pip packages, as there. Then it copies
# in what the device tool carries (the files git tracks or does not ignore, and .deps, freshly made
# by scripts/pack_gpu_deps.sh) and runs `scripts/gpu_check.sh --build-only` in it with chroot and
# without network: every target must build, every executable start, and every cuda test report
# SKIPPED (no GPU here). Exits non-zero on any failure; mounts and folders are removed in every case.
#
# Run as root on the dev machine (Debian's mirror and PyPI reachable). Not part of CI: it took 25
# to 28 minutes on this project's 2-core machine, 22 to 24 of them the build (README.md).
# Variables: MTL_REHEARSAL_CACHE (downloaded .debs and wheels, kept for the next run; default
# ~/.cache/mtl-rehearsal), MTL_REHEARSAL_MIRROR (default http://deb.debian.org/debian), MTL_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$SECONDS

[ "$(id -u)" -eq 0 ] || { echo "gpu_rehearsal: error: run as root (debootstrap, mount, chroot)" >&2; exit 1; }
[ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu_rehearsal: error: no CUDA toolkit in /usr/local/cuda" >&2; exit 1; }
if ! command -v debootstrap > /dev/null; then
  echo "gpu_rehearsal: installing debootstrap"
  apt-get install -y -qq debootstrap > /dev/null
fi

cache=${MTL_REHEARSAL_CACHE:-$HOME/.cache/mtl-rehearsal}
mirror=${MTL_REHEARSAL_MIRROR:-http://deb.debian.org/debian}
jobs=${MTL_JOBS:-$(nproc)}
# The versions beside this project's CUDA 13.0 toolkit (its dist-info), and current CMake/ninja.
wheels=(nvidia-cudnn-cu13==9.19.0.56 nvidia-cublas==13.1.0.3 nvidia-cuda-nvrtc==13.0.88
        nvidia-nccl-cu13==2.28.9 cmake==4.4.5 ninja==1.13.2)
mkdir -p "$cache/debs" "$cache/wheels"

root=$(mktemp -d /var/tmp/mtl-rehearsal.XXXXXX)
mounts=()
cleanup() {
  local rc=$? m i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[$i]}
    umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null || true
  done
  if grep -q " $root" /proc/mounts; then
    echo "gpu_rehearsal: error: mounts under $root remain; not removing it" >&2
    rc=1
  else
    rm -rf --one-file-system "$root"
  fi
  echo "gpu_rehearsal: cleaned up $root"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase() { echo "gpu_rehearsal: [$((SECONDS - t_start))s] $*"; }

phase "debootstrap bookworm (minbase, g++, python3-venv) into $root"
debootstrap --variant=minbase --include=g++,python3,python3-venv --cache-dir="$cache/debs" \
  bookworm "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 ||
  { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }

phase "CUDA toolkit without cuDNN into /usr/local"
toolkit=$(readlink -f /usr/local/cuda)
mkdir -p "$root/usr/local"
cp -al "$toolkit" "$root$toolkit" 2> /dev/null || cp -a "$toolkit" "$root$toolkit"
rm -f "$root$toolkit"/include/cudnn*.h "$root$toolkit"/lib/libcudnn* "$root$toolkit"/lib64/libcudnn*
ln -s "$toolkit" "$root/usr/local/cuda"

phase "Python venv /opt/torch/.venv with ${wheels[*]}"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$cache/wheels" "${wheels[@]}"
mkdir -p "$root/tmp/wheels"
for w in "${wheels[@]}"; do
  n=${w%%==*}
  v=${w##*==}
  cp -l "$cache/wheels/${n//-/_}-$v-"*.whl "$root/tmp/wheels/" 2> /dev/null ||
    cp "$cache/wheels/${n//-/_}-$v-"*.whl "$root/tmp/wheels/"
done

mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount -t sysfs sys "$root/sys" && mounts+=("$root/sys")
mount --bind /dev "$root/dev" && mounts+=("$root/dev")
# Like the GPU machine: no network, a clean environment, the venv first on PATH.
in_root() {
  unshare --net chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/opt/torch/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
in_root python3 -m venv /opt/torch/.venv
in_root sh -c '/opt/torch/.venv/bin/python3 -m pip install -q --no-index --no-deps --no-compile /tmp/wheels/*.whl'
rm -rf "$root/tmp/wheels"

phase "working tree (tracked and not ignored) and a fresh .deps into /work/mtl"
scripts/pack_gpu_deps.sh
mkdir -p "$root/work/mtl"
git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$root/work/mtl"
cp -a .deps "$root/work/mtl/"

phase "scripts/gpu_check.sh --build-only in the root ($jobs jobs)"
t_build=$SECONDS
set +e
in_root MTL_JOBS="$jobs" MTL_GPU_LOG_DIR=/work/log bash -c 'cd /work/mtl && scripts/gpu_check.sh --build-only' \
  > "$cache/last_build_only.out" 2>&1
rc=$?
set -e
build_s=$((SECONDS - t_build))
cp "$root/work/log/build-only.log" "$cache/last_build_only.log" 2> /dev/null || true
cp "$root/work/mtl/build-gpu/.ninja_log" "$cache/last_ninja_log" 2> /dev/null || true  # per-step build times
tail -n 60 "$cache/last_build_only.out"
phase "gpu_check.sh --build-only exited $rc after ${build_s}s; the whole log: $cache/last_build_only.log"
if [ "$rc" -ne 0 ]; then
  echo "gpu_rehearsal: FAILED"
  exit 1
fi
echo "gpu_rehearsal: passed in $((SECONDS - t_start))s ($build_s of them gpu_check.sh --build-only)"
