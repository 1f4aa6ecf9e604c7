#pragma once
// Training losses: fused softmax cross-entropy for segmentation, SILog and masked L1 for depth.
// Each returns the batch loss (a 0-d tensor) and a loss per sample ([N], for logging groups of
// samples, e.g. one data source). Both outputs are differentiable with respect to the prediction
// (logits / pred); labels, targets and weights are data and receive no gradient. Reductions are
// deterministic, and an empty selection (every pixel ignored, no valid depth) gives 0 and a zero
// gradient, never NaN.
#include "core/tensor.h"

namespace mtl::ops {

struct LossResult {
  Tensor loss;        // 0-d, the batch loss
  Tensor per_sample;  // [N], each sample's own loss (see each loss for its weighting)
};
using CrossEntropyResult = LossResult;
using DepthLossResult = LossResult;

struct CrossEntropyOptions {
  Tensor class_weights;   // optional [C], the logits' dtype and device
  Tensor sample_weights;  // optional [N]: a weight per image
  int64_t ignore_index = -1;
  // A label that is neither a class nor ignore_index is an mtl::Error naming it; finding out
  // costs one host synchronisation per call. With false there is none, and such pixels count as
  // ignored.
  bool check_labels = true;
};

// Softmax cross-entropy over logits [N, C, *] (class stride = the product of the trailing
// dimensions, e.g. NCHW) against labels [N, *] (uint8, int32 or int64), computed without
// materialising the softmax; the backward recomputes it from the logits and the saved per-pixel
// log-sum-exp. With w = class_weights[y] and s = sample_weights[n] over pixels whose label is not
// ignore_index:
//   loss          = sum(s * w * l) / sum(s * w)
//   per_sample[n] = sum_{pixels of n}(w * l) / sum_{pixels of n}(w)   (not scaled by s, so a
//                   down-weighted sample still reports its own loss)
// with l = logsumexp(logits) - logits[y]; a zero denominator gives 0. Weights are expected to be
// non-negative.
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o = {});

struct SILogOptions {
  double lambda = 0.85;      // in [0, 1]: mean(d^2) - lambda * mean(d)^2
  bool sqrt_scaled = false;  // the common variant 10 * sqrt(mean(d^2) - lambda * mean(d)^2)
  // Predictions are clamped to max(pred, min_pred) before the log (zero gradient below it), so
  // a non-positive prediction gives a large but finite loss instead of NaN.
  double min_pred = 1e-6;
  Tensor sample_weights;  // optional [N]
};

// Scale-invariant log loss over valid pixels (target > 0) of pred and target, both [N, 1, H, W]
// or [N, H, W] (any [N, *] of one shape), float: d = log(max(pred, min_pred)) - log(target),
// means over the batch's valid pixels, each weighted by its sample's weight; per_sample[n] is the
// same over sample n alone (unweighted). The sqrt variant is 0 with zero gradient where the
// quantity under the root is <= 0 (its minimum).
DepthLossResult silog_loss(const Tensor& pred, const Tensor& target, const SILogOptions& o = {});

struct MaskedL1Options {
  Tensor sample_weights;  // optional [N]
};

// mean |pred - target| over valid pixels (target > 0), weighted by sample as SILog is; the
// gradient at pred == target is 0.
DepthLossResult masked_l1_loss(const Tensor& pred, const Tensor& target, const MaskedL1Options& o = {});

}  // namespace mtl::ops
