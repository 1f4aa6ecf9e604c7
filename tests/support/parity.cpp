#include "tests/support/parity.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/cuda_context.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/random.h"
#include "tests/support/schedule.h"

namespace mtl::test {

namespace {

bool is_float(DType d) { return d == DType::f32 || d == DType::f64 || d == DType::bf16; }

struct Results {
  std::vector<Tensor> outputs, grads;  // on the CPU
};

Results run_on(const ParityCase& c, Device device, const std::vector<Tensor>& upstream) {
  std::vector<Tensor> in = c.inputs(device);
  std::vector<Tensor> out = c.run(in);
  std::vector<Tensor> roots, seeds;
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].defined() && out[i].requires_grad() && upstream[i].defined()) {
      roots.push_back(out[i]);
      seeds.push_back(upstream[i].to(device));
    }
  if (!roots.empty()) autograd::backward(roots, seeds);
  Results r;
  for (const Tensor& t : out) r.outputs.push_back(t.defined() ? t.detach().cpu() : Tensor());
  for (const Tensor& t : in)
    if (t.defined() && t.requires_grad()) r.grads.push_back(t.grad().defined() ? t.grad().cpu() : Tensor());
  cuda::synchronize();
  return r;
}

// Non-zero where t is NaN.
Tensor nan_mask(const Tensor& t) {
  std::vector<double> v = t.to_f64_vector();
  for (double& x : v) x = std::isnan(x) ? 1.0 : 0.0;
  return from_vector(v, t.shape(), DType::u8);
}

Tolerance pick(const std::vector<Tolerance>& ts, size_t i) {
  return ts.empty() ? Tolerance{} : ts[std::min(i, ts.size() - 1)];
}

void compare_one(const std::string& what, const Tensor& gpu, const Tensor& cpu, Tolerance t, bool nan_where_cpu_nan) {
  INFO(what);
  REQUIRE(gpu.defined() == cpu.defined());
  if (!gpu.defined()) return;
  const double atol = t.atol + t.atol_of_max * max_abs(cpu);  // max_abs skips NaN
  CHECK_CLOSE_NAN_AT(gpu, cpu, atol, t.rtol, nan_where_cpu_nan ? nan_mask(cpu) : Tensor());
}

}  // namespace

Tensor leaf(const Tensor& t) {
  Tensor l = t.detach().clone();
  l.set_requires_grad(true);
  return l;
}

std::function<std::vector<Tensor>(Device)> copies_of(std::vector<Tensor> cpu_inputs) {
  return [cpu_inputs](Device d) {
    std::vector<Tensor> out;
    for (const Tensor& t : cpu_inputs) {
      if (!t.defined()) {
        out.push_back(Tensor());
        continue;
      }
      Tensor c = t.detach().to(d).clone();
      if (t.requires_grad()) c.set_requires_grad(true);
      out.push_back(c);
    }
    return out;
  };
}

void check_parity(const ParityCase& c) {
  INFO("parity case: ", c.name);
  PoisonGuard poison;
  // Upstream gradients from the CPU outputs' shapes: the same values for both devices.
  std::vector<Tensor> probe = c.run(c.inputs(Device::cpu()));
  std::vector<Tensor> upstream(probe.size());
  for (size_t i = 0; i < probe.size(); ++i) {
    if (i < c.upstream.size() && c.upstream[i].defined())
      upstream[i] = c.upstream[i];
    else if (probe[i].defined() && probe[i].requires_grad() && is_float(probe[i].dtype()))
      upstream[i] = randn(probe[i].shape(), probe[i].dtype());
  }
  const Results cpu = run_on(c, Device::cpu(), upstream);
  const Results gpu = run_on(c, Device::cuda(), upstream);
  REQUIRE(gpu.outputs.size() == cpu.outputs.size());
  REQUIRE(gpu.grads.size() == cpu.grads.size());
  for (size_t i = 0; i < cpu.outputs.size(); ++i)
    compare_one("output " + std::to_string(i), gpu.outputs[i], cpu.outputs[i], pick(c.outputs, i), c.nan_where_cpu_nan);
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    compare_one("gradient of input " + std::to_string(i), gpu.grads[i], cpu.grads[i], pick(c.grads, i),
                c.nan_where_cpu_nan);

  // The same bits again: on the CPU execution layer under the next thread schedule.
  if (!c.deterministic) return;
  g_schedule_epoch.fetch_add(1);
  const Results again = run_on(c, Device::cuda(), upstream);
  for (size_t i = 0; i < gpu.outputs.size(); ++i) {
    INFO("rerun (another thread schedule on the CPU execution layer): output ", i);
    if (gpu.outputs[i].defined())
      CHECK_CLOSE_NAN_AT(again.outputs[i], gpu.outputs[i], 0.0, 0.0, nan_mask(gpu.outputs[i]));
  }
  for (size_t i = 0; i < gpu.grads.size(); ++i) {
    INFO("rerun (another thread schedule on the CPU execution layer): gradient of input ", i);
    if (gpu.grads[i].defined()) CHECK_CLOSE_NAN_AT(again.grads[i], gpu.grads[i], 0.0, 0.0, nan_mask(gpu.grads[i]));
  }
}

}  // namespace mtl::test
