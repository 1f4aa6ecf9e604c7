#pragma once
// Tolerance comparison for tests: |out - ref| <= atol + rtol*|ref| elementwise, the worst element
// reported. A NaN in `out` fails, unless the test passes a mask of the elements where NaN is the
// right answer (there `out` must be NaN); infinities match equal infinities.
#include <string>

#include "core/tensor.h"

namespace mtl::test {

struct Comparison {
  bool ok = true;
  int64_t worst_index = -1;  // flat row-major index of the worst violation
  double worst_out = 0, worst_ref = 0, worst_excess = 0;
  std::string message;  // empty when ok
};

// nan_expected: undefined, or a tensor of out's shape, non-zero where out must be NaN.
Comparison compare(const Tensor& out, const Tensor& ref, double atol, double rtol,
                   const Tensor& nan_expected = Tensor());

// ||out - ref|| / ||ref|| (2-norms, in double); infinity on a shape mismatch or a NaN in `out`.
// For whole networks, where float32 rounding is amplified unevenly across elements.
double relative_error(const Tensor& out, const Tensor& ref);

// max |t| over the elements (0 for an empty tensor), in double.
double max_abs(const Tensor& t);

}  // namespace mtl::test

// doctest assertion: CHECK_CLOSE(out, ref, atol, rtol) prints the worst element on failure.
#define CHECK_CLOSE(out, ref, atol, rtol)                                      \
  do {                                                                         \
    auto mtl_cmp_ = ::mtl::test::compare((out), (ref), (atol), (rtol));        \
    INFO(mtl_cmp_.message);                                                    \
    CHECK(mtl_cmp_.ok);                                                        \
  } while (0)

// The same where NaN is expected at the non-zero elements of `nan_expected` (and only there).
#define CHECK_CLOSE_NAN_AT(out, ref, atol, rtol, nan_expected)                          \
  do {                                                                                  \
    auto mtl_cmp_ = ::mtl::test::compare((out), (ref), (atol), (rtol), (nan_expected)); \
    INFO(mtl_cmp_.message);                                                             \
    CHECK(mtl_cmp_.ok);                                                                 \
  } while (0)

// Bit-for-bit equality of values (NaN never equals).
#define CHECK_BITWISE(out, ref) CHECK_CLOSE(out, ref, 0.0, 0.0)
