// The CPU execution layer's own tests: correct block and warp reductions pass under every
// schedule, and planted bugs are caught (a missing barrier, a shuffle whose mask does not match
// the lanes that call it, a read of unwritten shared memory, a write past a shared array, a
// misaligned float4 access).
// First: the kernel language must come before any CUDA header.
#include "tests/simt/kernel_language.h"

#include <cudnn.h>
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/bfloat16.h"
#include "core/cuda_context.h"
#include "core/tensor.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"
#include "ops/ops.h"
#include "tests/simt/runtime.h"
#include "tests/support/schedule.h"

using namespace mtl;
using kernels::cuda::block_sum;
using kernels::cuda::dynamic_shared;
using kernels::cuda::warp_sum;

namespace {

// ---- kernels ---------------------------------------------------------------------------------------

__global__ void block_sum_kernel(float* out, const float* x, int n) {
  float v = 0.f;
  for (int i = threadIdx.x; i < n; i += 256) v += x[i];
  v = block_sum<256>(v);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

__global__ void warp_sum_kernel(float* out, const float* x) {
  const float v = warp_sum(x[blockIdx.x * 32 + threadIdx.x]);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Two sums through one buffer. The planted bug: no barrier between the first sum's read of the
// buffer and the second round's writes to it.
template <bool Barrier>
__global__ void reuse_kernel(float* out, const float* x) {
  __shared__ float buf[64];
  const int t = threadIdx.x;
  buf[t] = x[t];
  __syncthreads();
  if (t == 0) {
    float s = 0.f;
    for (int i = 0; i < 64; ++i) s += buf[i];
    out[0] = s;
  }
  if (Barrier) __syncthreads();
  buf[t] = 2.f * x[t];
  __syncthreads();
  if (t == 0) {
    float s = 0.f;
    for (int i = 0; i < 64; ++i) s += buf[i];
    out[1] = s;
  }
}

// kernels/cuda/reduce.cuh's block_sum without its first barrier: a second call's partial sums
// may overwrite the first call's before warp 0 has read them.
template <int Threads>
__device__ float block_sum_without_barrier(float v) {
  __shared__ float partial[Threads / 32];
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : 0.f;
  if (warp == 0) v = warp_sum(v);
  return v;
}

template <bool Barrier>
__global__ void two_block_sums_kernel(float* out, const float* x) {
  const float a = x[threadIdx.x], b = 2.f * x[threadIdx.x];
  const float sa = Barrier ? block_sum<256>(a) : block_sum_without_barrier<256>(a);
  const float sb = Barrier ? block_sum<256>(b) : block_sum_without_barrier<256>(b);
  if (threadIdx.x == 0) out[0] = sa, out[1] = sb;
}

// The planted bug: the upper half-warp never calls the shuffle that names it in the mask.
__global__ void half_warp_shuffle_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) v += __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// The planted bug: the same, with a barrier after it, so the missing lanes wait elsewhere.
__global__ void half_warp_then_barrier_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) v += __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

// The planted bug: every lane calls with a mask of the lower half-warp.
__global__ void mask_without_caller_kernel(float* out) {
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, static_cast<float>(threadIdx.x), 0);
}

// The planted bug: only the first half of the buffer is written before everyone reads it.
__global__ void unwritten_shared_kernel(float* out, int* iout) {
  __shared__ float f[64];
  __shared__ int k[64];
  const int t = threadIdx.x;
  if (t < 32 || blockIdx.x == 0) f[t] = 1.f, k[t] = 7;
  __syncthreads();
  out[blockIdx.x * 64 + t] = f[t];
  iout[blockIdx.x * 64 + t] = k[t];
}

// The planted bug: 33 threads write a 32-element array.
__global__ void past_the_end_kernel(float* out) {
  __shared__ float small[32];
  small[threadIdx.x] = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = small[0];
}

__global__ void dynamic_past_the_end_kernel(float* out, int n) {
  float* s = dynamic_shared<float>();
  s[threadIdx.x] = 1.f;  // launched with room for n < blockDim.x floats
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[n - 1];
}

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.f;
}

