// GroupNorm forward and backward, hand-written (no cuDNN).
//
// Group (n, g) is one contiguous run of M = D * HW values (float or bfloat16, computed in float), so the statistics are
// a plain streaming reduction. Two launch plans, chosen from the shape alone (never from the device, so results are
// bitwise reproducible on any GPU):
// - fused (M <= kFusedMaxElems): one block per (n, g) computes the statistics, then re-reads its
//   group (at most 128 KiB, still in L2) to write y; the backward likewise computes the per-channel
//   sums, the group coefficients and dx in one block. One launch, minimum DRAM traffic.
// - split (larger groups): a group is spread over several blocks that write partial results to the
//   workspace; a small kernel combines them in a fixed order; a row kernel then applies the
//   per-(n, c) transform. The row kernels walk the blocks in reverse, so the second read of x
//   starts with what the first pass read last, which is the part most likely still in L2.
// Statistics use Welford's update in float32 on values shifted by the group's first element: the
// shift is exact for data near it (Sterbenz) and keeps the running mean small, so a large common
// offset (1e4 + N(0,1)) loses no precision to the running mean's rounding. Partial Welford states
// are combined with Chan's formula in a fixed pattern (warp shuffles, then warps in order, then
// blocks in order): no atomics anywhere, every result is deterministic. The backward is offset-safe
// the same way: its per-channel sums are centred, sum(dy * (x - mean)) with the saved mean (x - mean
// is exact for x near the mean), so no large sum(dy * x) has to cancel against mean * sum(dy).
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/group_norm.h"

