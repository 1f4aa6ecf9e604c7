#include "ops/batch_norm.h"

#include "kernels/batch_norm.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

// A per-channel parameter or buffer: undefined, or [C] on x's device in its parameter dtype.
void check_channel_vector(const Tensor& t, const Tensor& x, const char* arg) {
  if (!t.defined()) return;
  MTL_CHECK(t.device() == x.device() && t.dtype() == detail::param_dtype(x), "batch_norm2d: ", arg, " ", t.describe(),
            " must be ", dtype_name(detail::param_dtype(x)), " on ", x.device().str(), " for input x ", x.describe());
  MTL_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "batch_norm2d: ", arg, " ", t.describe(), " must have shape [",
            x.size(1), "] (the channels of x ", x.describe(), ")");
}

void check_buffer(const Tensor& t, const char* arg) {
  if (!t.defined()) return;
  MTL_CHECK(t.is_contiguous(), "batch_norm2d: ", arg, " ", t.describe(),
            " must be contiguous (it is updated in place)");
  MTL_CHECK(!t.requires_grad(), "batch_norm2d: ", arg, " ", t.describe(),
            " requires grad; running statistics are buffers updated in place");
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean, Tensor running_var,
                    bool training, double momentum, double eps) {
  detail::check_defined(x, "batch_norm2d", "x");
  detail::check_float_or_bf16(x, "batch_norm2d");
  MTL_CHECK(x.dim() == 4, "batch_norm2d: input x must be 4-D [N, C, H, W], got ", x.describe());
  check_channel_vector(weight, x, "weight");
  check_channel_vector(bias, x, "bias");
  check_channel_vector(running_mean, x, "running_mean");
  check_channel_vector(running_var, x, "running_var");
  check_buffer(running_mean, "running_mean");
  check_buffer(running_var, "running_var");
  MTL_CHECK(running_mean.defined() == running_var.defined(),
            "batch_norm2d: running_mean and running_var must both be defined or both undefined, got ",
            running_mean.describe(), " and ", running_var.describe());
  MTL_CHECK(training || running_mean.defined(),
            "batch_norm2d: evaluation mode needs running_mean and running_var, got undefined tensors");
  MTL_CHECK(eps >= 0, "batch_norm2d: eps must be non-negative, got ", eps);
  MTL_CHECK(momentum >= 0 && momentum <= 1, "batch_norm2d: momentum must be in [0, 1], got ", momentum);
  const kernels::BatchNormShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  MTL_CHECK(!training || s.n * s.hw > 1, "batch_norm2d: expected more than 1 value per channel when training, got x ",
            x.describe());

  Tensor xs = contiguous(x.detach());
  Tensor ws = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor bs = bias.defined() ? contiguous(bias.detach()) : Tensor();
  // In evaluation the statistics are copied out of the running buffers, so a later training step
  // that updates them in place cannot change this call's backward.
  const Options popts(detail::param_dtype(x), x.device());
  Tensor mean = empty({s.c}, popts), invstd = empty({s.c}, popts);
  Tensor out = empty(x.shape(), x.options());
  Tensor rm = running_mean, rv = running_var;
  detail::run_kernel(
      "batch_norm2d", {&xs}, {&out},
      [&](auto t) {
        using T = decltype(t);
        cudaStream_t st = cuda::stream();
        if (training)
          kernels::cuda::batch_norm_train_stats<T>(s, xs.data<T>(), eps, momentum, mean.data<float>(),
                                                   invstd.data<float>(), detail::data_or_null<float>(rm),
                                                   detail::data_or_null<float>(rv), st);
        else
          kernels::cuda::batch_norm_eval_stats(s.c, rm.data<float>(), rv.data<float>(), eps, mean.data<float>(),
                                               invstd.data<float>(), st);
        kernels::cuda::batch_norm_apply<T>(s, xs.data<T>(), mean.data<float>(), invstd.data<float>(),
                                           detail::data_or_null<float>(ws), detail::data_or_null<float>(bs),
                                           out.data<T>(), st);
      },
      [&](auto t) {
        using T = decltype(t);
        if (training)
          kernels::cpu::batch_norm_train_stats<T>(s, xs.data<T>(), eps, momentum, mean.data<T>(), invstd.data<T>(),
                                                  detail::data_or_null<T>(rm), detail::data_or_null<T>(rv));
        else
          kernels::cpu::batch_norm_eval_stats<T>(s.c, rm.data<T>(), rv.data<T>(), eps, mean.data<T>(),
                                                 invstd.data<T>());
        kernels::cpu::batch_norm_apply<T>(s, xs.data<T>(), mean.data<T>(), invstd.data<T>(),
                                          detail::data_or_null<T>(ws), detail::data_or_null<T>(bs), out.data<T>());
      });

  const bool need_x = x.requires_grad();
  const bool need_w = weight.defined() && weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  record("BatchNorm2dBackward", {x, weight, bias}, {out},
         [s, xs, ws, mean, invstd, training, need_x, need_w, need_b](const std::vector<Tensor>& grads) {
           Tensor gy = contiguous(grads[0]), xv = xs;
           const Options popts = mean.options();
           // Training-mode gx goes through the batch statistics and needs both sums; in
           // evaluation only the parameter gradients do.
           const bool need_sums = need_w || need_b || (need_x && training);
           Tensor sum_gy, sum_gy_xhat, gx;
           if (need_sums) sum_gy = empty({s.c}, popts), sum_gy_xhat = empty({s.c}, popts);
           if (need_x) gx = empty(xs.shape(), gy.options());
           detail::run_kernel(
               "batch_norm2d backward", {&gy, &xv}, {&gx},
               [&](auto t) {
                 using T = decltype(t);
                 cudaStream_t st = cuda::stream();
                 if (need_sums)
                   kernels::cuda::batch_norm_backward_reduce<T>(s, gy.data<T>(), xv.data<T>(), mean.data<float>(),
                                                                invstd.data<float>(), sum_gy.data<float>(),
                                                                sum_gy_xhat.data<float>(), st);
                 if (need_x)
                   kernels::cuda::batch_norm_backward_input<T>(
                       s, gy.data<T>(), xv.data<T>(), mean.data<float>(), invstd.data<float>(),
                       detail::data_or_null<float>(ws), detail::data_or_null<float>(sum_gy),
                       detail::data_or_null<float>(sum_gy_xhat), training, gx.data<T>(), st);
               },
               [&](auto t) {
                 using T = decltype(t);
                 if (need_sums)
                   kernels::cpu::batch_norm_backward_reduce<T>(s, gy.data<T>(), xv.data<T>(), mean.data<T>(),
                                                               invstd.data<T>(), sum_gy.data<T>(),
                                                               sum_gy_xhat.data<T>());
                 if (need_x)
                   kernels::cpu::batch_norm_backward_input<T>(
                       s, gy.data<T>(), xv.data<T>(), mean.data<T>(), invstd.data<T>(), detail::data_or_null<T>(ws),
                       detail::data_or_null<T>(sum_gy), detail::data_or_null<T>(sum_gy_xhat), training, gx.data<T>());
               });
           return std::vector<Tensor>{gx, need_w ? sum_gy_xhat : Tensor(), need_b ? sum_gy : Tensor()};
         });
  return out;
}

}  // namespace mtl::ops
