#include "tests/support/random.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace mtl::test {

uint64_t fresh_seed() {
  if (const char* s = std::getenv("MTL_TEST_SEED")) return std::stoull(s);
  return static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
}

Generator& rng() {
  static Generator* g = [] {
    uint64_t seed = fresh_seed();
    std::printf("[mtl-test] random seed %llu (set MTL_TEST_SEED to replay)\n", static_cast<unsigned long long>(seed));
    return new Generator(seed);
  }();
  return *g;
}

Tensor randn(const Shape& shape, Options o) { return normal(shape, 0.0, 1.0, rng(), o); }
Tensor rand(const Shape& shape, double lo, double hi, Options o) { return uniform(shape, lo, hi, rng(), o); }
Tensor randn_grad(const Shape& shape) {
  Tensor t = randn(shape, DType::f64);
  t.set_requires_grad(true);
  return t;
}

Tensor random_labels(const Shape& s, int64_t c, double ignore_frac, int64_t ignore, DType dt) {
  std::vector<double> v(static_cast<size_t>(numel(s)));
  for (double& e : v)
    e = rng().next_uniform() < ignore_frac ? static_cast<double>(ignore) : static_cast<double>(rng().next_u64() % c);
  return from_vector(v, s, dt);
}

}  // namespace mtl::test
