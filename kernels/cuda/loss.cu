#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/loss_util.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/loss.h"

namespace mtl::kernels::cuda {

namespace {

// Blocks are (chunk of a sample's pixels, sample). A chunk is a fixed number of pixels, so the
// partial sums and the order they are added in depend on the sizes only: results repeat bit for
// bit from run to run. 2048 pixels = two float4 rounds of 256 threads.
constexpr int kChunk = 2048;

int64_t chunks_of(int64_t hw) { return (hw + kChunk - 1) / kChunk; }

// Vector path: 4 pixels per thread when every class row starts 16-byte aligned.
bool vec4_ok(int64_t hw, const void* a, const void* b) { return hw % 4 == 0 && aligned16(a) && aligned16(b); }

// One pass over the logits per pixel: an online log-sum-exp (rescaling the running sum when the
// maximum moves) that also picks up the target logit, so the softmax is never stored.
template <int V>
__global__ void __launch_bounds__(kThreads)
    ce_forward_kernel(float* __restrict__ lse, float* __restrict__ partial, int64_t* bad,
                      const float* __restrict__ logits, Labels labels, const float* __restrict__ class_w,
                      CrossEntropyDims d) {
  const int64_t n = blockIdx.y, c = d.c, hw = d.hw;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * kChunk, p1 = min(hw, p0 + kChunk);
  const float* x = logits + n * c * hw;
  float num = 0.f, den = 0.f;
  for (int64_t p = p0 + static_cast<int64_t>(threadIdx.x) * V; p < p1; p += kThreads * V) {
    int64_t y[V];
    float m[V], s[V], xy[V];
    load_vec<V>(m, x + p);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      y[v] = labels[n * hw + p + v];
      s[v] = 1.f;
      xy[v] = y[v] == 0 ? m[v] : 0.f;
    }
#pragma unroll 4
    for (int64_t k = 1; k < c; ++k) {
      float xv[V];
      load_vec<V>(xv, x + k * hw + p);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        if (xv[v] > m[v]) {
          s[v] = s[v] * expf(m[v] - xv[v]) + 1.f;
          m[v] = xv[v];
        } else {
          s[v] += expf(xv[v] - m[v]);
        }
        if (k == y[v]) xy[v] = xv[v];
      }
    }
    float l[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      l[v] = m[v] + logf(s[v]);
      if (y[v] == d.ignore_index) continue;
      if (y[v] < 0 || y[v] >= c) {
        record_bad(bad, n * hw + p + v);
        continue;
      }
      const float w = class_w ? class_w[y[v]] : 1.f;
      num += w * (l[v] - xy[v]);
      den += w;
    }
    store_vec<V>(lse + n * hw + p, l);
  }
  num = block_sum<kThreads>(num);
  den = block_sum<kThreads>(den);
  if (threadIdx.x == 0) {
    const int64_t j = n * gridDim.x + blockIdx.x;
    partial[2 * j] = num;
    partial[2 * j + 1] = den;
  }
}

