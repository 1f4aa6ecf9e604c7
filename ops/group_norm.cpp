#include "ops/group_norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/group_norm.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

void check_param(const Tensor& p, const Tensor& x, int64_t channels, const char* arg) {
  if (!p.defined()) return;
  MTL_CHECK(p.device() == x.device() && p.dtype() == detail::param_dtype(x), "group_norm: ", arg, " ", p.describe(),
            " must be ", dtype_name(detail::param_dtype(x)), " on ", x.device().str(), " for input x ", x.describe());
  MTL_CHECK(p.dim() == 1 && p.size(0) == channels, "group_norm: ", arg, " must have shape [", channels,
            "] (one value per channel of x ", x.describe(), "), got ", p.describe());
}

// Device scratch for the CUDA launchers; undefined when they need none.
Tensor cuda_workspace(const Tensor& like, size_t floats) {
  if (floats == 0) return Tensor();
  return empty({static_cast<int64_t>(floats)}, Options(DType::f32, like.device()));
}

std::vector<Tensor> group_norm_backward(const Tensor& grad_y, const Tensor& xs, const Tensor& ws, const Tensor& mean,
                                        const Tensor& rstd, const kernels::GroupNormDims& d, bool need_x, bool need_w,
                                        bool need_b) {
  Tensor dy = contiguous(grad_y), xv = xs;
  const Options popts = mean.options();
  Tensor dx = need_x ? empty(xs.shape(), xs.options()) : Tensor();
  Tensor dw = need_w ? empty({d.c}, popts) : Tensor();
  Tensor db = need_b ? empty({d.c}, popts) : Tensor();
  detail::run_kernel(
      "group_norm backward", {&xv, &dy}, {&dx},
      [&](auto t) {
        using T = decltype(t);
        Tensor work = cuda_workspace(xs, kernels::cuda::group_norm_backward_workspace(d));
        kernels::cuda::group_norm_backward<T>(detail::data_or_null<T>(dx), detail::data_or_null<float>(dw),
                                              detail::data_or_null<float>(db), dy.data<T>(), xv.data<T>(),
                                              mean.data<float>(), rstd.data<float>(), detail::data_or_null<float>(ws),
                                              d, detail::data_or_null<float>(work), cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::group_norm_backward<T>(detail::data_or_null<T>(dx), detail::data_or_null<T>(dw),
                                             detail::data_or_null<T>(db), dy.data<T>(), xv.data<T>(), mean.data<T>(),
                                             rstd.data<T>(), detail::data_or_null<T>(ws), d);
      });
  return {dx, dw, db};
}

}  // namespace

GroupNormOutput group_norm_with_stats(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                                      double eps) {
  detail::check_defined(x, "group_norm", "x");
  detail::check_float_or_bf16(x, "group_norm");
  MTL_CHECK(x.dim() >= 2, "group_norm: expected x of shape [N, C, *], got ", x.describe());
  const int64_t n = x.size(0), c = x.size(1);
  MTL_CHECK(groups >= 1, "group_norm: groups must be at least 1, got ", groups);
  MTL_CHECK(c % groups == 0, "group_norm: ", c, " channels cannot be split into ", groups, " equal groups (x is ",
            x.describe(), ")");
  check_param(weight, x, c, "weight");
  check_param(bias, x, c, "bias");
  MTL_CHECK(std::isfinite(eps) && eps >= 0, "group_norm: eps must be finite and >= 0, got ", eps);
  int64_t hw = 1;
  for (int64_t k = 2; k < x.dim(); ++k) hw *= x.size(k);
  const kernels::GroupNormDims d{n, c, hw, groups};

  Tensor xs = contiguous(x.detach());
  Tensor ws = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor bs = bias.defined() ? contiguous(bias.detach()) : Tensor();
  const Options popts(detail::param_dtype(x), x.device());
  GroupNormOutput out{empty(x.shape(), x.options()), empty({n, groups}, popts), empty({n, groups}, popts)};
  Tensor xv = xs;
  detail::run_kernel(
      "group_norm", {&xv}, {&out.y},
      [&](auto t) {
        using T = decltype(t);
        Tensor work = cuda_workspace(x, kernels::cuda::group_norm_forward_workspace(d));
        kernels::cuda::group_norm_forward<T>(out.y.data<T>(), out.mean.data<float>(), out.rstd.data<float>(),
                                             xv.data<T>(), detail::data_or_null<float>(ws),
                                             detail::data_or_null<float>(bs), d, eps, detail::data_or_null<float>(work),
                                             cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::group_norm_forward<T>(out.y.data<T>(), out.mean.data<T>(), out.rstd.data<T>(), xv.data<T>(),
                                            detail::data_or_null<T>(ws), detail::data_or_null<T>(bs), d, eps);
      });

  const bool need_x = x.requires_grad();
  const bool need_w = weight.defined() && weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  Tensor mean = out.mean, rstd = out.rstd;  // fresh tensors without history: safe to keep
  record("GroupNormBackward", {x, weight, bias}, {out.y},
         [xs, ws, mean, rstd, d, need_x, need_w, need_b](const std::vector<Tensor>& g) {
           return group_norm_backward(g[0], xs, ws, mean, rstd, d, need_x, need_w, need_b);
         });
  return out;
}

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, double eps) {
  return group_norm_with_stats(x, groups, weight, bias, eps).y;
}

}  // namespace mtl::ops
