"""CUDA-event timing shared by the PyTorch peers in bench/reference/."""
import statistics

import torch


def per_call_ms(fn, warmup, iters, stat=statistics.mean):
    """Each call timed alone between two events, after `warmup` untimed calls; `stat` of the times."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return stat(times)


def pipelined_ms(fn, warmup, iters):
    """`iters` calls back to back between two events (the host queues ahead), per call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iters