// One block: each sample's chunk partials in a fixed order (double), then the totals.
__global__ void ce_finalize_kernel(float* loss, float* per_sample, double* stats, const float* partial,
                                   const float* sample_w, int64_t n, int64_t chunks) {
  double total_num = 0, total_den = 0;
  for (int64_t s = 0; s < n; ++s) {
    double num = 0, den = 0;
    for (int64_t j = threadIdx.x; j < chunks; j += kThreads) {
      num += partial[2 * (s * chunks + j)];
      den += partial[2 * (s * chunks + j) + 1];
    }
    num = block_sum<kThreads, double>(num);
    den = block_sum<kThreads, double>(den);
    if (threadIdx.x == 0) {
      stats[2 * s] = num;
      stats[2 * s + 1] = den;
      per_sample[s] = static_cast<float>(detail::ratio_or_zero(num, den));
      const double sw = sample_w ? sample_w[s] : 1.0;
      total_num += sw * num;
      total_den += sw * den;
    }
  }
  if (threadIdx.x == 0) {
    stats[2 * n] = total_num;
    stats[2 * n + 1] = total_den;
    *loss = static_cast<float>(detail::ratio_or_zero(total_num, total_den));
  }
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    ce_backward_kernel(float* __restrict__ grad, const float* __restrict__ logits, Labels labels,
                       const float* __restrict__ lse, const double* stats, const float* __restrict__ class_w,
                       const float* sample_w, const float* g_loss, const float* g_per_sample, CrossEntropyDims d) {
  const int64_t n = blockIdx.y, c = d.c, hw = d.hw;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * kChunk, p1 = min(hw, p0 + kChunk);
  const float coef = static_cast<float>(
      detail::cross_entropy_coefficient(stats, n, d.n, sample_w ? sample_w[n] : 1.0, *g_loss, g_per_sample[n]));
  const float* x = logits + n * c * hw;
  float* g = grad + n * c * hw;
  for (int64_t p = p0 + static_cast<int64_t>(threadIdx.x) * V; p < p1; p += kThreads * V) {
    int64_t y[V];
    float cp[V], l[V];
    load_vec<V>(l, lse + n * hw + p);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      y[v] = labels[n * hw + p + v];
      const bool counted = y[v] != d.ignore_index && y[v] >= 0 && y[v] < c;
      cp[v] = counted ? coef * (class_w ? class_w[y[v]] : 1.f) : 0.f;
    }
#pragma unroll 4
    for (int64_t k = 0; k < c; ++k) {
      float xv[V];
      load_vec<V>(xv, x + k * hw + p);
#pragma unroll
      for (int v = 0; v < V; ++v)
        // Uncounted pixels get an exact 0, not 0 * softmax (NaN for infinite logits).
        xv[v] = cp[v] == 0.f ? 0.f : cp[v] * (expf(xv[v] - l[v]) - (k == y[v] ? 1.f : 0.f));
      store_vec<V>(g + k * hw + p, xv);
    }
  }
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    depth_forward_kernel(float* __restrict__ partial, const float* __restrict__ pred, const float* __restrict__ target,
                         DepthLossParams prm) {
  const int64_t n = blockIdx.y, hw = prm.hw;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * kChunk, p1 = min(hw, p0 + kChunk);
  const bool silog = prm.kind == DepthLossKind::silog;
  const float min_pred = static_cast<float>(prm.min_pred);
  float k = 0.f, s1 = 0.f, s2 = 0.f;
  for (int64_t p = p0 + static_cast<int64_t>(threadIdx.x) * V; p < p1; p += kThreads * V) {
    float x[V], t[V];
    load_vec<V>(x, pred + n * hw + p);
    load_vec<V>(t, target + n * hw + p);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      if (!(t[v] > 0.f)) continue;
      k += 1.f;
      if (silog) {
        const float e = logf(max_nan(x[v], min_pred)) - logf(t[v]);
        s1 += e;
        s2 += e * e;
      } else {
        s1 += fabsf(x[v] - t[v]);
      }
    }
  }
  // A block counts at most kChunk pixels: exact in float.
  k = block_sum<kThreads>(k);
  s1 = block_sum<kThreads>(s1);
  s2 = block_sum<kThreads>(s2);
  if (threadIdx.x == 0) {
    float* out = partial + 3 * (n * gridDim.x + blockIdx.x);
    out[0] = k, out[1] = s1, out[2] = s2;
  }
}

__global__ void depth_finalize_kernel(float* loss, float* per_sample, double* stats, const float* partial,
                                      const float* sample_w, DepthLossParams prm, int64_t chunks) {
  const int64_t n = prm.n;
  double total[3] = {0, 0, 0};
  for (int64_t s = 0; s < n; ++s) {
    double row[3];
    for (int r = 0; r < 3; ++r) {
      double acc = 0;
      for (int64_t j = threadIdx.x; j < chunks; j += kThreads) acc += partial[3 * (s * chunks + j) + r];
      row[r] = block_sum<kThreads, double>(acc);
    }
    if (threadIdx.x == 0) {
      const double sw = sample_w ? sample_w[s] : 1.0;
      for (int r = 0; r < 3; ++r) {
        stats[3 * s + r] = row[r];
        total[r] += sw * row[r];
      }
      per_sample[s] = static_cast<float>(detail::depth_loss_value(row, prm));
    }
  }
  if (threadIdx.x == 0) {
    for (int r = 0; r < 3; ++r) stats[3 * n + r] = total[r];
    *loss = static_cast<float>(detail::depth_loss_value(total, prm));
  }
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    depth_backward_kernel(float* __restrict__ grad, const float* __restrict__ pred, const float* __restrict__ target,
                          const double* stats, const float* sample_w, const float* g_loss, const float* g_per_sample,
                          DepthLossParams prm) {
  const int64_t n = blockIdx.y, hw = prm.hw;
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * kChunk, p1 = min(hw, p0 + kChunk);
  double ad, bd;
  detail::depth_loss_sample_coefficients(stats, n, sample_w ? sample_w[n] : 1.0, *g_loss, g_per_sample[n], prm, ad, bd);
  const float a = static_cast<float>(ad), b = static_cast<float>(bd);
  const bool silog = prm.kind == DepthLossKind::silog;
  const float min_pred = static_cast<float>(prm.min_pred);
  for (int64_t p = p0 + static_cast<int64_t>(threadIdx.x) * V; p < p1; p += kThreads * V) {
    float x[V], t[V], g[V];
    load_vec<V>(x, pred + n * hw + p);
    load_vec<V>(t, target + n * hw + p);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      g[v] = 0.f;
      if (!(t[v] > 0.f)) continue;
      if (silog) {
        // d/dx log(max(x, min_pred)) is 1/x above the clamp and 0 below it.
        if (x[v] > min_pred) g[v] = (a * (logf(x[v]) - logf(t[v])) + b) / x[v];
      } else {
        g[v] = x[v] > t[v] ? a : (x[v] < t[v] ? -a : 0.f);
      }
    }
    store_vec<V>(grad + n * hw + p, g);
  }
}

