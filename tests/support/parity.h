#pragma once
// The CUDA-vs-CPU parity harness every `cuda` parity case uses (as ggml's test-backend-ops):
// builds the inputs on each device, runs the op under poisoned allocations on the CPU twin and on
// CUDA, backpropagates the same random upstream gradients, compares every output and every input
// gradient with the case's tolerance, then runs the CUDA side again (under another thread
// schedule on the CPU execution layer) and requires the same bits.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mtl::test {

// |out - ref| <= atol + atol_of_max * max|ref| + rtol * |ref|.
struct Tolerance {
  double atol = 0, rtol = 0, atol_of_max = 0;
};

struct ParityCase {
  std::string name;  // printed with every failure
  // The op's inputs on a device: the same values on every call and for both devices.
  // Floating-point leaves that require grad get their gradients compared.
  std::function<std::vector<Tensor>(Device)> inputs;
  // The op (or ops) under test; returns every output to compare.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;
  std::vector<Tolerance> outputs{};  // per output; the last one repeats
  std::vector<Tolerance> grads{};    // per input that requires grad; the last one repeats
  // Upstream gradients, one per output (undefined: random for outputs that require grad).
  std::vector<Tensor> upstream{};
  // NaN is the right answer where the CPU twin computes NaN (its unwritten elements are not NaN,
  // see core/allocator.h); otherwise a NaN fails.
  bool nan_where_cpu_nan = false;
  // The CUDA side gives the same bits when rerun; false only where a library may choose a
  // non-deterministic algorithm (cuDNN outside deterministic mode).
  bool deterministic = true;
};

void check_parity(const ParityCase& c);

// A copy of t as a leaf that requires grad.
Tensor leaf(const Tensor& t);

// Inputs given as CPU tensors, copied to each device; those that require grad stay leaves that do.
std::function<std::vector<Tensor>(Device)> copies_of(std::vector<Tensor> cpu_inputs);

}  // namespace mtl::test
