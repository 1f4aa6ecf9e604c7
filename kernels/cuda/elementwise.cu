#include "kernels/cuda/launch.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace mtl::kernels::cuda {

namespace {

// Applies f to n elements: float4 loads and stores for the bulk when every pointer is 16-byte
// aligned, scalar code for the tail.
template <typename F>
__global__ void map1(float* out, const float* x, int64_t n, F f, bool vec) {
  if (vec) {
    const int64_t n4 = n / 4;
    MTL_GRID_LOOP(i, n4) {
      float4 v = reinterpret_cast<const float4*>(x)[i];
      reinterpret_cast<float4*>(out)[i] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
    }
    MTL_GRID_LOOP(i, n - n4 * 4) out[n4 * 4 + i] = f(x[n4 * 4 + i]);
  } else {
    MTL_GRID_LOOP(i, n) out[i] = f(x[i]);
  }
}

template <typename F>
__global__ void map2(float* out, const float* a, const float* b, int64_t n, F f, bool vec) {
  if (vec) {
    const int64_t n4 = n / 4;
    MTL_GRID_LOOP(i, n4) {
      float4 u = reinterpret_cast<const float4*>(a)[i];
      float4 v = reinterpret_cast<const float4*>(b)[i];
      reinterpret_cast<float4*>(out)[i] = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
    }
    MTL_GRID_LOOP(i, n - n4 * 4) out[n4 * 4 + i] = f(a[n4 * 4 + i], b[n4 * 4 + i]);
  } else {
    MTL_GRID_LOOP(i, n) out[i] = f(a[i], b[i]);
  }
}

template <typename F>
__global__ void map2_strided(float* out, const float* a, const float* b, Layout l, int64_t n, F f) {
  MTL_GRID_LOOP(i, n) {
    int64_t off[3];
    l.offsets<3>(i, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

bool vec_ok(const void* a, const void* b, const void* c) { return aligned16(a) && aligned16(b) && aligned16(c); }

template <typename F>
void launch1(float* out, const float* x, int64_t n, F f, cudaStream_t s) {
  if (n == 0) return;
  bool vec = vec_ok(out, x, x);
  MTL_LAUNCH(map1, blocks_for(vec ? (n + 3) / 4 : n), kThreads, 0, s, out, x, n, f, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace

void binary(BinaryOp op, float* out, const float* a, const float* b, const Layout& l, bool flat, cudaStream_t s) {
  const int64_t n = l.numel();
  if (n == 0) return;
  auto f = [op] __device__(float x, float y) { return detail::apply_binary(op, x, y); };
  if (flat) {
    bool vec = vec_ok(out, a, b);
    MTL_LAUNCH(map2, blocks_for(vec ? (n + 3) / 4 : n), kThreads, 0, s, out, a, b, n, f, vec);
  } else {
    MTL_LAUNCH(map2_strided, blocks_for(n), kThreads, 0, s, out, a, b, l, n, f);
  }
  MTL_CUDA_LAUNCH_CHECK();
}

void unary(UnaryOp op, float* out, const float* x, int64_t n, cudaStream_t s) {
  launch1(out, x, n, [op] __device__(float v) { return detail::apply_unary(op, v); }, s);
}

void pow_scalar(float* out, const float* x, double p, int64_t n, cudaStream_t s) {
  const float fp = static_cast<float>(p);
  launch1(out, x, n, [fp] __device__(float v) { return powf(v, fp); }, s);
}

void clamp(float* out, const float* x, double lo, double hi, int64_t n, cudaStream_t s) {
  const float l = static_cast<float>(lo), h = static_cast<float>(hi);
  launch1(out, x, n, [l, h] __device__(float v) { return v < l ? l : (v > h ? h : v); }, s);
}

void affine(float* out, const float* x, double a, double b, int64_t n, cudaStream_t s) {
  const float fa = static_cast<float>(a), fb = static_cast<float>(b);
  launch1(out, x, n, [fa, fb] __device__(float v) { return fa * v + fb; }, s);
}

void unary_grad(UnaryGradOp op, float* gx, const float* g, const float* xy, Scalars sc, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  bool vec = vec_ok(gx, g, xy);
  auto f = [op, sc] __device__(float gg, float v) { return detail::apply_unary_grad(op, gg, v, sc); };
  MTL_LAUNCH(map2, blocks_for(vec ? (n + 3) / 4 : n), kThreads, 0, s, gx, g, xy, n, f, vec);
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace mtl::kernels::cuda