void check_grid(int64_t n, const char* what) {
  MTL_CHECK(n <= 65535, what, ": batch of ", n, " samples is more than the 65535 a launch can hold");
}

}  // namespace

void cross_entropy_forward(float* loss, float* per_sample, float* lse, double* stats, int64_t* bad, const float* logits,
                           Labels labels, const float* class_w, const float* sample_w, const CrossEntropyDims& d,
                           cudaStream_t s) {
  check_grid(d.n, "cross_entropy");
  MTL_CUDA_CHECK(cudaMemsetAsync(bad, 0xff, sizeof(int64_t), s));  // kNoBadLabel
  const int64_t chunks = chunks_of(d.hw);
  Scratch partial(static_cast<size_t>(2 * d.n * chunks) * sizeof(float));
  if (d.n * chunks > 0) {
    dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(d.n));
    if (vec4_ok(d.hw, logits, lse))
      MTL_LAUNCH(ce_forward_kernel<4>, grid, kThreads, 0, s, lse, partial.as<float>(), bad, logits, labels, class_w, d);
    else
      MTL_LAUNCH(ce_forward_kernel<1>, grid, kThreads, 0, s, lse, partial.as<float>(), bad, logits, labels, class_w, d);
    MTL_CUDA_LAUNCH_CHECK();
  }
  MTL_LAUNCH(ce_finalize_kernel, 1, kThreads, 0, s, loss, per_sample, stats, partial.as<float>(), sample_w, d.n,
             chunks);
  MTL_CUDA_LAUNCH_CHECK();
}

void cross_entropy_backward(float* grad, const float* logits, Labels labels, const float* lse, const double* stats,
                            const float* class_w, const float* sample_w, const float* g_loss, const float* g_per_sample,
                            const CrossEntropyDims& d, cudaStream_t s) {
  check_grid(d.n, "cross_entropy backward");
  const int64_t chunks = chunks_of(d.hw);
  if (d.n * chunks * d.c == 0) return;
  dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(d.n));
  if (vec4_ok(d.hw, logits, grad) && aligned16(lse))
    MTL_LAUNCH(ce_backward_kernel<4>, grid, kThreads, 0, s, grad, logits, labels, lse, stats, class_w, sample_w, g_loss,
               g_per_sample, d);
  else
    MTL_LAUNCH(ce_backward_kernel<1>, grid, kThreads, 0, s, grad, logits, labels, lse, stats, class_w, sample_w, g_loss,
               g_per_sample, d);
  MTL_CUDA_LAUNCH_CHECK();
}

void depth_loss_forward(float* loss, float* per_sample, double* stats, const float* pred, const float* target,
                        const float* sample_w, const DepthLossParams& p, cudaStream_t s) {
  check_grid(p.n, "depth loss");
  const int64_t chunks = chunks_of(p.hw);
  Scratch partial(static_cast<size_t>(3 * p.n * chunks) * sizeof(float));
  if (p.n * chunks > 0) {
    dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(p.n));
    if (vec4_ok(p.hw, pred, target))
      MTL_LAUNCH(depth_forward_kernel<4>, grid, kThreads, 0, s, partial.as<float>(), pred, target, p);
    else
      MTL_LAUNCH(depth_forward_kernel<1>, grid, kThreads, 0, s, partial.as<float>(), pred, target, p);
    MTL_CUDA_LAUNCH_CHECK();
  }
  MTL_LAUNCH(depth_finalize_kernel, 1, kThreads, 0, s, loss, per_sample, stats, partial.as<float>(), sample_w, p,
             chunks);
  MTL_CUDA_LAUNCH_CHECK();
}

void depth_loss_backward(float* grad, const float* pred, const float* target, const double* stats,
                         const float* sample_w, const float* g_loss, const float* g_per_sample,
                         const DepthLossParams& p, cudaStream_t s) {
  check_grid(p.n, "depth loss backward");
  const int64_t chunks = chunks_of(p.hw);
  if (p.n * chunks == 0) return;
  dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(p.n));
  if (vec4_ok(p.hw, pred, target) && aligned16(grad))
    MTL_LAUNCH(depth_backward_kernel<4>, grid, kThreads, 0, s, grad, pred, target, stats, sample_w, g_loss,
               g_per_sample, p);
  else
    MTL_LAUNCH(depth_backward_kernel<1>, grid, kThreads, 0, s, grad, pred, target, stats, sample_w, g_loss,
               g_per_sample, p);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
