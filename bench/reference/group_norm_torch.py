#!/usr/bin/env python3
"""GroupNorm through PyTorch at the shapes of bench/bench_group_norm.cpp, for a side-by-side run.

Times torch.nn.functional.group_norm (ATen's native CUDA kernels) forward, and its backward alone
(torch.autograd.grad on a kept graph), with CUDA events after a warm-up, and prints GB/s computed
from the same minimum traffic as the Google Benchmark cases:

    forward:  read x, write y, plus gamma, beta, and the saved mean, rstd
    backward: read x, dy, write dx, plus mean, rstd, gamma, and dgamma, dbeta

together with the device-to-device copy bandwidth (bytes read + written, as BM_DeviceCopy), so
that both programs' numbers can be read as a fraction of the same limit. Times are the mean over
the timed iterations, as Google Benchmark reports them.

Usage: python3 bench/reference/group_norm_torch.py [--iters 200] [--warmup 20]
"""
import argparse

import torch
import torch.nn.functional as F

from cuda_timing import per_call_ms  # noqa: E402

# (N, C, H, W) of ESANet's encoder stages at 640x480, batch 8, as in bench_group_norm.cpp.
SHAPES = [(8, 64, 240, 320), (8, 64, 120, 160), (8, 128, 60, 80), (8, 256, 30, 40), (8, 512, 15, 20)]
EPS = 1e-5


def group_count(c):
    """ops::group_norm_groups: 32/16/8 by width, else c/2 (>= 1), lowered to a divisor of c."""
    g = 32 if c >= 32 else 16 if c >= 16 else 8 if c >= 8 else max(1, c // 2)
    while c % g:
        g -= 1
    return g


def forward_bytes(n, c, hw, g):
    return 4 * (2 * n * c * hw + 2 * c + 2 * n * g)


def backward_bytes(n, c, hw, g):
    return 4 * (3 * n * c * hw + 2 * n * g + 3 * c)


def row(name, label, ms, nbytes, copy_gbs):
    gbs = nbytes / (ms * 1e-3) / 1e9
    frac = f"{100.0 * gbs / copy_gbs:6.1f}%" if copy_gbs else "      -"
    print(f"{name:<28} {label:<20} {ms * 1e3:>10.1f} {gbs:>10.1f} {frac:>8}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("group_norm_torch.py: error: no CUDA device")
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(f"# {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, "
          f"{args.iters} timed iterations after {args.warmup} warm-up")
    print(f"{'benchmark':<28} {'shape':<20} {'time (us)':>10} {'GB/s':>10} {'of copy':>8}")

    n = 1 << 28
    a = torch.empty(n, dtype=torch.float32, device=dev)
    b = torch.empty_like(a)
    copy_ms = per_call_ms(lambda: b.copy_(a), args.warmup, args.iters)
    copy_gbs = 2 * 4 * n / (copy_ms * 1e-3) / 1e9
    row("torch_DeviceCopy", f"{n} floats", copy_ms, 2 * 4 * n, copy_gbs)
    del a, b

    for (bn, c, h, w) in SHAPES:
        g = group_count(c)
        label = f"{bn}x{c}x{h}x{w} g{g}"
        x = torch.randn(bn, c, h, w, device=dev)
        gamma = (1 + torch.randn(c, device=dev))
        beta = torch.randn(c, device=dev)
        with torch.no_grad():
            fwd_ms = per_call_ms(lambda: F.group_norm(x, g, gamma, beta, EPS), args.warmup, args.iters)
        row("torch_GroupNormForward", label, fwd_ms, forward_bytes(bn, c, h * w, g), copy_gbs)

        xg = x.clone().requires_grad_(True)
        gg = gamma.clone().requires_grad_(True)
        bg = beta.clone().requires_grad_(True)
        y = F.group_norm(xg, g, gg, bg, EPS)
        dy = torch.randn_like(y)
        bwd_ms = per_call_ms(lambda: torch.autograd.grad(y, (xg, gg, bg), dy, retain_graph=True), args.warmup,
                         args.iters)
        row("torch_GroupNormBackward", label, bwd_ms, backward_bytes(bn, c, h * w, g), copy_gbs)
        del x, xg, y, dy


if __name__ == "__main__":
    main()
