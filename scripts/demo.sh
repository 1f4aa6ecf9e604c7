#!/usr/bin/env bash
# The main job on the built-in synthetic data: set up and build, generate the greenhouse RGB-D
# data set if it is missing, train configs/demo.yaml (on the GPU when there is one, else on the
# CPU), evaluate the best checkpoint on the test split and say where the results are.
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
trained=$(date +%s)
echo
echo "== evaluation of the best checkpoint on the test split"
"$build/apps/mtl_eval" "$run" --split test --visuals 8 --json "$run/eval_test/metrics.json"
end=$(date +%s)
echo
echo "training took $((trained - start)) s, evaluation $((end - trained)) s"
echo "run folder:     $run"
echo "  metrics:      $run/metrics.jsonl (TensorBoard: tensorboard --logdir $run)"
echo "  checkpoints:  $run/checkpoints/best.safetensors, last.safetensors"
echo "  pictures:     $run/visuals/ (validation), $run/eval_test/ (test panels)"
echo "  test metrics: $run/eval_test/metrics.json"
