#include "ops/sync_batch_norm.h"

#include "kernels/sync_batch_norm.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

void check_channel_vector(const Tensor& t, const Tensor& x, const char* arg) {
  if (!t.defined()) return;
  detail::check_same(x, t, "sync_batch_norm2d");
  MTL_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "sync_batch_norm2d: ", arg, " ", t.describe(), " must have shape [",
            x.size(1), "] (the channels of x ", x.describe(), ")");
}

}  // namespace

Tensor sync_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, const ChannelSum& sum, double momentum, double eps) {
  detail::check_defined(x, "sync_batch_norm2d", "x");
  detail::check_float(x, "sync_batch_norm2d");
  MTL_CHECK(x.dim() == 4, "sync_batch_norm2d: input x must be 4-D [N, C, H, W], got ", x.describe());
  MTL_CHECK(sum, "sync_batch_norm2d: no function to sum the statistics over the processes");
  check_channel_vector(weight, x, "weight");
  check_channel_vector(bias, x, "bias");
  check_channel_vector(running_mean, x, "running_mean");
  check_channel_vector(running_var, x, "running_var");
  for (const Tensor* t : {&running_mean, &running_var})
    MTL_CHECK(!t->defined() || (t->is_contiguous() && !t->requires_grad()), "sync_batch_norm2d: running statistic ",
              t->describe(), " must be a contiguous buffer that does not require grad");
  MTL_CHECK(running_mean.defined() == running_var.defined(),
            "sync_batch_norm2d: running_mean and running_var must both be defined or both undefined");
  MTL_CHECK(eps >= 0, "sync_batch_norm2d: eps must be non-negative, got ", eps);
  MTL_CHECK(momentum >= 0 && momentum <= 1, "sync_batch_norm2d: momentum must be in [0, 1], got ", momentum);
  const kernels::BatchNormShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  MTL_CHECK(s.n * s.hw > 1, "sync_batch_norm2d: expected more than 1 value per channel when training, got x ",
            x.describe());

  Tensor xs = contiguous(x.detach());
  Tensor ws = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor bs = bias.defined() ? contiguous(bias.detach()) : Tensor();
  // (sum x, sum x^2) per channel and the count, summed over the processes in one call.
  Tensor sums = empty({2 * s.c + 1}, Options(DType::f64, x.device()));
  Tensor mean = empty({s.c}, x.options()), invstd = empty({s.c}, x.options());
  Tensor out = empty(x.shape(), x.options());
  if (x.is_cuda()) {
    kernels::cuda::sync_batch_norm_sums(s, xs.data<float>(), sums.data<double>(), cuda::stream());
    sum(sums);
    kernels::cuda::sync_batch_norm_stats(s.c, sums.data<double>(), eps, momentum, mean.data<float>(),
                                         invstd.data<float>(), detail::data_or_null<float>(running_mean),
                                         detail::data_or_null<float>(running_var), cuda::stream());
    kernels::cuda::batch_norm_apply(s, xs.data<float>(), mean.data<float>(), invstd.data<float>(),
                                    detail::data_or_null<float>(ws), detail::data_or_null<float>(bs), out.data<float>(),
                                    cuda::stream());
  } else {
    detail::dispatch_cpu_float(x, "sync_batch_norm2d", [&](auto t) {
      using T = decltype(t);
      kernels::cpu::sync_batch_norm_sums<T>(s, xs.data<T>(), sums.data<double>());
      sum(sums);
      kernels::cpu::sync_batch_norm_stats<T>(s.c, sums.data<double>(), eps, momentum, mean.data<T>(), invstd.data<T>(),
                                             detail::data_or_null<T>(running_mean),
                                             detail::data_or_null<T>(running_var));
      kernels::cpu::batch_norm_apply<T>(s, xs.data<T>(), mean.data<T>(), invstd.data<T>(), detail::data_or_null<T>(ws),
                                        detail::data_or_null<T>(bs), out.data<T>());
    });
  }

  const bool need_x = x.requires_grad();
  const bool need_w = weight.defined() && weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  record("SyncBatchNorm2dBackward", {x, weight, bias}, {out},
         [s, xs, ws, mean, invstd, sums, sum, need_x, need_w, need_b](const std::vector<Tensor>& grads) {
           Tensor gy = contiguous(grads[0]);
           const Options opts = gy.options();
           // (sum gy, sum gy * xhat) per channel: this process's, then summed for the input gradient.
           Tensor local = empty({2 * s.c}, opts);
           if (opts.device.is_cuda())
             kernels::cuda::batch_norm_backward_reduce(s, gy.data<float>(), xs.data<float>(), mean.data<float>(),
                                                       invstd.data<float>(), local.data<float>(),
                                                       local.data<float>() + s.c, cuda::stream());
           else
             detail::dispatch_cpu_float(gy, "sync_batch_norm2d backward", [&](auto t) {
               using T = decltype(t);
               kernels::cpu::batch_norm_backward_reduce<T>(s, gy.data<T>(), xs.data<T>(), mean.data<T>(),
                                                           invstd.data<T>(), local.data<T>(), local.data<T>() + s.c);
             });
           const Tensor gw = need_w ? local.narrow(0, s.c, s.c).clone() : Tensor();
           const Tensor gb = need_b ? local.narrow(0, 0, s.c).clone() : Tensor();
           Tensor gx;
           if (need_x) {
             sum(local);
             gx = empty(xs.shape(), opts);
             const double* count = sums.data<double>() + 2 * s.c;
             if (opts.device.is_cuda())
               kernels::cuda::sync_batch_norm_backward_input(
                   s, gy.data<float>(), xs.data<float>(), mean.data<float>(), invstd.data<float>(),
                   detail::data_or_null<float>(ws), local.data<float>(), count, gx.data<float>(), cuda::stream());
             else
               detail::dispatch_cpu_float(gy, "sync_batch_norm2d backward", [&](auto t) {
                 using T = decltype(t);
                 kernels::cpu::sync_batch_norm_backward_input<T>(s, gy.data<T>(), xs.data<T>(), mean.data<T>(),
                                                                 invstd.data<T>(), detail::data_or_null<T>(ws),
                                                                 local.data<T>(), count, gx.data<T>());
               });
           }
           return std::vector<Tensor>{gx, gw, gb};
         });
  return out;
}

}  // namespace mtl::ops