namespace mtl::kernels::cuda {

namespace {

constexpr int kFusedThreads = 512;
constexpr int64_t kFusedMaxElems = 32768;  // 128 KiB per group: a whole wave of groups fits in L2
constexpr int64_t kChunk = 16384;          // target elements per statistics block in the split plan
constexpr int kTile = 4096;                // elements per block in the row kernels (split plan)
static_assert(kTile % (4 * kThreads) == 0 && kChunk % 4 == 0, "tiles and chunks hold whole float4s");

struct Plan {
  bool fused = true;
  int64_t splits = 1;  // statistics blocks per group (split plan)
  int64_t chunk = 0;   // elements per statistics block, a multiple of 4
  int64_t tiles = 1;   // row-kernel blocks per (n, c) row (split plan)
};

Plan plan_for(const GroupNormDims& d) {
  Plan p;
  const int64_t m = d.group_size();
  p.fused = m <= kFusedMaxElems;
  if (!p.fused) {
    p.splits = (m + kChunk - 1) / kChunk;
    p.chunk = ((m + p.splits - 1) / p.splits + 3) / 4 * 4;
    p.tiles = std::max<int64_t>(1, (d.hw + kTile - 1) / kTile);
  }
  return p;
}

// Threads per channel in the fused backward: the largest power of two that lets every channel of
// the group be reduced at once, at least a warp.
int fused_team_log2(int64_t channels) {
  int log2 = 9;  // 512 = kFusedThreads
  while (log2 > 5 && (int64_t{1} << log2) * channels > kFusedThreads) --log2;
  return log2;
}

// ---- Welford states ---------------------------------------------------------------------------

// Count, mean and sum of squared deviations of a set of (shifted) values. A plain aggregate so it
// can live in __shared__ memory.
struct Welford {
  float mean, m2, n;
};

__device__ __forceinline__ Welford welford_combine(const Welford& a, const Welford& b) {
  const float n = a.n + b.n;
  if (n == 0.f) return a;
  const float delta = b.mean - a.mean, wb = b.n / n;
  return {a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb, n};
}

__device__ __forceinline__ void welford_push(Welford& w, float v) {
  w.n += 1.f;
  const float delta = v - w.mean;
  w.mean += delta / w.n;
  w.m2 += delta * (v - w.mean);
}

// Adds four values at once: their own mean and deviations, merged by Chan's formula (one division
// per four elements instead of four).
__device__ __forceinline__ void welford_push4(Welford& w, float a, float b, float c, float d) {
  const float m = 0.25f * ((a + b) + (c + d));
  const float da = a - m, db = b - m, dc = c - m, dd = d - m;
  const float q = (da * da + db * db) + (dc * dc + dd * dd);
  const float n = w.n + 4.f, f = 4.f / n, delta = m - w.mean;
  w.mean += delta * f;
  w.m2 += q + delta * delta * w.n * f;
  w.n = n;
}

// Found by block_reduce through argument-dependent lookup.
__device__ __forceinline__ Welford shfl_down(const Welford& w, int offset) {
  using ::mtl::kernels::cuda::shfl_down;
  return {shfl_down(w.mean, offset), shfl_down(w.m2, offset), shfl_down(w.n, offset)};
}

struct WelfordCombine {
  __device__ __forceinline__ Welford operator()(const Welford& a, const Welford& b) const {
    return welford_combine(a, b);
  }
};

template <int Threads>
__device__ __forceinline__ Welford block_welford(Welford w) {
  return block_reduce<Threads>(w, WelfordCombine{}, Welford{0.f, 0.f, 0.f});
}

// Adds N (shifted) values: one at a time, or four merged at once.
template <int N>
__device__ __forceinline__ void welford_push(Welford& w, const Packed<N>& v, float k) {
  if constexpr (N == 4)
    welford_push4(w, v[0] - k, v[1] - k, v[2] - k, v[3] - k);
  else
    welford_push(w, v[0] - k);
}

// Elements per access: float4 loads and stores where the data allow it (Vec), floats otherwise.
template <bool Vec>
constexpr int kWidth = Vec ? 4 : 1;

// This thread's Welford state over elements [begin, end) of xg, shifted by k. With Vec, begin and
// end are multiples of 4 and xg is 16-byte aligned. Loads are issued kUnroll at a time so that
// enough bytes are in flight per thread.
template <bool Vec, int Threads, typename T>
__device__ __forceinline__ Welford thread_welford(const T* __restrict__ xg, int64_t begin, int64_t end, float k) {
  constexpr int kUnroll = 4, N = kWidth<Vec>;
  Welford w{0.f, 0.f, 0.f};
  const int64_t e = end / N;
  int64_t i = begin / N + threadIdx.x;
  for (; i + (kUnroll - 1) * Threads < e; i += kUnroll * Threads) {
    Packed<N> v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = load_packed<N>(xg + (i + u * Threads) * N);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) welford_push(w, v[u], k);
  }
  for (; i < e; i += Threads) welford_push(w, load_packed<N>(xg + i * N), k);
  return w;
}

__device__ __forceinline__ float rstd_of(const Welford& w, int64_t m, float eps) {
  const float var = m > 0 ? fmaxf(w.m2 / static_cast<float>(m), 0.f) : 0.f;
  return rsqrtf(var + eps);
}

// The per-(n, c) scale and shift; the same expression in every plan.
__device__ __forceinline__ void fold_affine(const float* __restrict__ gamma, const float* __restrict__ beta, int64_t c,
                                            float mu, float r, float& a, float& b) {
  a = gamma ? gamma[c] * r : r;
  b = fmaf(-mu, a, beta ? beta[c] : 0.f);
}

template <int N>
__device__ __forceinline__ Packed<N> affine(const Packed<N>& v, float a, float b) {
  Packed<N> o;
#pragma unroll
  for (int k = 0; k < N; ++k) o[k] = fmaf(v[k], a, b);
  return o;
}

// dx = a * dy + c1 * x + c2, elementwise.
template <int N>
__device__ __forceinline__ Packed<N> dx_of(const Packed<N>& dy, const Packed<N>& x, float a, float c1, float c2) {
  Packed<N> o;
#pragma unroll
  for (int k = 0; k < N; ++k) o[k] = fmaf(a, dy[k], fmaf(c1, x[k], c2));
  return o;
}

// Adds sum(dy * (x - mu)) to s and sum(dy) to b, each in a fixed pairwise order.
template <int N>
__device__ __forceinline__ void add_centred(float& s, float& b, const Packed<N>& dy, const Packed<N>& x, float mu) {
  Packed<N> p;
#pragma unroll
  for (int k = 0; k < N; ++k) p[k] = dy[k] * (x[k] - mu);
  s += pairwise_sum(p);
  b += pairwise_sum(dy);
}

// ---- forward, fused plan ----------------------------------------------------------------------

template <bool Vec, typename T>
__global__ void __launch_bounds__(kFusedThreads)
    gn_fwd_fused(T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, const T* __restrict__ x,
                 const float* __restrict__ gamma, const float* __restrict__ beta, int d, int hw, int m, int groups,
                 float eps) {
  __shared__ float stats[2];
  const int64_t ng = blockIdx.x;
  const T* xg = x + ng * m;
  T* yg = y + ng * m;
  const float k = m > 0 ? to_float(xg[0]) : 0.f;
  Welford w = block_welford<kFusedThreads>(thread_welford<Vec, kFusedThreads>(xg, 0, m, k));
  if (threadIdx.x == 0) {
    const float mu = k + w.mean, r = rstd_of(w, m, eps);
    mean[ng] = mu;
    rstd[ng] = r;
    stats[0] = mu;
    stats[1] = r;
  }
  __syncthreads();
  const float mu = stats[0], r = stats[1];
  const int64_t c0 = static_cast<int64_t>(ng % groups) * d;
  constexpr int N = kWidth<Vec>;
  for (int i = threadIdx.x; i < m / N; i += kFusedThreads) {
    float a, b;
    fold_affine(gamma, beta, c0 + i / (hw / N), mu, r, a, b);
    store_packed<N>(yg + i * N, affine(load_packed<N>(xg + i * N), a, b));
  }
}

// ---- forward, split plan ----------------------------------------------------------------------

// Block ng*splits + s: Welford state of chunk s of group ng -> part[3 * block] = (mean, m2, n).
template <bool Vec, typename T>
__global__ void __launch_bounds__(kThreads)
    gn_fwd_partial(float* __restrict__ part, const T* __restrict__ x, int64_t m, int64_t splits, int64_t chunk) {
  const int64_t ng = blockIdx.x / splits, s = blockIdx.x % splits;
  const T* xg = x + ng * m;
  const float k = to_float(xg[0]);  // the split plan only runs for m > kFusedMaxElems
  const int64_t begin = std::min(m, s * chunk), end = std::min(m, begin + chunk);
  Welford w = block_welford<kThreads>(thread_welford<Vec, kThreads>(xg, begin, end, k));
  if (threadIdx.x == 0) {
    float* p = part + 3 * static_cast<int64_t>(blockIdx.x);
    p[0] = w.mean;
    p[1] = w.m2;
    p[2] = w.n;
  }
}

// One thread per (n, c) row: combines its group's partial states in chunk order (every row of a
// group does the same arithmetic, so they agree bitwise), writes the row's scale and shift and,
// for the group's first channel, the saved statistics.
template <typename T>
__global__ void gn_fwd_finalize(float* __restrict__ mean, float* __restrict__ rstd, float* __restrict__ ab,
                                const float* __restrict__ part, const T* __restrict__ x,
                                const float* __restrict__ gamma, const float* __restrict__ beta, int64_t rows,
                                int64_t c, int64_t d, int64_t m, int64_t splits, float eps) {
  MTL_GRID_LOOP(row, rows) {
    const int64_t ng = row / d;
    const float* p = part + 3 * ng * splits;
    Welford w{0.f, 0.f, 0.f};
    for (int64_t s = 0; s < splits; ++s) w = welford_combine(w, Welford{p[3 * s], p[3 * s + 1], p[3 * s + 2]});
    const float mu = to_float(x[ng * m]) + w.mean, r = rstd_of(w, m, eps);
    if (row % d == 0) {
      mean[ng] = mu;
      rstd[ng] = r;
    }
    float a, b;
    fold_affine(gamma, beta, row % c, mu, r, a, b);
    ab[2 * row] = a;
    ab[2 * row + 1] = b;
  }
}

// y = x * a + b over one tile of one (n, c) row. Blocks run in reverse (see the top of the file).
template <bool Vec, typename T>
__global__ void __launch_bounds__(kThreads) gn_fwd_apply_rows(T* __restrict__ y, const T* __restrict__ x,
                                                              const float* __restrict__ ab, int64_t hw, int64_t tiles) {
  const int64_t blk = static_cast<int64_t>(gridDim.x) - 1 - blockIdx.x;
  const int64_t row = blk / tiles, t = blk % tiles;
  const float a = ab[2 * row], b = ab[2 * row + 1];
  const T* xr = x + row * hw;
  T* yr = y + row * hw;
  const int64_t begin = t * kTile, end = std::min(hw, begin + kTile);
  constexpr int N = kWidth<Vec>, kPerThread = kTile / N / kThreads;
  const int64_t first = begin / N + threadIdx.x, e = end / N;
  Packed<N> v[kPerThread];
#pragma unroll
  for (int u = 0; u < kPerThread; ++u)
    if (first + u * kThreads < e) v[u] = load_packed<N>(xr + (first + u * kThreads) * N);
#pragma unroll
  for (int u = 0; u < kPerThread; ++u)
    if (first + u * kThreads < e) store_packed<N>(yr + (first + u * kThreads) * N, affine(v[u], a, b));
}

// ---- backward, fused plan ---------------------------------------------------------------------

// One block per (n, g). Phase 1: teams of 2^team_log2 threads reduce one channel each per round,
// giving the centred ds = sum(dy * (x - mean)) and db = sum(dy) per (n, c), written to dsdb.
// Phase 2: the group's coefficients from those sums. Phase 3: dx = a * dy + c1 * x + c2 (skipped
// when dx is null).
template <bool Vec, typename T>
__global__ void __launch_bounds__(kFusedThreads)
    gn_bwd_fused(T* __restrict__ dx, float* dsdb, const T* __restrict__ dy, const T* __restrict__ x,
                 const float* __restrict__ mean, const float* __restrict__ rstd, const float* __restrict__ gamma, int d,
                 int hw, int m, int groups, int team_log2) {
  constexpr int kWarps = kFusedThreads / 32;
  __shared__ float wpart[kWarps][2];
  __shared__ float coef[2];
  constexpr int N = kWidth<Vec>;
  const int64_t ng = blockIdx.x;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int team_size = 1 << team_log2, teams = kFusedThreads >> team_log2, warps_per_team = team_size / 32;
  const int team = tid >> team_log2, tl = tid & (team_size - 1);
  const T* xg = x + ng * m;
  const T* gg = dy + ng * m;
  const float mu = mean[ng];
  const int rounds = (d + teams - 1) / teams;  // the same for every thread: barriers stay uniform
  for (int rnd = 0; rnd < rounds; ++rnd) {
    const int j = rnd * teams + team;
    float s = 0.f, b = 0.f;
    if (j < d) {
      const T* xc = xg + static_cast<int64_t>(j) * hw;
      const T* gc = gg + static_cast<int64_t>(j) * hw;
      for (int i = tl; i < hw / N; i += team_size)
        add_centred(s, b, load_packed<N>(gc + i * N), load_packed<N>(xc + i * N), mu);
    }
    s = warp_sum(s);
    b = warp_sum(b);
    if (lane == 0) wpart[warp][0] = s, wpart[warp][1] = b;
    __syncthreads();
    if (tl == 0 && j < d) {
      float ts = 0.f, tb = 0.f;
      for (int w = team * warps_per_team; w < (team + 1) * warps_per_team; ++w) ts += wpart[w][0], tb += wpart[w][1];
      const int64_t row = ng * d + j;
      dsdb[2 * row] = ts;
      dsdb[2 * row + 1] = tb;
    }
    __syncthreads();  // wpart is rewritten next round; dsdb must be visible to phase 2
  }
  if (!dx) return;
  const int64_t c0 = static_cast<int64_t>(ng % groups) * d;
  float gs = 0.f, gb = 0.f;
  for (int j = tid; j < d; j += kFusedThreads) {
    const int64_t row = ng * d + j;
    const float w = gamma ? gamma[c0 + j] : 1.f;
    gs += w * dsdb[2 * row];
    gb += w * dsdb[2 * row + 1];
  }
  gs = block_sum<kFusedThreads>(gs);
  gb = block_sum<kFusedThreads>(gb);
  const float r = rstd[ng];
  if (tid == 0) {
    const float inv_m = m > 0 ? 1.f / static_cast<float>(m) : 0.f;
    const float c1 = -gs * r * r * r * inv_m;
    coef[0] = c1;
    coef[1] = -c1 * mu - gb * r * inv_m;
  }
  __syncthreads();
  const float c1 = coef[0], c2 = coef[1];
  T* og = dx + ng * m;
  for (int i = tid; i < m / N; i += kFusedThreads) {
    const float a = gamma ? gamma[c0 + i / (hw / N)] * r : r;
    store_packed<N>(og + i * N, dx_of(load_packed<N>(gg + i * N), load_packed<N>(xg + i * N), a, c1, c2));
  }
}

// ---- backward, split plan ---------------------------------------------------------------------

// Block row*tiles + t: sums of dy * (x - mean) and dy over tile t of row (n, c) -> part[2 * block].
template <bool Vec, typename T>
__global__ void __launch_bounds__(kThreads)
    gn_bwd_row_partials(float* __restrict__ part, const T* __restrict__ dy, const T* __restrict__ x,
                        const float* __restrict__ mean, int64_t hw, int64_t d, int64_t tiles) {
  const int64_t blk = blockIdx.x, row = blk / tiles, t = blk % tiles;
  const float mu = mean[row / d];
  const T* xr = x + row * hw;
  const T* gr = dy + row * hw;
  const int64_t begin = t * kTile, end = std::min(hw, begin + kTile);
  float s = 0.f, b = 0.f;
  constexpr int N = kWidth<Vec>, kPerThread = kTile / N / kThreads;
  const int64_t first = begin / N + threadIdx.x, e = end / N;
  Packed<N> u[kPerThread], v[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k)
    if (first + k * kThreads < e)
      u[k] = load_packed<N>(gr + (first + k * kThreads) * N), v[k] = load_packed<N>(xr + (first + k * kThreads) * N);
#pragma unroll
  for (int k = 0; k < kPerThread; ++k)
    if (first + k * kThreads < e) add_centred(s, b, u[k], v[k], mu);
  s = block_sum<kThreads>(s);
  b = block_sum<kThreads>(b);
  if (threadIdx.x == 0) {
    part[2 * blk] = s;
    part[2 * blk + 1] = b;
  }
}

// One warp per (n, g): lane l takes channels l, l+32, ...; each channel's tile partials are summed
// in tile order into dsdb; the gamma-weighted sums meet in a fixed shuffle pattern; lane 0 writes
// the group's coefficients (c1, c2).
__global__ void gn_bwd_group_coeffs(float* __restrict__ dsdb, float* __restrict__ coef, const float* __restrict__ part,
                                    const float* __restrict__ mean, const float* __restrict__ rstd,
                                    const float* __restrict__ gamma, int64_t ngroups_total, int64_t groups, int64_t d,
                                    int64_t tiles, int64_t m) {
  const int64_t ng = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (ng >= ngroups_total) return;  // whole warps only: ng is the same for all 32 lanes
  const int64_t c0 = (ng % groups) * d;
  float gs = 0.f, gb = 0.f;
  for (int64_t j = lane; j < d; j += 32) {
    const int64_t row = ng * d + j;
    const float* p = part + 2 * row * tiles;
    float s = 0.f, b = 0.f;
    for (int64_t t = 0; t < tiles; ++t) s += p[2 * t], b += p[2 * t + 1];
    dsdb[2 * row] = s;
    dsdb[2 * row + 1] = b;
    const float w = gamma ? gamma[c0 + j] : 1.f;
    gs += w * s;
    gb += w * b;
  }
  gs = warp_sum(gs);
  gb = warp_sum(gb);
  if (lane == 0) {
    const float mu = mean[ng], r = rstd[ng], inv_m = 1.f / static_cast<float>(m);
    const float c1 = -gs * r * r * r * inv_m;
    coef[2 * ng] = c1;
    coef[2 * ng + 1] = -c1 * mu - gb * r * inv_m;
  }
}

// dx = a * dy + c1 * x + c2 over one tile of one (n, c) row; blocks in reverse.
template <bool Vec, typename T>
__global__ void __launch_bounds__(kThreads)
    gn_bwd_dx_rows(T* __restrict__ dx, const T* __restrict__ dy, const T* __restrict__ x,
                   const float* __restrict__ rstd, const float* __restrict__ coef, const float* __restrict__ gamma,
                   int64_t hw, int64_t c, int64_t d, int64_t tiles) {
  const int64_t blk = static_cast<int64_t>(gridDim.x) - 1 - blockIdx.x;
  const int64_t row = blk / tiles, t = blk % tiles, ng = row / d;
  const float r = rstd[ng];
  const float a = gamma ? gamma[row % c] * r : r, c1 = coef[2 * ng], c2 = coef[2 * ng + 1];
  const T* xr = x + row * hw;
  const T* gr = dy + row * hw;
  T* orow = dx + row * hw;
  const int64_t begin = t * kTile, end = std::min(hw, begin + kTile);
  constexpr int N = kWidth<Vec>, kPerThread = kTile / N / kThreads;
  const int64_t first = begin / N + threadIdx.x, e = end / N;
  Packed<N> u[kPerThread], v[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k)
    if (first + k * kThreads < e)
      u[k] = load_packed<N>(gr + (first + k * kThreads) * N), v[k] = load_packed<N>(xr + (first + k * kThreads) * N);
#pragma unroll
  for (int k = 0; k < kPerThread; ++k)
    if (first + k * kThreads < e) store_packed<N>(orow + (first + k * kThreads) * N, dx_of(u[k], v[k], a, c1, c2));
}

// ---- parameter gradients ----------------------------------------------------------------------

// One thread per channel, summing over the batch in order: dgamma = sum_n rstd * ds (ds is already
// centred on the group mean), dbeta = sum_n db. Deterministic, and cheap (N * C values).
__global__ void gn_param_grads(float* __restrict__ dgamma, float* __restrict__ dbeta, const float* __restrict__ dsdb,
                               const float* __restrict__ rstd, int64_t n, int64_t c, int64_t d, int64_t groups) {
  MTL_GRID_LOOP(ch, c) {
    float sg = 0.f, sb = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = i * c + ch, ng = i * groups + ch / d;
      sg += dsdb[2 * row] * rstd[ng];
      sb += dsdb[2 * row + 1];
    }
    if (dgamma) dgamma[ch] = sg;
    if (dbeta) dbeta[ch] = sb;
  }
}

