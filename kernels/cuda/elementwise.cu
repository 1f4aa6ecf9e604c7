#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/packed.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace mtl::kernels::cuda {

namespace {

// Applies f to n elements of storage type T (float or __nv_bfloat16), in float: Packed<4>
// accesses for the bulk when every pointer is 16-byte aligned, single elements for the tail.
template <typename I, typename T, typename F>
__global__ void map1(T* out, const T* x, I n, F f, bool vec) {
  if (vec) {
    const I n4 = n / 4;
    MTL_GRID_LOOP_AS(I, i, n4) {
      const Packed<4> v = load_packed<4>(x + i * 4);
      Packed<4> o;
#pragma unroll
      for (int k = 0; k < 4; ++k) o[k] = f(v[k]);
      store_packed<4>(out + i * 4, o);
    }
    MTL_GRID_LOOP_AS(I, i, n - n4 * 4) out[n4 * 4 + i] = from_float<T>(f(to_float(x[n4 * 4 + i])));
  } else {
    MTL_GRID_LOOP_AS(I, i, n) out[i] = from_float<T>(f(to_float(x[i])));
  }
}

template <typename I, typename T, typename F>
__global__ void map2(T* out, const T* a, const T* b, I n, F f, bool vec) {
  if (vec) {
    const I n4 = n / 4;
    MTL_GRID_LOOP_AS(I, i, n4) {
      const Packed<4> u = load_packed<4>(a + i * 4), v = load_packed<4>(b + i * 4);
      Packed<4> o;
#pragma unroll
      for (int k = 0; k < 4; ++k) o[k] = f(u[k], v[k]);
      store_packed<4>(out + i * 4, o);
    }
    MTL_GRID_LOOP_AS(I, i, n - n4 * 4) {
      out[n4 * 4 + i] = from_float<T>(f(to_float(a[n4 * 4 + i]), to_float(b[n4 * 4 + i])));
    }
  } else {
    MTL_GRID_LOOP_AS(I, i, n) out[i] = from_float<T>(f(to_float(a[i]), to_float(b[i])));
  }
}

template <typename I, typename T, typename F>
__global__ void map2_strided(T* out, const T* a, const T* b, Layout l, I n, F f) {
  MTL_GRID_LOOP_AS(I, i, n) {
    I off[3];
    l.offsets<3, I>(i, off);
    out[off[0]] = from_float<T>(f(to_float(a[off[1]]), to_float(b[off[2]])));
  }
}

bool vec_ok(const void* a, const void* b, const void* c) { return aligned16(a) && aligned16(b) && aligned16(c); }

template <typename T, typename F>
void launch1(T* out, const T* x, int64_t n, F f, cudaStream_t s) {
  if (n == 0) return;
  const bool vec = vec_ok(out, x, x);
  dispatch_index(n, [&](auto idx) {
    using I = decltype(idx);
    MTL_LAUNCH(map1, blocks_for(vec ? (n + 3) / 4 : n), kThreads, 0, s, dev(out), dev(x), static_cast<I>(n), f, vec);
  });
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T, typename F>
void launch2(T* out, const T* a, const T* b, int64_t n, F f, cudaStream_t s) {
  if (n == 0) return;
  const bool vec = vec_ok(out, a, b);
  dispatch_index(n, [&](auto idx) {
    using I = decltype(idx);
    MTL_LAUNCH(map2, blocks_for(vec ? (n + 3) / 4 : n), kThreads, 0, s, dev(out), dev(a), dev(b), static_cast<I>(n), f,
               vec);
  });
  MTL_CUDA_LAUNCH_CHECK();
}

}  // namespace

template <typename T>
void binary(BinaryOp op, T* out, const T* a, const T* b, const Layout& l, bool flat, cudaStream_t s) {
  const int64_t n = l.numel();
  if (n == 0) return;
  auto f = [op] __device__(float x, float y) { return detail::apply_binary(op, x, y); };
  if (flat) return launch2(out, a, b, n, f, s);
  dispatch_index(l.extent(), [&](auto idx) {
    using I = decltype(idx);
    MTL_LAUNCH(map2_strided, blocks_for(n), kThreads, 0, s, dev(out), dev(a), dev(b), l, static_cast<I>(n), f);
  });
  MTL_CUDA_LAUNCH_CHECK();
}

template <typename T>
void unary(UnaryOp op, T* out, const T* x, int64_t n, cudaStream_t s) {
  launch1(
      out, x, n, [op] __device__(float v) { return detail::apply_unary(op, v); }, s);
}

template <typename T>
void pow_scalar(T* out, const T* x, double p, int64_t n, cudaStream_t s) {
  const float fp = static_cast<float>(p);
  launch1(
      out, x, n, [fp] __device__(float v) { return powf(v, fp); }, s);
}

template <typename T>
void clamp(T* out, const T* x, double lo, double hi, int64_t n, cudaStream_t s) {
  const float l = static_cast<float>(lo), h = static_cast<float>(hi);
  launch1(
      out, x, n, [l, h] __device__(float v) { return v < l ? l : (v > h ? h : v); }, s);
}

template <typename T>
void affine(T* out, const T* x, double a, double b, int64_t n, cudaStream_t s) {
  const float fa = static_cast<float>(a), fb = static_cast<float>(b);
  launch1(
      out, x, n, [fa, fb] __device__(float v) { return fa * v + fb; }, s);
}

template <typename T>
void unary_grad(UnaryGradOp op, T* gx, const T* g, const T* xy, Scalars sc, int64_t n, cudaStream_t s) {
  launch2(
      gx, g, xy, n, [op, sc] __device__(float gg, float v) { return detail::apply_unary_grad(op, gg, v, sc); }, s);
}

#define MTL_ELEMENTWISE(T)                                                                      \
  template void binary<T>(BinaryOp, T*, const T*, const T*, const Layout&, bool, cudaStream_t); \
  template void unary<T>(UnaryOp, T*, const T*, int64_t, cudaStream_t);                         \
  template void pow_scalar<T>(T*, const T*, double, int64_t, cudaStream_t);                     \
  template void clamp<T>(T*, const T*, double, double, int64_t, cudaStream_t);                  \
  template void affine<T>(T*, const T*, double, double, int64_t, cudaStream_t);                 \
  template void unary_grad<T>(UnaryGradOp, T*, const T*, const T*, Scalars, int64_t, cudaStream_t);
MTL_ELEMENTWISE(float)
MTL_ELEMENTWISE(bf16)
#undef MTL_ELEMENTWISE

}  // namespace mtl::kernels::cuda
