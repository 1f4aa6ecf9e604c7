#!/usr/bin/env bash
# The main job on the built-in synthetic data: set up and build, generate the greenhouse RGB-D
# data set if it is missing, train configs/demo.yaml (on the GPU when there is one, else on the
# CPU; mtl_train tests the best checkpoint on the test split when training ends) and say where
# the results are.
#   scripts/demo.sh [extra mtl_train options, e.g. --set train.epochs=5]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${MTL_BUILD_DIR:-build}
data=data/greenhouse_demo
if [ ! -f "$data/mtl_datagen.json" ]; then
  "$build/apps/mtl_datagen" "$data"
fi
run=runs/demo-$(date +%Y%m%d-%H%M%S)
start=$(date +%s)
"$build/apps/mtl_train" configs/demo.yaml --output "$run" "$@"
end=$(date +%s)
echo
echo "training and test took $((end - start)) s"
echo "run folder:     $run"
echo "  metrics:      $run/metrics.jsonl (TensorBoard: tensorboard --logdir $run)"
echo "  checkpoints:  $run/checkpoints/best.safetensors, last.safetensors"
echo "  pictures:     $run/visuals/ (validation), $run/eval_test/ (test panels)"
echo "  test metrics: $run/test_metrics.json (mtl_eval $run --split test gives the same)"