__global__ void dynamic_sum_kernel(float* out, const float* x, int n) {
  float* s = dynamic_shared<float>();
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = x[i];
  __syncthreads();
  if (threadIdx.x == 0) {
    float acc = 0.f;
    for (int i = 0; i < n; ++i) acc += s[i];
    out[0] = acc;
  }
}

// Lane-by-lane results of every warp intrinsic, written as integers.
__global__ void intrinsics_kernel(int* out) {
  const int l = threadIdx.x;
  int* o = out + 8 * l;
  o[0] = __shfl_sync(0xffffffffu, l * 10, 3);
  o[1] = __shfl_up_sync(0xffffffffu, l, 2, 16);
  o[2] = __shfl_down_sync(0xffffffffu, l, 3, 8);
  o[3] = __shfl_xor_sync(0xffffffffu, l, 5);
  o[4] = static_cast<int>(__ballot_sync(0xffffffffu, l % 3 == 0));
  o[5] = static_cast<int>(__match_any_sync(0xffffffffu, l / 8));
  o[6] = __all_sync(0xffffffffu, l < 32) + 2 * __any_sync(0xffffffffu, l == 31);
  __syncwarp();
  o[7] = static_cast<int>(__activemask());
}

__global__ void float4_copy_kernel(float* out, const float* x) {
  reinterpret_cast<float4*>(out)[threadIdx.x] = reinterpret_cast<const float4*>(x)[threadIdx.x];
}

__global__ void order_kernel(int* order, int* next) { order[atomicAdd(next, 1)] = threadIdx.x; }

__global__ void block_order_kernel(int* order, int* next) {
  if (threadIdx.x == 0) order[atomicAdd(next, 1)] = static_cast<int>(blockIdx.x);
}

// Float atomics from many blocks: the sum's rounding depends on the order the blocks run in.
__global__ void float_atomic_sum_kernel(float* sum, const float* x) {
  if (threadIdx.x == 0) atomicAdd(sum, x[blockIdx.x]);
}

__global__ void atomics_kernel(int* out) {
  __shared__ int count, lo, hi;
  if (threadIdx.x == 0) count = 0, lo = 1 << 30, hi = -1;
  __syncthreads();
  atomicAdd(&count, 1);
  atomicMin(&lo, static_cast<int>(threadIdx.x) + 5);
  atomicMax(&hi, static_cast<int>(threadIdx.x) * 2);
  __syncthreads();
  if (threadIdx.x == 0) {
    out[0] = count, out[1] = lo, out[2] = hi;
    out[3] = atomicCAS(&out[4], 0, 9);  // out[4] starts at 0: swapped
    out[5] = atomicExch(&out[6], 3);
  }
}

// ---- helpers ---------------------------------------------------------------------------------------

Options dev_f32() { return Options(DType::f32, Device::cuda()); }
Options dev_i32() { return Options(DType::i32, Device::cuda()); }

// Runs f under the schedule of the given epoch.
template <typename F>
void with_schedule(uint64_t epoch, F&& f) {
  const uint64_t saved = test::g_schedule_epoch.exchange(epoch);
  f();
  test::g_schedule_epoch = saved;
}

// Synchronizes and returns the layer's failure message (empty when the kernels ran clean).
std::string finish() {
  cudaStreamSynchronize(cuda::stream());
  return simt::take_failure();
}

std::vector<double> values(const Tensor& t) {
  cuda::synchronize();
  return t.to_f64_vector();
}

// The order in which the `count` writers of kernel(order, next) ran under the epoch's schedule.
template <typename Kernel>
std::vector<double> recorded_order(Kernel kernel, int grid, int threads, int count, uint64_t epoch) {
  std::vector<double> o;
  with_schedule(epoch, [&] {
    Tensor ord = empty({count}, dev_i32()), next = zeros({1}, dev_i32());
    MTL_LAUNCH(kernel, grid, threads, 0, cuda::stream(), ord.data<int32_t>(), next.data<int32_t>());
    CHECK(finish() == "");
    o = values(ord);
  });
  return o;
}