unsigned grid_of(int64_t blocks, const char* what) {
  MTL_CHECK(blocks <= INT32_MAX, "group_norm: ", what, " needs ", blocks, " blocks, more than a grid holds");
  return static_cast<unsigned>(blocks);
}

}  // namespace

size_t group_norm_forward_workspace(const GroupNormDims& d) {
  const Plan p = plan_for(d);
  if (p.fused) return 0;
  return static_cast<size_t>(3 * d.n * d.groups * p.splits + 2 * d.n * d.c);
}

size_t group_norm_backward_workspace(const GroupNormDims& d) {
  const Plan p = plan_for(d);
  size_t floats = static_cast<size_t>(2 * d.n * d.c);  // ds, db per (n, c)
  if (!p.fused) floats += static_cast<size_t>(2 * d.n * d.c * p.tiles + 2 * d.n * d.groups);
  return floats;
}

template <typename S>
void group_norm_forward(S* ys, float* mean, float* rstd, const S* xs, const float* gamma, const float* beta,
                        const GroupNormDims& d, double eps, float* workspace, cudaStream_t s) {
  dev_t<S>* y = dev(ys);
  const dev_t<S>* x = dev(xs);
  const int64_t ngroups_total = d.n * d.groups, m = d.group_size(), dch = d.group_channels(), rows = d.n * d.c;
  if (ngroups_total == 0) return;
  const Plan p = plan_for(d);
  const bool vec = d.hw % 4 == 0 && aligned16(x) && aligned16(y);
  const float feps = static_cast<float>(eps);
  if (p.fused) {
    const unsigned grid = grid_of(ngroups_total, "the forward");
    const int di = static_cast<int>(dch), hwi = static_cast<int>(d.hw), mi = static_cast<int>(m),
              gi = static_cast<int>(d.groups);
    dispatch_bool(vec, [&](auto v) {
      MTL_LAUNCH(gn_fwd_fused<decltype(v)::value>, grid, kFusedThreads, 0, s, y, mean, rstd, x, gamma, beta, di, hwi,
                 mi, gi, feps);
    });
    MTL_CUDA_LAUNCH_CHECK();
    return;
  }
  // Plain copies for the launch lambdas: a template's lambda may not capture the unnamed namespace's Plan.
  const int64_t splits = p.splits, chunk = p.chunk, tiles = p.tiles;
  float* part = workspace;
  float* ab = workspace + 3 * ngroups_total * p.splits;
  const unsigned stat_grid = grid_of(ngroups_total * p.splits, "the forward statistics");
  dispatch_bool(vec, [&](auto v) {
    MTL_LAUNCH(gn_fwd_partial<decltype(v)::value>, stat_grid, kThreads, 0, s, part, x, m, splits, chunk);
  });
  MTL_CUDA_LAUNCH_CHECK();
  MTL_LAUNCH(gn_fwd_finalize, blocks_for(rows), kThreads, 0, s, mean, rstd, ab, part, x, gamma, beta, rows, d.c, dch, m,
             p.splits, feps);
  MTL_CUDA_LAUNCH_CHECK();
  const unsigned row_grid = grid_of(rows * p.tiles, "the forward transform");
  dispatch_bool(vec, [&](auto v) {
    MTL_LAUNCH(gn_fwd_apply_rows<decltype(v)::value>, row_grid, kThreads, 0, s, y, x, ab, d.hw, tiles);
  });
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename S>
void group_norm_backward(S* dxs, float* dgamma, float* dbeta, const S* dys, const S* xs, const float* mean,
                         const float* rstd, const float* gamma, const GroupNormDims& d, float* workspace,
                         cudaStream_t s) {
  dev_t<S>* dx = dev(dxs);
  const dev_t<S>*dy = dev(dys), *x = dev(xs);
  const int64_t ngroups_total = d.n * d.groups, m = d.group_size(), dch = d.group_channels(), rows = d.n * d.c;
  const bool params = dgamma || dbeta;
  if (!dx && !params) return;
  const Plan p = plan_for(d);
  const bool vec = d.hw % 4 == 0 && aligned16(x) && aligned16(dy) && (!dx || aligned16(dx));
  float* dsdb = workspace;
  if (ngroups_total > 0 && p.fused) {
    const unsigned grid = grid_of(ngroups_total, "the backward");
    const int di = static_cast<int>(dch), hwi = static_cast<int>(d.hw), mi = static_cast<int>(m),
              gi = static_cast<int>(d.groups), team = fused_team_log2(dch);
    dispatch_bool(vec, [&](auto v) {
      MTL_LAUNCH(gn_bwd_fused<decltype(v)::value>, grid, kFusedThreads, 0, s, dx, dsdb, dy, x, mean, rstd, gamma, di,
                 hwi, mi, gi, team);
    });
    MTL_CUDA_LAUNCH_CHECK();
  } else if (ngroups_total > 0) {
    const int64_t tiles = p.tiles;  // a plain copy for the launch lambdas, as in the forward
    float* part = dsdb + 2 * rows;
    float* coef = part + 2 * rows * p.tiles;
    const unsigned row_grid = grid_of(rows * p.tiles, "the backward sums");
    dispatch_bool(vec, [&](auto v) {
      MTL_LAUNCH(gn_bwd_row_partials<decltype(v)::value>, row_grid, kThreads, 0, s, part, dy, x, mean, d.hw, dch,
                 tiles);
    });
    MTL_CUDA_LAUNCH_CHECK();
    const unsigned coef_grid = grid_of((ngroups_total * 32 + kThreads - 1) / kThreads, "the backward coefficients");
    MTL_LAUNCH(gn_bwd_group_coeffs, coef_grid, kThreads, 0, s, dsdb, coef, part, mean, rstd, gamma, ngroups_total,
               d.groups, dch, p.tiles, m);
    MTL_CUDA_LAUNCH_CHECK();
    if (dx) {
      dispatch_bool(vec, [&](auto v) {
        MTL_LAUNCH(gn_bwd_dx_rows<decltype(v)::value>, row_grid, kThreads, 0, s, dx, dy, x, rstd, coef, gamma, d.hw,
                   d.c, dch, tiles);
      });
      MTL_CUDA_LAUNCH_CHECK();
    }
  }
  if (params && d.c > 0) {
    MTL_LAUNCH(gn_param_grads, blocks_for(d.c), kThreads, 0, s, dgamma, dbeta, dsdb, rstd, d.n, d.c, dch, d.groups);
    MTL_CUDA_LAUNCH_CHECK();
  }
}

#define MTL_GROUP_NORM(T)                                                                                             \
  template void group_norm_forward<T>(T*, float*, float*, const T*, const float*, const float*, const GroupNormDims&, \
                                      double, float*, cudaStream_t);                                                  \
  template void group_norm_backward<T>(T*, float*, float*, const T*, const T*, const float*, const float*,            \
                                       const float*, const GroupNormDims&, float*, cudaStream_t);
MTL_GROUP_NORM(float)
MTL_GROUP_NORM(bf16)
#undef MTL_GROUP_NORM

}  // namespace mtl::kernels::cuda
