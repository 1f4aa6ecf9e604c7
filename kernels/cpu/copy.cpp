#include <cstring>

#include "core/error.h"
#include "kernels/copy.h"

namespace mtl::kernels::cpu {

namespace {
template <typename E>
void copy_elems(E* dst, const E* src, const Layout& l) {
  const int64_t n = l.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    int64_t off[2];
    l.offsets<2>(i, off);
    dst[off[0]] = src[off[1]];
  }
}

template <typename D, typename S>
void cast_loop(D* d, const S* s, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<D, bf16>)
      d[i] = bf16(static_cast<float>(s[i]));
    else if constexpr (std::is_same_v<S, bf16>)
      d[i] = static_cast<D>(static_cast<float>(s[i]));
    else
      d[i] = static_cast<D>(s[i]);
  }
}

template <typename S>
void cast_from(void* dst, DType dt, const S* s, int64_t n) {
  switch (dt) {
    case DType::f32: return cast_loop(static_cast<float*>(dst), s, n);
    case DType::f64: return cast_loop(static_cast<double*>(dst), s, n);
    case DType::bf16: return cast_loop(static_cast<bf16*>(dst), s, n);
    case DType::i32: return cast_loop(static_cast<int32_t*>(dst), s, n);
    case DType::i64: return cast_loop(static_cast<int64_t*>(dst), s, n);
    case DType::u8: return cast_loop(static_cast<uint8_t*>(dst), s, n);
    case DType::b8: return cast_loop(static_cast<bool*>(dst), s, n);
  }
}
}  // namespace

void copy_strided(void* dst, const void* src, size_t es, const Layout& l) {
  switch (es) {
    case 1: return copy_elems(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), l);
    case 2: return copy_elems(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), l);
    case 4: return copy_elems(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), l);
    case 8: return copy_elems(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), l);
  }
  MTL_ASSERT(false, "copy_strided: element size ", es);
}

void cast(void* dst, DType dt, const void* src, DType st, int64_t n) {
  switch (st) {
    case DType::f32: return cast_from(dst, dt, static_cast<const float*>(src), n);
    case DType::f64: return cast_from(dst, dt, static_cast<const double*>(src), n);
    case DType::bf16: return cast_from(dst, dt, static_cast<const bf16*>(src), n);
    case DType::i32: return cast_from(dst, dt, static_cast<const int32_t*>(src), n);
    case DType::i64: return cast_from(dst, dt, static_cast<const int64_t*>(src), n);
    case DType::u8: return cast_from(dst, dt, static_cast<const uint8_t*>(src), n);
    case DType::b8: return cast_from(dst, dt, static_cast<const bool*>(src), n);
  }
}

template <typename T>
void fill(T* out, T value, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = value;
}
template void fill<float>(float*, float, int64_t);
template void fill<double>(double*, double, int64_t);
template void fill<int32_t>(int32_t*, int32_t, int64_t);
template void fill<int64_t>(int64_t*, int64_t, int64_t);
template void fill<uint8_t>(uint8_t*, uint8_t, int64_t);

}  // namespace mtl::kernels::cpu
