#include "ops/reduce.h"

#include <algorithm>

#include "kernels/reduce.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/elementwise.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

// Sum of x over `dims` with scale, output shaped with kept dims as 1 (keepdim layout).
Tensor reduce_sum(const Tensor& x, std::vector<int64_t> dims, double scale_by_count, Shape& keep_shape) {
  const int64_t nd = x.dim();
  std::vector<bool> red(static_cast<size_t>(nd), false);
  if (dims.empty()) std::fill(red.begin(), red.end(), true);
  for (int64_t d : dims) {
    int w = wrap_dim(d, nd, "reduction dim");
    MTL_CHECK(!red[w] || dims.empty(), "sum: dimension ", w, " given twice");
    red[w] = true;
  }
  keep_shape = x.shape();
  int64_t k = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (red[d]) k *= x.shape()[d], keep_shape[d] = 1;
  // Reduced dimensions must form one contiguous block [first, last]; otherwise move them last.
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < nd; ++d)
    if (red[d]) {
      if (first < 0) first = d;
      last = d;
    }
  Tensor src = contiguous(x.detach());
  bool block = first >= 0;
  for (int64_t d = first; block && d <= last; ++d) block = red[d];
  int64_t outer = 1, inner = 1;
  if (first < 0) {  // a 0-d tensor or nothing reduced
    k = 1;
    outer = x.numel();
  } else if (block) {
    for (int64_t d = 0; d < first; ++d) outer *= x.shape()[d];
    for (int64_t d = last + 1; d < nd; ++d) inner *= x.shape()[d];
  } else {
    std::vector<int64_t> perm;
    for (int64_t d = 0; d < nd; ++d)
      if (!red[d]) perm.push_back(d), outer *= x.shape()[d];
    for (int64_t d = 0; d < nd; ++d)
      if (red[d]) perm.push_back(d);
    src = permute(src, perm);
  }
  const double scale = scale_by_count ? 1.0 / static_cast<double>(std::max<int64_t>(k, 1)) : 1.0;
  Tensor out = empty(keep_shape, x.options());
  if (x.is_cuda()) {
    detail::dispatch_cuda_float(x, "sum", [&](auto t) {
      using T = decltype(t);
      kernels::cuda::sum_mid<T>(out.data<T>(), src.data<T>(), outer, k, inner, scale, cuda::stream());
    });
  } else {
    detail::Bf16AsF32 emulate({&src}, {&out});
    detail::dispatch_cpu_float(src, "sum", [&](auto t) {
      using T = decltype(t);
      kernels::cpu::sum_mid<T>(out.data<T>(), src.data<T>(), outer, k, inner, scale);
    });
    emulate.finish();
  }
  return out;
}

Tensor reduce(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_mean) {
  detail::check_defined(x, is_mean ? "mean" : "sum", "x");
  detail::check_float_or_bf16(x, is_mean ? "mean" : "sum");
  Shape keep_shape;
  Tensor out = reduce_sum(x, dims, is_mean, keep_shape);
  Shape final_shape;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool reduced =
        keep_shape[d] == 1 &&
        (dims.empty() || std::any_of(dims.begin(), dims.end(), [&](int64_t e) { return wrap_dim(e, x.dim()) == d; }));
    if (!reduced || keepdim) final_shape.push_back(keep_shape[d]);
  }
  out = out.view(final_shape);
  const Shape in_shape = x.shape();
  double count = static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(out.numel(), 1));
  record(is_mean ? "MeanBackward" : "SumBackward", {x}, {out},
         [in_shape, keep_shape, is_mean, count](const std::vector<Tensor>& g) {
           Tensor gk = g[0].view(keep_shape);
           Tensor gx = broadcast_to(gk, in_shape);
           if (is_mean) gx = mul_scalar(gx, 1.0 / count);
           return std::vector<Tensor>{gx};
         });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduce(x, dims, keepdim, false); }
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduce(x, dims, keepdim, true); }

}  // namespace mtl::ops
