// Allocators: CPU alignment and poisoning; the CUDA caching allocator's reuse and statistics.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>

#include "core/allocator.h"
#include "core/tensor.h"
#include "tests/support/gpu.h"

using namespace mtl;

TEST_CASE("cpu allocations are 64-byte aligned") {
  for (size_t n : {1, 3, 64, 1000, 1 << 20}) {
    void* p = cpu_allocate(n);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    cpu_deallocate(p);
  }
}

TEST_CASE("poisoned CPU allocations read as a huge finite value, not as the CUDA side's NaN") {
  test::PoisonGuard g;
  Tensor t = empty({5});
  for (double v : t.to_f64_vector()) CHECK(static_cast<float>(v) == std::bit_cast<float>(0x7f7f7f7fu));
  Tensor i = empty({3}, DType::i32);
  for (double v : i.to_f64_vector()) CHECK(v == 0x7f7f7f7f);
}

TEST_CASE("cuda size bins") {
  CHECK(cuda::round_size(1) == 512);
  CHECK(cuda::round_size(513) == 1024);
  CHECK(cuda::round_size((1 << 20) + 1) == (2u << 20));
  CHECK(cuda::round_size(3u << 20) == (4u << 20));
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda: freed blocks are reused and statistics add up") {
    MTL_REQUIRE_CUDA();
    cuda::empty_cache();
    cuda::AllocatorStats s0 = cuda::allocator_stats();
    void* p = cuda::allocate(3000);
    cuda::AllocatorStats s1 = cuda::allocator_stats();
    CHECK(s1.allocated == s0.allocated + 3072);
    CHECK(s1.device_mallocs == s0.device_mallocs + 1);
    cuda::deallocate(p);
    void* q = cuda::allocate(2900);  // same 3072-byte bin
    cuda::AllocatorStats s2 = cuda::allocator_stats();
    CHECK(q == p);
    CHECK(s2.device_mallocs == s1.device_mallocs);
    CHECK(s2.cache_hits == s1.cache_hits + 1);
    CHECK(s2.peak_allocated >= s2.allocated);
    cuda::deallocate(q);
    CHECK(cuda::allocator_stats().reserved >= 3072);
    cuda::empty_cache();
    CHECK(cuda::allocator_stats().reserved == s0.reserved);
    // With caching off every free goes back to the driver.
    cuda::set_caching(false);
    void* r = cuda::allocate(4096);
    cuda::deallocate(r);
    CHECK(cuda::allocator_stats().reserved == s0.reserved);
    cuda::set_caching(true);
  }

  TEST_CASE("cuda: poisoned device allocations read as NaN and -1") {
    MTL_REQUIRE_CUDA();
    test::PoisonGuard g;
    for (double v : empty({5}, Options(DType::f32, Device::cuda())).to_f64_vector()) CHECK(std::isnan(v));
    for (double v : empty({3}, Options(DType::i32, Device::cuda())).to_f64_vector()) CHECK(v == -1);
  }
}
