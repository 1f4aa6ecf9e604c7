#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/loss_util.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/metrics.h"

namespace mtl::kernels::cuda {

namespace {

// Confusion matrix: each block counts a chunk of pixels into histograms in shared memory, then
// adds its non-zero bins to the int64 counts with integer atomics (exact, so deterministic).
// Two 16-bit counters share a 32-bit word so that 256 classes (65536 bins) fit in 128 KiB; a
// block counts at most kMaxChunk pixels, so a counter cannot carry into its neighbour. Warps
// write to `copies` separate histograms, and lanes of a warp that hit the same bin (neighbouring
// pixels usually share their target and prediction) add once through __match_any_sync.
constexpr int kHistThreads = 512;
constexpr int64_t kMaxChunk = 65532;  // <= 65535 and a multiple of 4
constexpr unsigned kSkip = 0xffffffffu;
constexpr int64_t kMaxClasses = 256;

template <bool kFromLogits, int V>
__global__ void __launch_bounds__(kHistThreads)
    confusion_kernel(unsigned long long* counts, int64_t* bad, const float* __restrict__ logits, Labels pred,
                     Labels target, ConfusionDims d, int64_t chunk, int copies, int words) {
  uint32_t* hist = dynamic_shared<uint32_t>();
  for (int i = threadIdx.x; i < copies * words; i += kHistThreads) hist[i] = 0;
  __syncthreads();
  const int64_t c = d.c, hw = d.hw, total = d.n * hw;
  const int lane = threadIdx.x % 32;
  uint32_t* mine = hist + (threadIdx.x / 32 % copies) * words;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * chunk, i1 = min(total, i0 + chunk);
  // Every thread runs the same number of rounds, so whole warps reach __match_any_sync.
  for (int64_t base = i0; base < i1; base += kHistThreads * V) {
    const int64_t i = base + static_cast<int64_t>(threadIdx.x) * V;
    unsigned key[V];
#pragma unroll
    for (int v = 0; v < V; ++v) key[v] = kSkip;
    if (i < i1) {  // V = 4: i1 is a multiple of 4, so all four pixels are in range
      int64_t p[V];
      if constexpr (kFromLogits) {
        // hw % 4 == 0 for V = 4, so the four pixels belong to one sample.
        const int64_t n = i / hw;
        const float* x = logits + n * c * hw + (i - n * hw);
        float best[V];
#pragma unroll
        for (int v = 0; v < V; ++v) best[v] = -INFINITY, p[v] = 0;
#pragma unroll 4
        for (int64_t k = 0; k < c; ++k) {
          float xv[V];
          load_vec<V>(xv, x + k * hw);
#pragma unroll
          for (int v = 0; v < V; ++v)
            if (xv[v] > best[v]) best[v] = xv[v], p[v] = k;
        }
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) p[v] = pred[i + v];
      }
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t t = target[i + v];
        if (t == d.ignore_index) continue;
        if (t < 0 || t >= c || p[v] < 0 || p[v] >= c) {
          record_bad(bad, i + v);
          continue;
        }
        key[v] = static_cast<unsigned>(t * c + p[v]);
      }
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const unsigned same = __match_any_sync(0xffffffffu, key[v]);
      if (key[v] != kSkip && lane == __ffs(same) - 1)
        atomicAdd(&mine[key[v] >> 1], static_cast<uint32_t>(__popc(same)) << ((key[v] & 1u) * 16));
    }
  }
  __syncthreads();
  for (int64_t b = threadIdx.x; b < c * c; b += kHistThreads) {
    uint32_t sum = 0;
    for (int r = 0; r < copies; ++r) sum += (hist[r * words + (b >> 1)] >> ((b & 1) * 16)) & 0xffffu;
    if (sum) atomicAdd(&counts[b], static_cast<unsigned long long>(sum));
  }
}

struct HistConfig {
  int64_t chunk;
  int copies, words;
  size_t smem;
};

