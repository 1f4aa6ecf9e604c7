#pragma once
// Evaluation metrics accumulated on the device across batches.
//
// Confusion matrix: counts [c][c] int64 (rows = target class, columns = predicted class), added
// to by every call. The prediction is either the argmax over the logits' classes (the first
// maximum on ties; NaN never wins) or a label map. A pixel whose target is ignore_index is
// skipped; a target that is neither a class nor ignore_index, or a counted pixel whose predicted
// label is not a class, is skipped and reported in `bad` (the smallest such flat pixel index, or
// kNoBadLabel). Integer counts make the result exact and independent of scheduling.
//
// Depth metrics over valid pixels (target > 0), prediction clamped to >= min_pred: sums (double)
// and counts (int64) added to by every call, in the order of DepthSum / DepthCount. A NaN
// prediction at a valid pixel is counted as valid, makes every sum NaN and is within no delta.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/labels.h"
#include "kernels/nan_math.h"

namespace mtl::kernels {

// logits [n, c, hw] contiguous; label maps [n, hw].
struct ConfusionDims {
  int64_t n = 0, c = 0, hw = 0;
  int64_t ignore_index = -1;
};

enum DepthSum : int { kAbsRel = 0, kSqRel, kSqErr, kSqLogErr, kNumDepthSums };
enum DepthCount : int { kValid = 0, kDelta1, kDelta2, kDelta3, kNumDepthCounts };
// delta_k counts pixels with max(pred/target, target/pred) < 1.25^k; the powers are exact floats.
constexpr double kDelta1Threshold = 1.25, kDelta2Threshold = 1.5625, kDelta3Threshold = 1.953125;

namespace cpu {
template <typename T>
void confusion_from_logits(int64_t* counts, int64_t* bad, const T* logits, Labels target, const ConfusionDims& d);
void confusion_from_labels(int64_t* counts, int64_t* bad, Labels pred, Labels target, const ConfusionDims& d);
// pred, target [n] contiguous; sums [kNumDepthSums], counts [kNumDepthCounts].
template <typename T>
void depth_metrics_accumulate(double* sums, int64_t* counts, const T* pred, const T* target, int64_t n,
                              double min_pred);
}  // namespace cpu

namespace cuda {
// Up to 256 classes (the per-block histogram lives in shared memory); more is an mtl::Error.
void confusion_from_logits(int64_t* counts, int64_t* bad, const float* logits, Labels target, const ConfusionDims& d,
                           cudaStream_t s);
void confusion_from_labels(int64_t* counts, int64_t* bad, Labels pred, Labels target, const ConfusionDims& d,
                           cudaStream_t s);
void depth_metrics_accumulate(double* sums, int64_t* counts, const float* pred, const float* target, int64_t n,
                              double min_pred, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
