#include "ops/conv.h"

#include "kernels/conv.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

namespace {

kernels::ConvGeometry checked_geometry(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  detail::check_defined(x, "conv2d", "x");
  detail::check_defined(w, "conv2d", "weight");
  detail::check_same(x, w, "conv2d");
  detail::check_float_or_bf16(x, "conv2d");
  if (bias.defined())
    MTL_CHECK(bias.device() == x.device() && bias.dtype() == detail::param_dtype(x), "conv2d: bias ", bias.describe(),
              " must be ", dtype_name(detail::param_dtype(x)), " on ", x.device().str(), " for input x ", x.describe());
  MTL_CHECK(x.dim() == 4, "conv2d: input x must be 4-D [N, C, H, W], got ", x.describe());
  MTL_CHECK(w.dim() == 4, "conv2d: weight must be 4-D [C_out, C_in / groups, kH, kW], got ", w.describe());
  MTL_CHECK(p.groups >= 1, "conv2d: groups must be at least 1, got ", p.groups);
  MTL_CHECK(p.stride_h >= 1 && p.stride_w >= 1, "conv2d: stride must be at least 1, got (", p.stride_h, ", ",
            p.stride_w, ")");
  MTL_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "conv2d: padding must be non-negative, got (", p.pad_h, ", ", p.pad_w, ")");
  MTL_CHECK(p.dil_h >= 1 && p.dil_w >= 1, "conv2d: dilation must be at least 1, got (", p.dil_h, ", ", p.dil_w, ")");
  kernels::ConvGeometry g;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.stride_h = p.stride_h, g.stride_w = p.stride_w, g.pad_h = p.pad_h, g.pad_w = p.pad_w;
  g.dil_h = p.dil_h, g.dil_w = p.dil_w, g.groups = p.groups;
  MTL_CHECK(g.c_out >= 1 && w.size(1) >= 1 && g.kh >= 1 && g.kw >= 1, "conv2d: weight ", w.describe(),
            " has an empty dimension");
  MTL_CHECK(g.c_in % g.groups == 0, "conv2d: input channels of x ", x.describe(), " (", g.c_in,
            ") are not divisible by groups = ", g.groups);
  MTL_CHECK(g.c_out % g.groups == 0, "conv2d: output channels of weight ", w.describe(), " (", g.c_out,
            ") are not divisible by groups = ", g.groups);
  MTL_CHECK(w.size(1) == g.c_in / g.groups, "conv2d: weight ", w.describe(), " expects ", w.size(1) * g.groups,
            " input channels (", w.size(1), " per group x ", g.groups, " groups) but x ", x.describe(), " has ",
            g.c_in);
  if (bias.defined())
    MTL_CHECK(bias.dim() == 1 && bias.size(0) == g.c_out, "conv2d: bias ", bias.describe(), " must have shape [",
              g.c_out, "] to match weight ", w.describe());
  g.out_h = conv2d_output_size(g.h, g.kh, g.stride_h, g.pad_h, g.dil_h);
  g.out_w = conv2d_output_size(g.w, g.kw, g.stride_w, g.pad_w, g.dil_w);
  MTL_CHECK(g.out_h >= 1 && g.out_w >= 1, "conv2d: output size ", g.out_h, "x", g.out_w, " is empty: input x ",
            x.describe(), " padded to ", g.h + 2 * g.pad_h, "x", g.w + 2 * g.pad_w,
            " is smaller than the dilated kernel ", g.dil_h * (g.kh - 1) + 1, "x", g.dil_w * (g.kw - 1) + 1,
            " of weight ", w.describe());
  return g;
}

kernels::cuda::ConvPolicy policy() { return {cuda::deterministic(), cuda::allow_tf32()}; }

}  // namespace

