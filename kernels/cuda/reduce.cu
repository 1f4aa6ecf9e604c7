#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/reduce.h"

namespace mtl::kernels::cuda {

namespace {

// inner == 1: one block per row.
template <typename T>
__global__ void sum_rows(T* out, const T* x, int64_t k, float scale) {
  const T* row = x + blockIdx.x * k;
  float acc = 0.f;
  for (int64_t j = threadIdx.x; j < k; j += kThreads) acc += to_float(row[j]);
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = from_float<T>(acc * scale);
}

// inner > 1: a thread per output column, reading coalesced rows. Long columns are split over
// blockDim.y threads whose partials are combined in a fixed order.
constexpr int kColX = 32, kColY = 8;
template <typename T>
__global__ void sum_cols(T* out, const T* x, int64_t outer, int64_t k, int64_t inner, float scale) {
  __shared__ float part[kColY][kColX];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  const int64_t o = blockIdx.y;
  float acc = 0.f;
  if (col < inner)
    for (int64_t j = threadIdx.y; j < k; j += kColY) acc += to_float(x[(o * k + j) * inner + col]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < inner) {
    float s = 0.f;
    for (int r = 0; r < kColY; ++r) s += part[r][threadIdx.x];
    out[o * inner + col] = from_float<T>(s * scale);
  }
}

}  // namespace

template <typename T>
void sum_mid(T* out, const T* x, int64_t outer, int64_t k, int64_t inner, double scale, cudaStream_t s) {
  if (outer * inner == 0) return;
  MTL_CHECK(outer <= 65535 * 1024, "sum: too many rows (", outer, ")");
  if (inner == 1) {
    MTL_LAUNCH(sum_rows, static_cast<unsigned>(outer), kThreads, 0, s, dev(out), dev(x), k, static_cast<float>(scale));
  } else {
    MTL_CHECK(outer <= 65535, "sum: outer extent ", outer, " too large");
    dim3 grid(static_cast<unsigned>((inner + kColX - 1) / kColX), static_cast<unsigned>(outer));
    MTL_LAUNCH(sum_cols, grid, dim3(kColX, kColY), 0, s, dev(out), dev(x), outer, k, inner, static_cast<float>(scale));
  }
  MTL_CUDA_LAUNCH_CHECK();
}

template void sum_mid<float>(float*, const float*, int64_t, int64_t, int64_t, double, cudaStream_t);
template void sum_mid<bf16>(bf16*, const bf16*, int64_t, int64_t, int64_t, double, cudaStream_t);

}  // namespace mtl::kernels::cuda