int max_optin_smem() {
  static const int bytes = [] {
    int dev = 0, v = 0;
    MTL_CUDA_CHECK(cudaGetDevice(&dev));
    MTL_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return v;
  }();
  return bytes;
}

HistConfig hist_config(const ConfusionDims& d) {
  MTL_CHECK(d.c >= 1 && d.c <= kMaxClasses, "confusion matrix: ", d.c, " classes; the CUDA kernel supports 1 to ",
            kMaxClasses);
  HistConfig h;
  const int64_t bins = d.c * d.c, total = d.n * d.hw;
  h.words = static_cast<int>((bins + 1) / 2);
  // Up to 8 copies within the default 48 KiB; a single copy may need the opt-in limit.
  h.copies = 8;
  while (h.copies > 1 && static_cast<size_t>(h.copies) * h.words * 4 > 48 * 1024) h.copies /= 2;
  h.smem = static_cast<size_t>(h.copies) * h.words * 4;
  MTL_CHECK(h.smem <= static_cast<size_t>(max_optin_smem()), "confusion matrix: ", d.c, " classes need ", h.smem,
            " bytes of shared memory per block; this device allows ", max_optin_smem());
  // Enough pixels per block to pay for clearing and flushing the histogram, few enough to keep
  // every SM busy; a multiple of 4 for the vector path.
  const int64_t want = std::max<int64_t>({4096, bins / 2, (total + 2047) / 2048});
  h.chunk = std::min<int64_t>(kMaxChunk, (want + 3) / 4 * 4);
  return h;
}

template <bool kFromLogits, int V>
void launch_confusion(int64_t* counts, int64_t* bad, const float* logits, Labels pred, Labels target,
                      const ConfusionDims& d, cudaStream_t s) {
  MTL_CUDA_CHECK(cudaMemsetAsync(bad, 0xff, sizeof(int64_t), s));  // kNoBadLabel
  const HistConfig h = hist_config(d);
  const int64_t total = d.n * d.hw;
  if (total == 0) return;
  auto kernel = confusion_kernel<kFromLogits, V>;
  if (h.smem > 48 * 1024)
    MTL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(h.smem)));
  const int64_t blocks = (total + h.chunk - 1) / h.chunk;
  MTL_CHECK(blocks <= 0x7fffffff, "confusion matrix: ", total, " pixels is too many for one launch");
  MTL_LAUNCH(kernel, static_cast<unsigned>(blocks), kHistThreads, h.smem, s,
             reinterpret_cast<unsigned long long*>(counts), bad, logits, pred, target, d, h.chunk, h.copies, h.words);
  MTL_CUDA_LAUNCH_CHECK();
}

// Depth metrics: fixed chunks of pixels per block, float partials per block (counts as integers),
// then one block adds them in order, in double, to the running sums.
constexpr int64_t kDepthChunk = 2048;

template <int V>
__global__ void __launch_bounds__(kThreads)
    depth_metrics_kernel(float* __restrict__ psum, unsigned* __restrict__ pcount, const float* __restrict__ pred,
                         const float* __restrict__ target, int64_t n, float min_pred) {
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kDepthChunk, i1 = min(n, i0 + kDepthChunk);
  float s[kNumDepthSums] = {};
  unsigned c[kNumDepthCounts] = {};
  for (int64_t i = i0 + static_cast<int64_t>(threadIdx.x) * V; i < i1; i += kThreads * V) {
    float x[V], t[V];
    load_vec<V>(x, pred + i);
    load_vec<V>(t, target + i);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      if (!(t[v] > 0.f)) continue;
      const float xc = max_nan(x[v], min_pred), e = xc - t[v], le = logf(xc) - logf(t[v]);
      s[kAbsRel] += fabsf(e) / t[v];
      s[kSqRel] += e * e / t[v];
      s[kSqErr] += e * e;
      s[kSqLogErr] += le * le;
      const float r = fmaxf(xc / t[v], t[v] / xc);
      ++c[kValid];
      c[kDelta1] += r < static_cast<float>(kDelta1Threshold);
      c[kDelta2] += r < static_cast<float>(kDelta2Threshold);
      c[kDelta3] += r < static_cast<float>(kDelta3Threshold);
    }
  }
  for (int r = 0; r < kNumDepthSums; ++r) {
    const float v = block_sum<kThreads>(s[r]);
    if (threadIdx.x == 0) psum[blockIdx.x * kNumDepthSums + r] = v;
  }
  // Counts of at most kDepthChunk are exact in float.
  for (int r = 0; r < kNumDepthCounts; ++r) {
    const float v = block_sum<kThreads>(static_cast<float>(c[r]));
    if (threadIdx.x == 0) pcount[blockIdx.x * kNumDepthCounts + r] = static_cast<unsigned>(v);
  }
}

