#include "ops/softmax.h"

#include "kernels/softmax.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

kernels::SoftmaxDims dims_of(const Shape& s, int d) {
  kernels::SoftmaxDims k;
  for (int i = 0; i < d; ++i) k.outer *= s[i];
  k.n = s[d];
  k.inner = detail::trailing_numel(s, static_cast<size_t>(d) + 1);
  return k;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  detail::check_defined(x, "softmax", "x");
  detail::check_float(x, "softmax");
  MTL_CHECK(x.dim() >= 1, "softmax: expected at least one dimension, got ", x.describe());
  const int d = wrap_dim(dim, x.dim(), "softmax dim");
  const kernels::SoftmaxDims k = dims_of(x.shape(), d);
  const Tensor xs = contiguous(x.detach());
  Tensor y = empty(x.shape(), x.options());
  if (x.numel() > 0) {
    if (x.is_cuda()) {
      kernels::cuda::softmax_forward(y.data<float>(), xs.data<float>(), k, cuda::stream());
    } else {
      detail::dispatch_cpu_float(x, "softmax", [&](auto t) {
        using T = decltype(t);
        kernels::cpu::softmax_forward<T>(y.data<T>(), xs.data<T>(), k);
      });
    }
  }
  const Tensor saved = y.detach();
  record("SoftmaxBackward", {x}, {y}, [saved, k](const std::vector<Tensor>& g) {
    const Tensor gy = contiguous(g[0]);
    Tensor gx = empty(saved.shape(), saved.options());
    if (saved.numel() > 0) {
      if (saved.is_cuda()) {
        kernels::cuda::softmax_backward(gx.data<float>(), gy.data<float>(), saved.data<float>(), k, cuda::stream());
      } else {
        detail::dispatch_cpu_float(saved, "softmax backward", [&](auto t) {
          using T = decltype(t);
          kernels::cpu::softmax_backward<T>(gx.data<T>(), gy.data<T>(), saved.data<T>(), k);
        });
      }
    }
    return std::vector<Tensor>{gx};
  });
  return y;
}

}  // namespace mtl::ops
