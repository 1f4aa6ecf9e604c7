#pragma once
// Counter-based random numbers (Philox4x32-10): a value depends only on (seed, counter), so
// results do not depend on thread count or device, and the state is two integers to checkpoint.
#include <array>
#include <cstddef>
#include <cstdint>

namespace mtl {

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // counters consumed so far
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed, offset_ = offset; }
  // Reserves `n` counters (each gives four 32-bit words) and returns the first.
  uint64_t reserve(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }

  void fill_uniform(double* out, size_t n, double lo, double hi);  // [lo, hi)
  void fill_normal(double* out, size_t n, double mean, double stddev);
  uint64_t next_u64();
  double next_uniform();  // [0, 1)

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace mtl
