#!/usr/bin/env python3
"""Checks a model.onnx written by mtl_export against the sample file written with it.

  check_export.py MODEL.onnx SAMPLE.safetensors [--batches 1,3] [--rtol 1e-4] [--min-agreement 0.999]

1. onnx.checker.check_model(full_check=True) (which runs ONNX's shape inference too);
2. the graph holds no BatchNormalization (folded into the convolutions) and has the metadata keys
   docs/deploy.md lists;
3. ONNX Runtime (CPU) on the sample's inputs: every output within `rtol` of mtl's, relative to the
   largest magnitude of mtl's output (max |ort - mtl| / max |mtl|), and the argmax labels of
   `semantic` equal to mtl's on at least `min-agreement` of the pixels;
4. with --batches, the same at each of those batch sizes (the sample's images repeated or cut to
   that many), for a model exported with --batch dynamic.

Prints one JSON line with the measurements and the metadata_props (for the caller to check their
values against the run); exits 1 with the reason on any failure. Used by
tests/test_export_job.cpp; docs/deploy.md shows its core as the snippet for users.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

METADATA_KEYS = ["input_size", "modality", "tasks", "rgb_normalization", "rgb_mean", "rgb_std",
                 "depth_normalization", "depth_mean", "depth_std", "depth_scale", "max_depth", "outputs",
                 "num_classes", "class_names", "class_colors", "checkpoint"]


def fail(msg):
    print("check_export: FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def compare(session, sample, batch, rtol, min_agreement, result):
    """Runs the session on `batch` images of the sample and compares with mtl's outputs."""
    n = sample[next(k for k in sample if k.startswith("input/"))].shape[0]
    pick = np.arange(batch) % n
    feeds = {i.name: sample["input/" + i.name][pick] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(names, feeds)))
    for name, got in outs.items():
        want = sample["output/" + name][pick]
        if got.shape != want.shape:
            fail(f"batch {batch}: output {name} is {got.shape}, mtl's is {want.shape}")
        if not np.all(np.isfinite(got)):
            fail(f"batch {batch}: output {name} has non-finite values")
        err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))
        result[f"{name}_max_rel_err_b{batch}"] = err
        if err > rtol:
            fail(f"batch {batch}: output {name} differs from mtl's by {err:.3g} of its range (allowed {rtol})")
        if name == "semantic":
            agree = float(np.mean(np.argmax(got, 1) == np.argmax(want, 1)))
            result[f"argmax_agreement_b{batch}"] = agree
            if agree < min_agreement:
                fail(f"batch {batch}: argmax labels agree on {agree:.5f} of the pixels (need {min_agreement})")
        if name == "depth_metres":
            result[f"depth_max_abs_err_m_b{batch}"] = float(np.max(np.abs(got - want)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("sample")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes to run (dynamic-batch exports)")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--min-agreement", type=float, default=0.999)
    a = ap.parse_args()

    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    if "BatchNormalization" in ops:
        fail("the graph has BatchNormalization nodes (they should be folded into the convolutions)")
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        fail("metadata_props lacks " + ", ".join(missing))
    result = {"opset": model.opset_import[0].version, "ir_version": model.ir_version, "nodes": len(model.graph.node),
              "ops": ops, "metadata": meta}

    sample = load_file(a.sample)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    batch = sample[next(k for k in sample if k.startswith("input/"))].shape[0]
    compare(session, sample, batch, a.rtol, a.min_agreement, result)
    for b in [int(x) for x in a.batches.split(",") if x]:
        compare(session, sample, b, a.rtol, a.min_agreement, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
