#!/usr/bin/env python3
"""Convolutions through PyTorch (cuDNN) at the CUDA shapes of bench/bench_conv.cpp, side by side.

Times F.conv2d forward, the gradient to the input and the gradient to the weight (each alone, with
torch.ops.aten.convolution_backward), in float32 math and, for the forward, with TF32, using CUDA
events after a warm-up, with cudnn.benchmark on (PyTorch's fastest setting, as mtl searches
algorithms once per shape). Prints TFLOP/s from the same count as the Google Benchmark cases:
2 * N * C_out * H_out * W_out * (C_in / groups) * kH * kW.

Usage: python3 bench/reference/conv_torch.py [--iters 50] [--warmup 10]
"""
import argparse

import torch
import torch.nn.functional as F

from cuda_timing import per_call_ms  # noqa: E402

# (N, C_in, H, W, C_out, kH, kW, stride, groups) as bench_conv.cpp's esanet_shapes.
SHAPES = [(8, 3, 480, 640, 64, 7, 7, 2, 1), (8, 64, 120, 160, 64, 3, 1, 1, 1), (8, 512, 15, 20, 512, 3, 3, 1, 1),
          (8, 128, 120, 160, 128, 3, 3, 1, 128)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("conv_torch.py: error: no CUDA device")
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(f"# {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, cudnn {torch.backends.cudnn.version()}, "
          f"{args.iters} timed iterations after {args.warmup} warm-up")
    print(f"{'benchmark':<26} {'shape':<34} {'time (us)':>10} {'TFLOP/s':>9}")
    for (n, c, h, w, co, kh, kw, s, g) in SHAPES:
        x = torch.randn(n, c, h, w, device=dev)
        wt = torch.randn(co, c // g, kh, kw, device=dev) * 0.1
        pad = (kh // 2, kw // 2)
        y = F.conv2d(x, wt, stride=s, padding=pad, groups=g)
        dy = torch.randn_like(y)
        flops = 2.0 * y.numel() * (c // g) * kh * kw
        label = f"{n}x{c}x{h}x{w} -> {co} k{kh}x{kw} s{s}" + (f" g{g}" if g > 1 else "")

        def bwd(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, wt, None, (s, s), pad, (1, 1), False, (0, 0), g,
                                                               mask)

        cases = [("torch_ConvForward", False, lambda: F.conv2d(x, wt, stride=s, padding=pad, groups=g)),
                 ("torch_ConvBackwardInput", False, bwd([True, False, False])),
                 ("torch_ConvBackwardWeight", False, bwd([False, True, False])),
                 ("torch_ConvForwardTf32", True, lambda: F.conv2d(x, wt, stride=s, padding=pad, groups=g))]
        for name, tf32, fn in cases:
            torch.backends.cudnn.allow_tf32 = tf32
            with torch.no_grad():
                ms = per_call_ms(fn, args.warmup, args.iters)
            print(f"{name:<26} {label:<34} {ms * 1e3:>10.1f} {flops / (ms * 1e-3) / 1e12:>9.2f}")
        del x, wt, y, dy


if __name__ == "__main__":
    main()
