#pragma once
// Loss kernels: fused softmax cross-entropy over NCHW logits, and the depth losses (SILog, masked
// L1). Each loss is a forward that produces the loss, a loss per sample and the small statistics
// its backward needs, and a backward that turns the upstream gradients of both outputs into the
// gradient of the prediction in one pass. Reductions are deterministic: per-chunk partial sums in
// a fixed layout, summed in a fixed order in double (no float atomics).
//
// Statistics layout (double, on the tensors' device), with N samples:
//   cross-entropy: [N + 1][2]  row n < N: (sum w_c*loss, sum w_c) over sample n's counted pixels;
//                              row N:     the same sums weighted by the sample weights.
//   depth losses:  [N + 1][3]  row n < N: (valid count, sum d, sum d^2) with d = log(max(p, min_pred))
//                              - log(t) for SILog, (valid count, sum |p - t|, 0) for L1;
//                              row N:     the same weighted by the sample weights.
// A NaN prediction at a valid pixel makes its sample's loss and the loss NaN, as in PyTorch (the
// clamp lets NaN through), so that the non-finite guard sees it. SILog's gradient is then NaN at
// the other valid pixels and 0 at that one; L1's stays finite (PyTorch's sign(NaN) is 0 too).
// `class_w` and `sample_w` may be null (all ones). `g_loss` points at one element and `g_per_sample`
// at N: the upstream gradients of the two outputs.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/labels.h"
#include "kernels/layout.h"
#include "kernels/nan_math.h"

namespace mtl::kernels {

// logits [n, c, hw] contiguous (class stride hw), labels [n, hw].
struct CrossEntropyDims {
  int64_t n = 0, c = 0, hw = 0;
  int64_t ignore_index = -1;
};

enum class DepthLossKind : uint8_t { silog, l1 };

// pred and target [n, hw] contiguous. A pixel is valid when its target is > 0.
struct DepthLossParams {
  DepthLossKind kind = DepthLossKind::silog;
  int64_t n = 0, hw = 0;
  double lambda = 0.85;      // SILog: mean(d^2) - lambda * mean(d)^2
  bool sqrt_scaled = false;  // SILog: 10 * sqrt(max(that, 0))
  double min_pred = 1e-6;    // SILog: log(max(pred, min_pred))
};

namespace detail {

MTL_HD double ratio_or_zero(double num, double den) { return den > 0 ? num / den : 0.0; }

// Gradient coefficient of a cross-entropy pixel of sample `n`, before its class weight:
// d(loss)/d(pixel loss) + d(per_sample[n])/d(pixel loss).
MTL_HD double cross_entropy_coefficient(const double* stats, int64_t n, int64_t num_samples, double sample_w,
                                        double g_loss, double g_sample) {
  return g_loss * sample_w * ratio_or_zero(1.0, stats[2 * num_samples + 1]) +
         g_sample * ratio_or_zero(1.0, stats[2 * n + 1]);
}

// The loss value from one statistics row (count, s1, s2): 0 without valid pixels.
MTL_HD double depth_loss_value(const double* row, const DepthLossParams& p) {
  const double k = row[0];
  if (!(k > 0)) return 0.0;
  if (p.kind == DepthLossKind::l1) return row[1] / k;
  const double m1 = row[1] / k, l = row[2] / k - p.lambda * m1 * m1;
  if (!p.sqrt_scaled) return l;
  return 10.0 * sqrt(max_nan(l, 0.0));
}

// Adds to (a, b) the gradient of g * value(row) with respect to a pixel's d (SILog: a*d + b) or |e|
// (L1: a), for a pixel whose weight inside the row's sums is `w`. At sqrt(0) the gradient is taken
// as 0 (the loss is at its minimum there).
MTL_HD void depth_loss_coefficients(const double* row, double w, double g, const DepthLossParams& p, double& a,
                                    double& b) {
  const double k = row[0];
  if (!(k > 0) || g == 0.0) return;
  if (p.kind == DepthLossKind::l1) {
    a += g * w / k;
    return;
  }
  double c = 1.0;
  if (p.sqrt_scaled) {
    const double m1 = row[1] / k, l = row[2] / k - p.lambda * m1 * m1;
    c = l > 0 ? 5.0 / sqrt(l) : 0.0;
  }
  a += g * c * 2.0 * w / k;
  b -= g * c * 2.0 * p.lambda * w * row[1] / (k * k);
}

// The (a, b) of every pixel of sample n from both outputs' upstream gradients.
MTL_HD void depth_loss_sample_coefficients(const double* stats, int64_t n, double sample_w, double g_loss,
                                           double g_sample, const DepthLossParams& p, double& a, double& b) {
  a = 0.0, b = 0.0;
  depth_loss_coefficients(stats + 3 * p.n, sample_w, g_loss, p, a, b);
  depth_loss_coefficients(stats + 3 * n, 1.0, g_sample, p, a, b);
}

}  // namespace detail

namespace cpu {
// loss [1], per_sample [n], lse [n*hw] (log-sum-exp per pixel, for the backward), stats [n+1][2],
// bad [1]: the smallest flat pixel index whose label is neither a class nor ignore_index, or
// kNoBadLabel. Such pixels are counted as ignored.
template <typename T>
void cross_entropy_forward(T* loss, T* per_sample, T* lse, double* stats, int64_t* bad, const T* logits, Labels labels,
                           const T* class_w, const T* sample_w, const CrossEntropyDims& d);
// grad [n, c, hw] = coefficient(n) * w_c(y) * (softmax - onehot(y)), 0 on ignored pixels.
template <typename T>
void cross_entropy_backward(T* grad, const T* logits, Labels labels, const T* lse, const double* stats,
                            const T* class_w, const T* sample_w, const T* g_loss, const T* g_per_sample,
                            const CrossEntropyDims& d);
// loss [1], per_sample [n], stats [n+1][3].
template <typename T>
void depth_loss_forward(T* loss, T* per_sample, double* stats, const T* pred, const T* target, const T* sample_w,
                        const DepthLossParams& p);
template <typename T>
void depth_loss_backward(T* grad, const T* pred, const T* target, const double* stats, const T* sample_w,
                         const T* g_loss, const T* g_per_sample, const DepthLossParams& p);
}  // namespace cpu

namespace cuda {
void cross_entropy_forward(float* loss, float* per_sample, float* lse, double* stats, int64_t* bad, const float* logits,
                           Labels labels, const float* class_w, const float* sample_w, const CrossEntropyDims& d,
                           cudaStream_t s);
void cross_entropy_backward(float* grad, const float* logits, Labels labels, const float* lse, const double* stats,
                            const float* class_w, const float* sample_w, const float* g_loss, const float* g_per_sample,
                            const CrossEntropyDims& d, cudaStream_t s);
void depth_loss_forward(float* loss, float* per_sample, double* stats, const float* pred, const float* target,
                        const float* sample_w, const DepthLossParams& p, cudaStream_t s);
void depth_loss_backward(float* grad, const float* pred, const float* target, const double* stats,
                         const float* sample_w, const float* g_loss, const float* g_per_sample,
                         const DepthLossParams& p, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