__global__ void depth_metrics_finalize(double* sums, int64_t* counts, const float* psum, const unsigned* pcount,
                                       int64_t blocks) {
  for (int r = 0; r < kNumDepthSums; ++r) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < blocks; j += kThreads) acc += psum[j * kNumDepthSums + r];
    acc = block_sum<kThreads, double>(acc);
    if (threadIdx.x == 0) sums[r] += acc;
  }
  for (int r = 0; r < kNumDepthCounts; ++r) {
    // Integer sums: exact in double up to 2^53 pixels per call.
    double acc = 0;
    for (int64_t j = threadIdx.x; j < blocks; j += kThreads) acc += pcount[j * kNumDepthCounts + r];
    acc = block_sum<kThreads, double>(acc);
    if (threadIdx.x == 0) counts[r] += static_cast<int64_t>(acc);
  }
}

}  // namespace

void confusion_from_logits(int64_t* counts, int64_t* bad, const float* logits, Labels target, const ConfusionDims& d,
                           cudaStream_t s) {
  if (d.hw % 4 == 0 && aligned16(logits))
    launch_confusion<true, 4>(counts, bad, logits, Labels{}, target, d, s);
  else
    launch_confusion<true, 1>(counts, bad, logits, Labels{}, target, d, s);
}

void confusion_from_labels(int64_t* counts, int64_t* bad, Labels pred, Labels target, const ConfusionDims& d,
                           cudaStream_t s) {
  launch_confusion<false, 1>(counts, bad, nullptr, pred, target, d, s);
}

void depth_metrics_accumulate(double* sums, int64_t* counts, const float* pred, const float* target, int64_t n,
                              double min_pred, cudaStream_t s) {
  if (n == 0) return;
  const int64_t blocks = (n + kDepthChunk - 1) / kDepthChunk;
  // Chunks start at multiples of 4; the vector path also needs the end to be one.
  MTL_CHECK(blocks <= 0x7fffffff, "depth metrics: ", n, " pixels is too many for one launch");
  Scratch psum(static_cast<size_t>(blocks * kNumDepthSums) * sizeof(float));
  Scratch pcount(static_cast<size_t>(blocks * kNumDepthCounts) * sizeof(unsigned));
  const float lo = static_cast<float>(min_pred);
  if (n % 4 == 0 && aligned16(pred) && aligned16(target))
    MTL_LAUNCH(depth_metrics_kernel<4>, static_cast<unsigned>(blocks), kThreads, 0, s, psum.as<float>(),
               pcount.as<unsigned>(), pred, target, n, lo);
  else
    MTL_LAUNCH(depth_metrics_kernel<1>, static_cast<unsigned>(blocks), kThreads, 0, s, psum.as<float>(),
               pcount.as<unsigned>(), pred, target, n, lo);
  MTL_CUDA_LAUNCH_CHECK();
  MTL_LAUNCH(depth_metrics_finalize, 1, kThreads, 0, s, sums, counts, psum.as<float>(), pcount.as<unsigned>(), blocks);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
