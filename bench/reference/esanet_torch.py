#!/usr/bin/env python3
"""The PyTorch peer of bench/bench_train_step.cpp: the same multi-task ESANet (the model code of
tests/reference/make_esanet_reference.py, which the C++ model matches to 1e-9 in float64) and the
same training step (forward, cross-entropy at four scales, SILog, uncertainty weighting, backward,
AdamW), timed with CUDA events after warm-up, in PyTorch's usual configurations:
  fp32 (TF32 on), bf16 autocast + channels_last, and bf16 + channels_last + torch.compile.
Also inference latency at batch 1 and throughput at batch 8. Prints one table.
    python3 bench/reference/esanet_torch.py [--iters 20] [--no-compile]
With --device cpu, the peer of bench_train_step's CPU cases: eager float32 in PyTorch's default
(contiguous) memory format on --threads threads (torch.set_num_threads), each step timed on the
wall clock after warm-up; the median step is reported, as bench_train_step reports it.
    python3 bench/reference/esanet_torch.py --device cpu --threads 2 [--size demo|r34|both] [--iters 10]
  demo: R18-NBt1D, width 0.25, 160x128, batch 8, decoder depth head (configs/demo.yaml's network
        with the depth decoder); r34: R34-NBt1D, full width, 320x256, batch 2.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
import make_esanet_reference as ref  # noqa: E402

ref.CFG.update(encoder="resnet34", width=1.0, num_classes=7, height=480, width_px=640)

# The CPU cases of bench/bench_train_step.cpp: (encoder, width, height, width in pixels, batch).
CPU_SIZES = {"demo": ("resnet18", 0.25, 128, 160, 8), "r34": ("resnet34", 1.0, 256, 320, 2)}


def step_fn(model, log_vars, opt, batch, amp):
    rgb, depth, labels, sides, target = batch
    with torch.autocast(rgb.device.type, dtype=torch.bfloat16, enabled=amp):
        sem, side_out, dep = model(rgb, depth)
    sem_loss = F.cross_entropy(sem.float(), labels)
    for s, lab in zip(side_out, sides):
        sem_loss = sem_loss + F.cross_entropy(s.float(), lab)
    d = torch.log(dep.float().clamp_min(1e-6)) - torch.log(target)
    silog = (d ** 2).mean() - 0.85 * d.mean() ** 2
    losses = torch.stack([sem_loss, silog])
    total = (0.5 * torch.exp(-log_vars) * losses + 0.5 * log_vars).sum()
    total.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total


def make_batch(n, h, w, dev):
    g = torch.Generator(device=dev).manual_seed(1)
    rgb = torch.randn(n, 3, h, w, device=dev, generator=g)
    depth = torch.randn(n, 1, h, w, device=dev, generator=g)
    labels = torch.randint(0, 7, (n, h, w), device=dev, generator=g)
    sides = [torch.randint(0, 7, (n, h // f, w // f), device=dev, generator=g) for f in (8, 16, 32)]
    target = torch.rand(n, 1, h, w, device=dev, generator=g) * 0.95 + 0.05
    return rgb, depth, labels, sides, target


def cpu_main(args):
    torch.set_num_threads(args.threads)
    sizes = list(CPU_SIZES) if args.size == "both" else [args.size]
    print(f"device: cpu, {torch.get_num_threads()} threads  torch {torch.__version__}")
    print(f"{'case':44s} {'train img/s':>12s} {'median step ms':>15s} {'mean step ms':>13s}")
    for name in sizes:
        encoder, width, h, w, n = CPU_SIZES[name]
        ref.CFG.update(encoder=encoder, width=width, num_classes=7, height=h, width_px=w)
        torch.manual_seed(1)
        model = ref.ESANet("batchnorm")
        model.train()
        log_vars = torch.zeros(2, requires_grad=True)
        opt = torch.optim.AdamW(list(model.parameters()) + [log_vars], lr=1e-4, weight_decay=0.01, fused=True)
        batch = make_batch(n, h, w, "cpu")
        for _ in range(2):
            step_fn(model, log_vars, opt, batch, False)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step_fn(model, log_vars, opt, batch, False)
            times.append((time.perf_counter() - t0) * 1e3)
        med = statistics.median(times)
        label = f"{name}: {encoder} NBt1D w{width:g} {w}x{h} b{n}"
        print(f"{label:44s} {n * 1000 / med:12.2f} {med:15.1f} {statistics.mean(times):13.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=2, help="CPU: torch.set_num_threads")
    ap.add_argument("--size", choices=["demo", "r34", "both"], default="both", help="CPU: which case")
    args = ap.parse_args()
    if args.device == "cpu":
        return cpu_main(args)
    from cuda_timing import pipelined_ms  # noqa: E402
    if not torch.cuda.is_available():
        print("esanet_torch.py: no CUDA device; nothing to time")
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    dev = "cuda"
    n, h, w = 8, 480, 640
    rgb, depth, labels, sides, target = make_batch(n, h, w, dev)
    rows = []
    configs = [("fp32 (TF32)", False, False, False), ("bf16 autocast + channels_last", True, True, False)]
    if not args.no_compile:
        configs.append(("bf16 + channels_last + torch.compile", True, True, True))
    for name, amp, cl, comp in configs:
        model = ref.ESANet("batchnorm").to(dev)
        log_vars = torch.zeros(2, device=dev, requires_grad=True)
        mf = torch.channels_last if cl else torch.contiguous_format
        model = model.to(memory_format=mf)
        batch = (rgb.to(memory_format=mf), depth.to(memory_format=mf), labels, sides, target)
        opt = torch.optim.AdamW(list(model.parameters()) + [log_vars], lr=1e-4, weight_decay=0.01, fused=True)
        m = torch.compile(model) if comp else model
        model.train()
        torch.cuda.reset_peak_memory_stats()
        ms = pipelined_ms(lambda: step_fn(m, log_vars, opt, batch, amp), 3, args.iters)
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
        model.eval()
        with torch.no_grad():
            infer = {}
            for b in (1, 8):
                x, d = rgb[:b].contiguous(memory_format=mf), depth[:b].contiguous(memory_format=mf)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    infer[b] = pipelined_ms(lambda: m(x, d), 3, args.iters)
        rows.append((name, n * 1000 / ms, ms, peak, infer[1], 8 * 1000 / infer[8]))
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"{'configuration':40s} {'train img/s':>12s} {'step ms':>9s} {'peak MiB':>9s} {'b1 latency ms':>14s} {'b8 infer img/s':>15s}")
    for r in rows:
        print(f"{r[0]:40s} {r[1]:12.1f} {r[2]:9.1f} {r[3]:9.0f} {r[4]:14.2f} {r[5]:15.1f}")


if __name__ == "__main__":
    main()