int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  // C++ division truncates towards zero; the formula needs floor for negative spans.
  return span < 0 ? 0 : span / stride + 1;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dParams p) {
  const kernels::ConvGeometry g = checked_geometry(x, weight, bias, p);
  Tensor xs = contiguous(x.detach()), ws = contiguous(weight.detach());
  Tensor bs = bias.defined() ? contiguous(bias.detach()) : Tensor();
  Tensor out = empty({g.n, g.c_out, g.out_h, g.out_w}, x.options());
  if (out.numel() > 0) {
    // The CPU adds a bias of the data's own dtype inside the convolution; elsewhere it is a second
    // kernel, which for bfloat16 rounds the convolution and the sum each once, as on the GPU.
    const bool fused_bias = bs.defined() && !x.is_cuda() && x.dtype() == bs.dtype();
    detail::run_kernel(
        "conv2d", {&xs, &ws}, {&out},
        [&](auto t) {
          using T = decltype(t);
          kernels::cuda::conv2d_forward<T>(cuda::cudnn(), g, policy(), xs.data<T>(), ws.data<T>(), out.data<T>());
        },
        [&](auto t) {
          using T = decltype(t);
          kernels::cpu::conv2d_forward<T>(g, xs.data<T>(), ws.data<T>(),
                                          fused_bias ? detail::data_or_null<T>(bs) : nullptr, out.data<T>());
        });
    if (bs.defined() && !fused_bias)
      detail::run_kernel(
          "conv2d bias", {&out}, {&out},
          [&](auto t) {
            using T = decltype(t);
            kernels::cuda::conv2d_bias_add<T>(g, bs.data<float>(), out.data<T>(), cuda::stream());
          },
          [&](auto t) {
            using T = decltype(t);
            kernels::cpu::conv2d_bias_add<T>(g, bs.data<T>(), out.data<T>());
          });
  }
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  // Each gradient needs only the other operand: keep what will be used.
  Tensor saved_x = need_w ? xs : Tensor(), saved_w = need_x ? ws : Tensor();
  const Options opts = x.options(), bias_opts(detail::param_dtype(x), x.device());
  record("Conv2dBackward", {x, weight, bias}, {out},
         [g, saved_x, saved_w, need_x, need_w, need_b, opts, bias_opts](const std::vector<Tensor>& grads) {
           Tensor gy = contiguous(grads[0]), sx = saved_x, sw = saved_w;
           Tensor gx, gw, gb;
           const bool empty_batch = gy.numel() == 0;
           if (need_x) gx = empty({g.n, g.c_in, g.h, g.w}, opts);
           if (need_w)
             gw = empty_batch ? zeros({g.c_out, g.c_in / g.groups, g.kh, g.kw}, opts)
                              : empty({g.c_out, g.c_in / g.groups, g.kh, g.kw}, opts);
           if (need_b) gb = empty_batch ? zeros({g.c_out}, bias_opts) : empty({g.c_out}, bias_opts);
           if (empty_batch) return std::vector<Tensor>{gx, gw, gb};
           detail::run_kernel(
               "conv2d backward", {&gy, &sx, &sw}, {&gx, &gw},
               [&](auto t) {
                 using T = decltype(t);
                 if (need_x)
                   kernels::cuda::conv2d_backward_input<T>(cuda::cudnn(), g, policy(), gy.data<T>(), sw.data<T>(),
                                                           gx.data<T>());
                 if (need_w)
                   kernels::cuda::conv2d_backward_weight<T>(cuda::cudnn(), g, policy(), gy.data<T>(), sx.data<T>(),
                                                            gw.data<T>());
                 if (need_b) kernels::cuda::conv2d_backward_bias<T>(g, gy.data<T>(), gb.data<float>(), cuda::stream());
               },
               [&](auto t) {
                 using T = decltype(t);
                 if (need_x) kernels::cpu::conv2d_backward_input<T>(g, gy.data<T>(), sw.data<T>(), gx.data<T>());
                 if (need_w) kernels::cpu::conv2d_backward_weight<T>(g, gy.data<T>(), sx.data<T>(), gw.data<T>());
                 if (need_b) kernels::cpu::conv2d_backward_bias<T>(g, gy.data<T>(), gb.data<T>());
               });
           return std::vector<Tensor>{gx, gw, gb};
         });
  return out;
}

}  // namespace mtl::ops
