#pragma once
// Tolerance comparison for tests: |out - ref| <= atol + rtol*|ref| elementwise, NaN/Inf in `out`
// fail (unless `ref` has the same non-finite value there), and the worst element is reported.
#include <string>

#include "core/tensor.h"

namespace mtl::test {

struct Comparison {
  bool ok = true;
  int64_t worst_index = -1;  // flat row-major index of the worst violation
  double worst_out = 0, worst_ref = 0, worst_excess = 0;
  std::string message;  // empty when ok
};

Comparison compare(const Tensor& out, const Tensor& ref, double atol, double rtol);

// ||out - ref|| / ||ref|| (2-norms, in double); infinity on a shape mismatch or a NaN in `out`.
// For whole networks, where float32 rounding is amplified unevenly across elements.
double relative_error(const Tensor& out, const Tensor& ref);

}  // namespace mtl::test

// doctest assertion: CHECK_CLOSE(out, ref, atol, rtol) prints the worst element on failure.
#define CHECK_CLOSE(out, ref, atol, rtol)                                      \
  do {                                                                         \
    auto mtl_cmp_ = ::mtl::test::compare((out), (ref), (atol), (rtol));        \
    INFO(mtl_cmp_.message);                                                    \
    CHECK(mtl_cmp_.ok);                                                        \
  } while (0)