// One block of `threads` running kernel(out, x) under the epoch's schedule; out[0] and out[1].
template <typename Kernel>
std::vector<double> two_outputs(Kernel kernel, int threads, const Tensor& x, uint64_t epoch) {
  std::vector<double> r;
  with_schedule(epoch, [&] {
    Tensor out = empty({2}, dev_f32());
    MTL_LAUNCH(kernel, 1, threads, 0, cuda::stream(), out.data<float>(), x.data<float>());
    CHECK(finish() == "");
    r = values(out);
  });
  return r;
}

}  // namespace

TEST_SUITE("simt") {
  TEST_CASE("simt: a correct block reduction and a correct warp reduction agree under every schedule") {
    const int n = 1000;
    std::vector<double> x(n);
    double total = 0;
    for (int i = 0; i < n; ++i) x[i] = static_cast<double>((i * 37) % 101), total += x[i];
    Tensor xs = from_vector(x, {n}, dev_f32());
    for (uint64_t epoch : {0, 1, 2, 3}) {
      CAPTURE(epoch);
      with_schedule(epoch, [&] {
        Tensor out = empty({3}, dev_f32()), wout = empty({4}, dev_f32());
        MTL_LAUNCH(block_sum_kernel, 3, 256, 0, cuda::stream(), out.data<float>(), xs.data<float>(), n);
        MTL_LAUNCH(warp_sum_kernel, 4, 32, 0, cuda::stream(), wout.data<float>(), xs.data<float>());
        CHECK(finish() == "");
        for (double v : values(out)) CHECK(v == total);  // integers: exact in any order
        std::vector<double> w = values(wout);
        for (int b = 0; b < 4; ++b) {
          double s = 0;
          for (int i = 0; i < 32; ++i) s += x[b * 32 + i];
          CHECK(w[b] == s);
        }
      });
    }
  }

  TEST_CASE("simt: schedules run a block's threads forward, in reverse and shuffled") {
    auto order = [](uint64_t epoch) { return recorded_order(order_kernel, 1, 96, 96, epoch); };
    std::vector<double> fwd = order(0), rev = order(1), shuf = order(2), shuf2 = order(3);
    auto blocks = [](uint64_t epoch) { return recorded_order(block_order_kernel, 16, 32, 16, epoch); };
    std::vector<double> bf = blocks(0), br = blocks(1), bs = blocks(2);
    for (int i = 0; i < 16; ++i) {
      CHECK(bf[i] == i);
      CHECK(br[i] == 15 - i);
    }
    CHECK(bs != bf);
    CHECK(bs != br);
    for (int i = 0; i < 96; ++i) {
      CHECK(fwd[i] == i);
      CHECK(rev[i] == 95 - i);
    }
    std::vector<double> sorted = shuf;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == fwd);
    CHECK(shuf != fwd);
    CHECK(shuf != rev);
    CHECK(shuf != shuf2);
  }

  TEST_CASE("simt: a missing __syncthreads() before reusing shared memory changes the result between schedules") {
    std::vector<double> x(64);
    for (int i = 0; i < 64; ++i) x[i] = i + 1;
    Tensor xs = from_vector(x, {64}, dev_f32());
    auto run = [&](auto kernel, uint64_t epoch) { return two_outputs(kernel, 64, xs, epoch); };
    // With the barrier: the same bits under every schedule.
    CHECK(run(reuse_kernel<true>, 0) == std::vector<double>{2080, 4160});
    CHECK(run(reuse_kernel<true>, 1) == std::vector<double>{2080, 4160});
    CHECK(run(reuse_kernel<true>, 2) == std::vector<double>{2080, 4160});
    // Without it, thread 0 reads values of the second round when it runs after the others.
    CHECK(run(reuse_kernel<false>, 0) != run(reuse_kernel<false>, 1));
  }

  TEST_CASE("simt: a reduction helper called twice without its barrier gives other bits under another schedule") {
    std::vector<double> x(256);
    for (int i = 0; i < 256; ++i) x[i] = i % 17;
    Tensor xs = from_vector(x, {256}, dev_f32());
    auto run = [&](auto kernel, uint64_t epoch) { return two_outputs(kernel, 256, xs, epoch); };
    for (uint64_t epoch : {0, 1, 2}) CHECK(run(two_block_sums_kernel<true>, epoch) == std::vector<double>{2040, 4080});
    // Warps run ahead to the barrier in turn: in reverse order the last warps write the second
    // sum's partials before warp 0 reads the first's.
    CHECK(run(two_block_sums_kernel<false>, 0) != run(two_block_sums_kernel<false>, 1));
  }

  TEST_CASE("simt: float atomics from many blocks give other bits under another schedule") {
    std::vector<double> x(64);
    for (int i = 0; i < 64; ++i) x[i] = std::ldexp(1.0 + i / 64.0, (i * 7) % 40 - 20);
    Tensor xs = from_vector(x, {64}, dev_f32());
    auto sum = [&](uint64_t epoch) {
      double v = 0;
      with_schedule(epoch, [&] {
        Tensor s = zeros({1}, dev_f32());
        MTL_LAUNCH(float_atomic_sum_kernel, 64, 32, 0, cuda::stream(), s.data<float>(), xs.data<float>());
        CHECK(finish() == "");
        v = values(s)[0];
      });
      return v;
    };
    CHECK(sum(0) != sum(1));
  }

  TEST_CASE("simt: a shuffle whose mask names lanes that do not call it is an error naming kernel, block and lane") {
    Tensor out = empty({64}, dev_f32());
    MTL_LAUNCH(half_warp_shuffle_kernel, 2, 32, 0, cuda::stream(), out.data<float>());
    std::string f = finish();
    CHECK(f.find("half_warp_shuffle_kernel") != std::string::npos);
    CHECK(f.find("block (0, 0, 0)") != std::string::npos);
    CHECK(f.find("(warp 0, lane 15) reads lane 16 through __shfl_down_sync") != std::string::npos);
    CHECK(f.find("does not take part") != std::string::npos);

    MTL_LAUNCH(half_warp_then_barrier_kernel, 1, 32, 0, cuda::stream(), out.data<float>());
    f = finish();
    CHECK(f.find("half_warp_then_barrier_kernel") != std::string::npos);
    CHECK(f.find("waits in __shfl_xor_sync with mask 0xffffffff") != std::string::npos);
    CHECK(f.find("lane 16, in the mask, never arrives") != std::string::npos);
    CHECK(f.find("waits at __syncthreads()") != std::string::npos);

    MTL_LAUNCH(mask_without_caller_kernel, 1, 32, 0, cuda::stream(), out.data<float>());
    f = finish();
    CHECK(f.find("lane 16) calls __shfl_sync") != std::string::npos);
    CHECK(f.find("with mask 0x0000ffff, which does not include its own lane") != std::string::npos);

    // A failure is sticky until taken, as a fault is on a GPU.
    MTL_LAUNCH(mask_without_caller_kernel, 1, 32, 0, cuda::stream(), out.data<float>());
    CHECK(cudaStreamSynchronize(cuda::stream()) == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    CHECK(std::string(cudaGetErrorString(cudaErrorLaunchFailure)).find("mask_without_caller_kernel") !=
          std::string::npos);
    CHECK(simt::take_failure() != "");
    CHECK(cudaGetLastError() == cudaSuccess);
  }

  TEST_CASE("simt: shared memory is poisoned at every block's start, so unwritten elements read as NaN and -1") {
    Tensor out = empty({128}, dev_f32()), iout = empty({128}, dev_i32());
    MTL_LAUNCH(unwritten_shared_kernel, 2, 64, 0, cuda::stream(), out.data<float>(), iout.data<int32_t>());
    CHECK(finish() == "");
    std::vector<double> f = values(out), k = values(iout);
    for (int t = 0; t < 64; ++t) {
      CHECK(f[t] == 1.0);  // block 0 writes everything
      CHECK(k[t] == 7);
    }
    for (int t = 64; t < 128; ++t) {
      // Block 1 writes only the first half; the rest is not what block 0 left there.
      CHECK((t < 96 ? f[t] == 1.0 : std::isnan(f[t])));
      CHECK(k[t] == (t < 96 ? 7 : -1));
    }
  }

  TEST_CASE("simt: a write past the end of shared memory is caught by the guard zones") {
    Tensor out = empty({1}, dev_f32());
    MTL_LAUNCH(past_the_end_kernel, 1, 33, 0, cuda::stream(), out.data<float>());
    std::string f = finish();
    CHECK(f.find("past_the_end_kernel") != std::string::npos);
    CHECK(f.find("a write past the end of the __shared__ variable") != std::string::npos);
    CHECK(f.find("past_the_end_kernel(float*)::small (128 bytes)") != std::string::npos);

    MTL_LAUNCH(dynamic_past_the_end_kernel, 1, 64, 40 * sizeof(float), cuda::stream(), out.data<float>(), 40);
    f = finish();
    CHECK(f.find("a write past the end of the dynamic shared memory (160 bytes)") != std::string::npos);
  }

  TEST_CASE("simt: a misaligned float4 access faults, as on a GPU") {
    Tensor x = zeros({33}, dev_f32()), out = zeros({32}, dev_f32());
    cuda::synchronize();
    MTL_LAUNCH(float4_copy_kernel, 1, 2, 0, cuda::stream(), out.data<float>(), x.data<float>());
    CHECK(finish() == "");  // aligned: fine
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    const pid_t child = fork();
    if (child == 0) {
      dup2(pipe_fds[1], 2);
      MTL_LAUNCH(float4_copy_kernel, 1, 2, 0, cuda::stream(), out.data<float>(), x.data<float>() + 1);
      cudaStreamSynchronize(cuda::stream());
      _exit(0);
    }
    close(pipe_fds[1]);
    std::string err;
    char buf[512];
    for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof(buf))) > 0;) err.append(buf, static_cast<size_t>(n));
    close(pipe_fds[0]);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK(err.find("misaligned address") != std::string::npos);
    CHECK(err.find("float4") != std::string::npos);
  }

  TEST_CASE("simt: threads that reach different __syncthreads() are an error") {
    Tensor out = empty({64}, dev_f32());
    MTL_LAUNCH(divergent_barrier_kernel, 1, 64, 0, cuda::stream(), out.data<float>());
    const std::string f = finish();
    CHECK(f.find("threads of the block reach different __syncthreads()") != std::string::npos);
    CHECK(f.find("test_simt.cpp:") != std::string::npos);
  }

  TEST_CASE("simt: launch limits and the dynamic shared memory opt-in are those of an H100") {
    Tensor out = empty({1}, dev_f32()), x = ones({20000}, dev_f32());
    MTL_LAUNCH(dynamic_sum_kernel, 1, 1025, 0, cuda::stream(), out.data<float>(), x.data<float>(), 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    MTL_LAUNCH(dynamic_sum_kernel, dim3(1, 70000), 32, 0, cuda::stream(), out.data<float>(), x.data<float>(), 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    MTL_LAUNCH(dynamic_sum_kernel, 1, 32, 228 * 1024, cuda::stream(), out.data<float>(), x.data<float>(), 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);

    // Above 48 KiB a kernel needs cudaFuncSetAttribute first.
    const size_t bytes = 20000 * sizeof(float);
    MTL_LAUNCH(dynamic_sum_kernel, 1, 256, bytes, cuda::stream(), out.data<float>(), x.data<float>(), 20000);
    std::string f = finish();
    CHECK(f.find("80000 bytes of dynamic shared memory, more than the default 49152") != std::string::npos);
    CHECK(cudaFuncSetAttribute(dynamic_sum_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 80000) == cudaSuccess);
    MTL_LAUNCH(dynamic_sum_kernel, 1, 256, bytes, cuda::stream(), out.data<float>(), x.data<float>(), 20000);
    CHECK(finish() == "");
    CHECK(values(out)[0] == 20000.0);

    cudaDeviceProp p;
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    CHECK(p.warpSize == 32);
    CHECK(p.major == 9);
    CHECK(p.sharedMemPerBlockOptin == 227 * 1024);
  }

  TEST_CASE("simt: warp intrinsics and atomics compute what CUDA documents") {
    Tensor out = empty({32 * 8}, dev_i32());
    MTL_LAUNCH(intrinsics_kernel, 1, 32, 0, cuda::stream(), out.data<int32_t>());
    REQUIRE(finish() == "");
    std::vector<double> o = values(out);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int l = 0; l < 32; ++l) {
      CAPTURE(l);
      const double* r = &o[8 * l];
      CHECK(r[0] == 30);
      CHECK(r[1] == (l % 16 >= 2 ? l - 2 : l));  // width 16: no lane reads across its half
      CHECK(r[2] == (l % 8 < 5 ? l + 3 : l));    // width 8
      CHECK(r[3] == (l ^ 5));
      CHECK(static_cast<unsigned>(static_cast<int32_t>(r[4])) == ballot);
      CHECK(static_cast<unsigned>(static_cast<int32_t>(r[5])) == 0xffu << (l / 8 * 8));
      CHECK(r[6] == 3);
      CHECK(static_cast<unsigned>(static_cast<int32_t>(r[7])) == 0xffffffffu);
    }
    Tensor a = zeros({7}, dev_i32());
    MTL_LAUNCH(atomics_kernel, 1, 100, 0, cuda::stream(), a.data<int32_t>());
    REQUIRE(finish() == "");
    CHECK(values(a) == std::vector<double>{100, 5, 198, 0, 9, 0, 3});
  }

  TEST_CASE("simt: bfloat16 conversions round to nearest even as CUDA's do") {
    // 1 + 2^-8 is halfway between two bfloat16 values: the even one (1.0) wins; 1 + 3*2^-8 rounds up.
    const float cases[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, 3.4e38f, 1e-40f, 0.0f, -0.0f};
    const uint16_t expected[] = {0x3f80, 0x3f82, 0xc020, 0x7f80, 0x0001, 0x0000, 0x8000};
    for (size_t i = 0; i < std::size(cases); ++i) {
      CAPTURE(cases[i]);
      const __nv_bfloat16 d = __float2bfloat16_rn(cases[i]);
      uint16_t bits;
      std::memcpy(&bits, &d, 2);
      CHECK(bits == expected[i]);
      CHECK(bf16(cases[i]).bits == bits);  // the host type agrees
    }
  }

  TEST_CASE("simt: cuBLAS gemm and cuDNN's convolutions are emulated, other library calls need a GPU") {
    Tensor a = ones({3, 4}, dev_f32()), b = ones({4, 2}, dev_f32());
    const Tensor c = ops::matmul(a, b).to(Device::cpu());
    for (int64_t i = 0; i < c.numel(); ++i) CHECK(c.data<float>()[i] == 4.f);
    Tensor x = ones({1, 2, 5, 5}, dev_f32()), w = ones({3, 2, 3, 3}, dev_f32());
    const Tensor y = ops::conv2d(x, w, Tensor()).to(Device::cpu());
    REQUIRE(y.shape() == Shape{1, 3, 3, 3});
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.data<float>()[i] == 18.f);  // 2 channels x 3 x 3 ones
    const float one = 1.f;
    CHECK_THROWS_WITH_AS(cudnnAddTensor(nullptr, &one, nullptr, nullptr, &one, nullptr, nullptr),
                         doctest::Contains("cudnnAddTensor needs a GPU"), Error);
  }
}
