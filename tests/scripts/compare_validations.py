#!/usr/bin/env python3
"""Compares the validation records of two runs of the same configuration (issue 17's bf16 test):
every validation of the first run has one at the same step in the second, and the mIoU of each
differs by at most the tolerance. Prints both series; exits 1 on a difference, 2 on bad input.

  compare_validations.py RUN_A/metrics.jsonl RUN_B/metrics.jsonl --key miou --tolerance 0.02
"""
import argparse
import json
import sys


def fail(message):
    print(f"compare_validations: {message}", file=sys.stderr)
    sys.exit(2)


def validations(path, key):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("type") == "eval" and key in r:
                    out[r["step"]] = r[key]
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    if not out:
        fail(f"{path} has no validation record with '{key}'")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--key", default="miou")
    p.add_argument("--tolerance", type=float, required=True)
    args = p.parse_args()
    a, b = validations(args.a, args.key), validations(args.b, args.key)
    worst, ok = 0.0, True
    print(f"{'step':>6}  {args.key + ' a':>10}  {args.key + ' b':>10}  {'b - a':>8}")
    for step in sorted(a):
        if step not in b:
            print(f"{step:>6}  {a[step]:10.4f}  {'missing':>10}")
            ok = False
            continue
        d = b[step] - a[step]
        worst = max(worst, abs(d))
        print(f"{step:>6}  {a[step]:10.4f}  {b[step]:10.4f}  {d:+8.4f}")
        ok = ok and abs(d) <= args.tolerance
    print(f"worst |b - a| = {worst:.4f} (tolerance {args.tolerance}) over {len(a)} validations")
    return 0 if ok and len(a) == len(b) else 1


if __name__ == "__main__":
    sys.exit(main())
