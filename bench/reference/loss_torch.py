#!/usr/bin/env python3
"""The work of bench/bench_loss.cpp through PyTorch, for a side-by-side run on the same GPU.

Same sizes (batch 8, 480x640, 7 and 40 classes), same inputs' distributions, and the same
least-traffic byte counts as bench_loss.cpp, so the GB/s columns compare directly:
  cross-entropy forward             4*C*P + 4*P
  cross-entropy forward+backward    12*C*P + 8*P
  SILog forward+backward            20*P
  confusion matrix from logits      4*C*P + 4*P     (argmax + bincount)
  confusion matrix from labels      8*P             (bincount)
  depth metrics                     8*P
  device copy of the logits' size   2*4*C*P         (the ceiling)
PyTorch's labels are int64 (F.cross_entropy requires it); their extra 4 bytes per pixel are not
counted, so PyTorch is not charged for its own format. Timed with torch.cuda.Event after warm-up,
median of `--iters` runs.

    python3 bench/reference/loss_torch.py [--iters 50]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

from cuda_timing import per_call_ms  # noqa: E402


def time_ms(fn, iters, warmup=5):
    return per_call_ms(fn, warmup, iters, statistics.median)


N, H, W = 8, 480, 640
P = N * H * W


def silog(pred, target, lam=0.85, sqrt_scaled=False, min_pred=1e-6):
    valid = target > 0
    d = torch.log(pred.clamp_min(min_pred)[valid]) - torch.log(target[valid])
    if d.numel() == 0:
        return pred.sum() * 0
    loss = (d * d).mean() - lam * d.mean() ** 2
    return 10 * torch.sqrt(loss.clamp_min(0)) if sqrt_scaled else loss


def confusion_bincount(pred, target, c, ignore_index=255):
    keep = target != ignore_index
    idx = target[keep] * c + pred[keep]
    return torch.bincount(idx.flatten(), minlength=c * c).reshape(c, c)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("loss_torch.py: error: no CUDA device")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []

    def add(name, bytes_moved, ms):
        rows.append((name, ms * 1e3, bytes_moved / (ms * 1e-3) / 1e9))

    for c in (7, 40):
        a = torch.empty(c * P, device=dev)
        b = torch.empty_like(a)
        add(f"copy logits size/{c}", 2 * 4 * c * P, time_ms(lambda: b.copy_(a), args.iters))

        logits = torch.randn(N, c, H, W, device=dev, generator=gen)
        labels = torch.randint(0, c, (N, H, W), device=dev, generator=gen)
        weight = torch.rand(c, device=dev, generator=gen) * 1.5 + 0.5
        with torch.no_grad():
            add(f"cross_entropy fwd/{c}", 4 * c * P + 4 * P,
                time_ms(lambda: F.cross_entropy(logits, labels, weight=weight, ignore_index=255), args.iters))
        x = logits.clone().requires_grad_(True)

        def ce_fwd_bwd():
            x.grad = None
            F.cross_entropy(x, labels, weight=weight, ignore_index=255).backward()

        add(f"cross_entropy fwd+bwd/{c}", 12 * c * P + 8 * P, time_ms(ce_fwd_bwd, args.iters))

        with torch.no_grad():
            add(f"confusion from logits/{c}", 4 * c * P + 4 * P,
                time_ms(lambda: confusion_bincount(logits.argmax(1), labels, c), args.iters))
            pred = labels.clone()
            pred.view(-1)[::16] = (pred.view(-1)[::16] + 1) % c
            add(f"confusion from labels/{c}", 8 * P, time_ms(lambda: confusion_bincount(pred, labels, c), args.iters))
            try:
                from torchmetrics.classification import MulticlassJaccardIndex

                jac = MulticlassJaccardIndex(num_classes=c, ignore_index=255, average="macro").to(dev)
                add(f"torchmetrics jaccard update/{c}", 4 * c * P + 4 * P,
                    time_ms(lambda: jac.update(logits, labels), args.iters))
            except ImportError:
                pass
        del a, b, logits, x

    pred = (torch.rand(N, 1, H, W, device=dev, generator=gen) * 7.5 + 0.5).requires_grad_(True)
    target = torch.rand(N, 1, H, W, device=dev, generator=gen) * 8.0
    for sqrt_scaled in (False, True):
        def silog_fwd_bwd():
            pred.grad = None
            silog(pred, target, sqrt_scaled=sqrt_scaled).backward()

        add(f"silog fwd+bwd/{int(sqrt_scaled)}", 20 * P, time_ms(silog_fwd_bwd, args.iters))

    def depth_metrics():
        with torch.no_grad():
            valid = target > 0
            p, t = pred.detach().clamp_min(1e-6)[valid], target[valid]
            ratio = torch.maximum(p / t, t / p)
            err = p - t
            return torch.stack([(err.abs() / t).sum(), (err * err / t).sum(), (err * err).sum(),
                                ((torch.log(p) - torch.log(t)) ** 2).sum(), (ratio < 1.25).sum(),
                                (ratio < 1.25 ** 2).sum(), (ratio < 1.25 ** 3).sum()])

    add("depth metrics", 8 * P, time_ms(depth_metrics, args.iters))

    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}")
    print(f"{'case':<34}{'time (us)':>12}{'GB/s':>10}")
    for name, us, gbs in rows:
        print(f"{name:<34}{us:>12.1f}{gbs:>10.1f}")


if __name__ == "__main__":
    main()
