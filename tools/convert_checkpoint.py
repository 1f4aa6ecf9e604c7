#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (.pth/.pt) of ESANet into a safetensors file that mtl loads.

mtl's parameter and buffer names are the reference implementation's (TUI-NICR/ESANet) wherever
the two networks coincide, so conversion copies tensors under their names. What it handles:
  - checkpoints that wrap the weights: {"state_dict": ...} or {"model": ...} (also nested once);
  - the "module." prefix DataParallel adds;
  - dtype: floating tensors become float32 unless --keep-dtype; integer buffers stay as they are.
Then load it with `mtl_train CONFIG --init-from FILE`: the tensors that match the configured model
are loaded and every missing, unexpected or mis-shaped one is listed (a 40-class NYUv2 model gives
a 7-class model everything but the class-specific layers; the depth branch starts fresh).

    python3 tools/convert_checkpoint.py IN.pth OUT.safetensors [--keep-dtype] [--strip PREFIX]...
"""
import argparse
import sys

import torch
from safetensors.torch import save_file


def find_state_dict(obj):
    """The tensor dictionary inside a checkpoint object."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj:
                return find_state_dict(obj[key])
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    raise SystemExit("convert_checkpoint: no tensor dictionary found in the checkpoint "
                     "(looked for a dict of tensors, 'state_dict', 'model', 'model_state_dict', 'net')")


def convert(sd, keep_dtype=False, strip=("module.",)):
    out = {}
    for name, t in sd.items():
        for p in strip:
            if name.startswith(p):
                name = name[len(p):]
        if name in out:
            raise SystemExit(f"convert_checkpoint: two tensors map to the name '{name}'")
        t = t.detach().cpu()
        if t.is_floating_point() and not keep_dtype:
            t = t.float()
        out[name] = t.contiguous()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--keep-dtype", action="store_true", help="keep float16/float64 tensors as they are")
    ap.add_argument("--strip", action="append", default=None, help="name prefix to remove (default: module.)")
    args = ap.parse_args(argv)
    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable, truncated or not a torch file
        raise SystemExit(f"convert_checkpoint: cannot read '{args.input}': {e}")
    sd = convert(find_state_dict(obj), args.keep_dtype, tuple(args.strip or ["module."]))
    save_file(sd, args.output, metadata={"format": "pt", "source": args.input})
    total = sum(t.numel() for t in sd.values())
    print(f"wrote {args.output}: {len(sd)} tensors, {total} elements")


if __name__ == "__main__":
    sys.exit(main())
