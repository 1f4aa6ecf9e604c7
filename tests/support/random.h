#pragma once
// Fresh random test inputs: a seed drawn per call from a process-wide counter mixed with the
// clock, printed when a check fails so a failure can be replayed (MTL_TEST_SEED overrides).
#include <cstdint>

#include "core/generator.h"
#include "core/tensor.h"

namespace mtl::test {

uint64_t fresh_seed();
Generator& rng();  // process-wide, seeded once from fresh_seed()
Tensor randn(const Shape& shape, Options o = {});
Tensor rand(const Shape& shape, double lo, double hi, Options o = {});
// float64 CPU leaf that requires grad.
Tensor randn_grad(const Shape& shape);
// Class labels in [0, c), about `ignore_frac` of them replaced by `ignore`.
Tensor random_labels(const Shape& s, int64_t c, double ignore_frac, int64_t ignore, DType dt = DType::i32);

}  // namespace mtl::test
