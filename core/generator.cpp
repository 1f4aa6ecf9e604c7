#include "core/generator.h"

#include <cmath>

namespace mtl {

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t hi, uint64_t lo) {
  std::array<uint32_t, 4> c = {static_cast<uint32_t>(lo), static_cast<uint32_t>(lo >> 32),
                               static_cast<uint32_t>(hi), static_cast<uint32_t>(hi >> 32)};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = 0xD2511F53ull * c[0];
    uint64_t p1 = 0xCD9E8D57ull * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<uint32_t>(p0)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

namespace {
// 53 random bits from two words -> [0, 1).
double to_unit(uint32_t a, uint32_t b) {
  uint64_t x = (static_cast<uint64_t>(a) << 21) ^ (b >> 11);
  return static_cast<double>(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}
}  // namespace

void Generator::fill_uniform(double* out, size_t n, double lo, double hi) {
  uint64_t base = reserve((n + 1) / 2);
  for (size_t i = 0; i < n; i += 2) {
    auto r = philox4x32(seed_, 0, base + i / 2);
    out[i] = lo + (hi - lo) * to_unit(r[0], r[1]);
    if (i + 1 < n) out[i + 1] = lo + (hi - lo) * to_unit(r[2], r[3]);
  }
}

void Generator::fill_normal(double* out, size_t n, double mean, double stddev) {
  uint64_t base = reserve((n + 1) / 2);
  for (size_t i = 0; i < n; i += 2) {
    auto r = philox4x32(seed_, 0, base + i / 2);
    double u1 = 1.0 - to_unit(r[0], r[1]);  // (0, 1]
    double u2 = to_unit(r[2], r[3]);
    double rad = std::sqrt(-2.0 * std::log(u1));
    out[i] = mean + stddev * rad * std::cos(2 * M_PI * u2);
    if (i + 1 < n) out[i + 1] = mean + stddev * rad * std::sin(2 * M_PI * u2);
  }
}

uint64_t Generator::next_u64() {
  auto r = philox4x32(seed_, 0, reserve(1));
  return (static_cast<uint64_t>(r[0]) << 32) | r[1];
}

double Generator::next_uniform() {
  auto r = philox4x32(seed_, 0, reserve(1));
  return to_unit(r[0], r[1]);
}

}  // namespace mtl
