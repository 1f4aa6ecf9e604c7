#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace mtl::kernels::cpu {

template <typename T>
void binary(BinaryOp op, T* out, const T* a, const T* b, const Layout& l, bool flat) {
  const int64_t n = l.numel();
  if (flat) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) out[i] = detail::apply_binary(op, a[i], b[i]);
    return;
  }
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    int64_t off[3];
    l.offsets<3>(i, off);
    out[off[0]] = detail::apply_binary(op, a[off[1]], b[off[2]]);
  }
}

template <typename T>
void unary(UnaryOp op, T* out, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = detail::apply_unary(op, x[i]);
}

template <typename T>
void pow_scalar(T* out, const T* x, double p, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = std::pow(x[i], static_cast<T>(p));
}

template <typename T>
void clamp(T* out, const T* x, double lo, double hi, int64_t n) {
  const T l = static_cast<T>(lo), h = static_cast<T>(hi);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] < l ? l : (x[i] > h ? h : x[i]);
}

template <typename T>
void affine(T* out, const T* x, double a, double b, int64_t n) {
  const T ta = static_cast<T>(a), tb = static_cast<T>(b);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = ta * x[i] + tb;
}

template <typename T>
void unary_grad(UnaryGradOp op, T* gx, const T* g, const T* xy, Scalars s, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) gx[i] = detail::apply_unary_grad(op, g[i], xy[i], s);
}

#define MTL_INSTANTIATE(T)                                                                 \
  template void binary<T>(BinaryOp, T*, const T*, const T*, const Layout&, bool);          \
  template void unary<T>(UnaryOp, T*, const T*, int64_t);                                  \
  template void pow_scalar<T>(T*, const T*, double, int64_t);                              \
  template void clamp<T>(T*, const T*, double, double, int64_t);                           \
  template void affine<T>(T*, const T*, double, double, int64_t);                          \
  template void unary_grad<T>(UnaryGradOp, T*, const T*, const T*, Scalars, int64_t);
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
#undef MTL_INSTANTIATE

}  // namespace mtl::kernels::cpu
