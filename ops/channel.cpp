#include "ops/channel.h"

#include "kernels/channel.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

// y = x * (mask[i / group] ? scale : 0), any device.
Tensor apply_mask(const Tensor& x, const Tensor& mask, int64_t group, double scale) {
  Tensor out = empty(x.shape(), x.options());
  if (x.is_cuda()) {
    kernels::cuda::masked_scale(out.data<float>(), x.data<float>(), mask.data<uint8_t>(), x.numel(), group, scale,
                                cuda::stream());
  } else {
    detail::dispatch_cpu_float(x, "dropout", [&](auto t) {
      using T = decltype(t);
      kernels::cpu::masked_scale<T>(out.data<T>(), x.data<T>(), mask.data<uint8_t>(), x.numel(), group, scale);
    });
  }
  return out;
}

void record_dropout(const char* name, const Tensor& x, const Tensor& out, const Tensor& mask, int64_t group,
                    double scale) {
  record(name, {x}, {out}, [mask, group, scale](const std::vector<Tensor>& grads) {
    return std::vector<Tensor>{apply_mask(contiguous(grads[0]), mask, group, scale)};
  });
}

void check_p(const Tensor& x, double p, const char* op) {
  detail::check_defined(x, op, "x");
  detail::check_float(x, op);
  MTL_CHECK(p >= 0.0 && p < 1.0, op, ": probability p = ", p, " must be in [0, 1) (input x ", x.describe(), ")");
}

}  // namespace

Tensor channel_scale(const Tensor& x, const Tensor& s) {
  detail::check_defined(x, "channel_scale", "x");
  detail::check_defined(s, "channel_scale", "s");
  detail::check_same(x, s, "channel_scale");
  detail::check_float_or_bf16(x, "channel_scale");
  MTL_CHECK(x.dim() == 4, "channel_scale: expected a 4-D NCHW input x, got ", x.describe());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const bool s_ok = (s.dim() == 2 && s.size(0) == n && s.size(1) == c) ||
                    (s.dim() == 4 && s.size(0) == n && s.size(1) == c && s.size(2) == 1 && s.size(3) == 1);
  MTL_CHECK(s_ok, "channel_scale: scale s ", s.describe(), " must have shape [", n, ", ", c, "] or [", n, ", ", c,
            ", 1, 1] to match input x ", x.describe());
  Tensor xs = contiguous(x.detach()), ss = contiguous(s.detach());
  Tensor out = empty(x.shape(), x.options());
  detail::run_kernel(
      "channel_scale", {&xs, &ss}, {&out},
      [&](auto t) {
        using T = decltype(t);
        kernels::cuda::channel_scale<T>(out.data<T>(), xs.data<T>(), ss.data<T>(), n * c, hw, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::channel_scale<T>(out.data<T>(), xs.data<T>(), ss.data<T>(), n * c, hw);
      });
  const bool gx_needed = x.requires_grad(), gs_needed = s.requires_grad();
  Tensor saved_x = gs_needed ? xs : Tensor();
  const Shape x_shape = x.shape(), s_shape = s.shape();
  record("ChannelScaleBackward", {x, s}, {out},
         [saved_x, ss, x_shape, s_shape, gx_needed, gs_needed, n, c, hw](const std::vector<Tensor>& grads) {
           Tensor gy = contiguous(grads[0]), sx = saved_x, sc = ss;
           Tensor gx = gx_needed ? empty(x_shape, gy.options()) : Tensor();
           Tensor gs = gs_needed ? empty(s_shape, gy.options()) : Tensor();
           detail::run_kernel(
               "channel_scale backward", {&gy, &sx, &sc}, {&gx, &gs},
               [&](auto t) {
                 using T = decltype(t);
                 kernels::cuda::channel_scale_backward<T>(detail::data_or_null<T>(gx), detail::data_or_null<T>(gs),
                                                          gy.data<T>(), detail::data_or_null<T>(sx), sc.data<T>(),
                                                          n * c, hw, cuda::stream());
               },
               [&](auto t) {
                 using T = decltype(t);
                 kernels::cpu::channel_scale_backward<T>(detail::data_or_null<T>(gx), detail::data_or_null<T>(gs),
                                                         gy.data<T>(), detail::data_or_null<T>(sx), sc.data<T>(), n * c,
                                                         hw);
               });
           return std::vector<Tensor>{gx, gs};
         });
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_p(x, p, "dropout");
  if (!training || p == 0.0) return x;
  const int64_t n = x.numel();
  const double scale = 1.0 / (1.0 - p);
  kernels::DropoutRng rng;
  rng.seed = gen.seed();
  rng.base = gen.reserve(static_cast<uint64_t>((n + 3) / 4));
  rng.threshold = kernels::dropout_threshold(p);
  Tensor src = contiguous(x.detach());
  Tensor out = empty(x.shape(), x.options());
  Tensor mask = empty(x.shape(), Options(DType::u8, x.device()));
  if (x.is_cuda()) {
    kernels::cuda::dropout(out.data<float>(), mask.data<uint8_t>(), src.data<float>(), n, rng, scale, cuda::stream());
  } else {
    detail::dispatch_cpu_float(x, "dropout", [&](auto t) {
      using T = decltype(t);
      kernels::cpu::dropout<T>(out.data<T>(), mask.data<uint8_t>(), src.data<T>(), n, rng, scale);
    });
  }
  record_dropout("DropoutBackward", x, out, mask, 1, scale);
  return out;
}

Tensor dropout2d(const Tensor& x, double p, bool training, Generator& gen) {
  check_p(x, p, "dropout2d");
  MTL_CHECK(x.dim() == 4, "dropout2d: expected a 4-D NCHW input x, got ", x.describe());
  if (!training || p == 0.0) return x;
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  const double scale = 1.0 / (1.0 - p);
  kernels::DropoutRng rng;
  rng.seed = gen.seed();
  rng.base = gen.reserve(static_cast<uint64_t>((planes + 3) / 4));
  rng.threshold = kernels::dropout_threshold(p);
  Tensor mask = empty({x.size(0), x.size(1)}, Options(DType::u8, x.device()));
  if (x.is_cuda())
    kernels::cuda::dropout_mask(mask.data<uint8_t>(), planes, rng, cuda::stream());
  else
    kernels::cpu::dropout_mask(mask.data<uint8_t>(), planes, rng);
  // An empty plane keeps group at 1 so that the kernels never divide by zero (there is no element).
  const int64_t group = hw > 0 ? hw : 1;
  Tensor out = apply_mask(contiguous(x.detach()), mask, group, scale);
  record_dropout("Dropout2dBackward", x, out, mask, group, scale);
  return out;
}

}  // namespace mtl::ops
