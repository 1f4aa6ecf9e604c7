#include "ops/pool.h"

#include <limits>
#include <string>

#include "core/autograd.h"
#include "kernels/pool.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

using kernels::PoolGeom;

namespace {

std::string pair_str(std::array<int64_t, 2> v) { return mtl::detail::concat("[", v[0], ", ", v[1], "]"); }

void check_nchw(const Tensor& x, const char* op) {
  detail::check_defined(x, op, "x");
  detail::check_float_or_bf16(x, op);
  MTL_CHECK(x.dim() == 4, op, ": expected a 4-D NCHW input x, got ", x.describe());
  MTL_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": input x ", x.describe(), " has an empty spatial dimension");
  MTL_CHECK(x.size(2) * x.size(3) <= std::numeric_limits<int32_t>::max(), op, ": input x ", x.describe(),
            " has more than 2^31 pixels per plane");
}

// Window geometry with PyTorch's checks and output size (floor mode, dilation 1).
PoolGeom window_geom(const Tensor& x, std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 2> p,
                     const char* op) {
  check_nchw(x, op);
  MTL_CHECK(k[0] > 0 && k[1] > 0, op, ": kernel size ", pair_str(k), " must be positive (input x ", x.describe(), ")");
  MTL_CHECK(s[0] > 0 && s[1] > 0, op, ": stride ", pair_str(s), " must be positive (input x ", x.describe(), ")");
  MTL_CHECK(p[0] >= 0 && p[1] >= 0, op, ": padding ", pair_str(p), " must be non-negative (input x ", x.describe(),
            ")");
  MTL_CHECK(p[0] <= k[0] / 2 && p[1] <= k[1] / 2, op, ": padding ", pair_str(p),
            " must be at most half the kernel size ", pair_str(k), " (input x ", x.describe(), ")");
  PoolGeom g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2), g.in_w = x.size(3);
  g.k_h = k[0], g.k_w = k[1], g.s_h = s[0], g.s_w = s[1], g.p_h = p[0], g.p_w = p[1];
  // Numerators are >= -k + 1 > -s*k; floor division written out for negative values.
  auto out = [](int64_t in, int64_t kk, int64_t ss, int64_t pp) {
    const int64_t num = in + 2 * pp - kk;
    return (num >= 0 ? num / ss : -((-num + ss - 1) / ss)) + 1;
  };
  g.out_h = out(g.in_h, g.k_h, g.s_h, g.p_h);
  g.out_w = out(g.in_w, g.k_w, g.s_w, g.p_w);
  MTL_CHECK(g.out_h > 0 && g.out_w > 0, op, ": output size [", g.out_h, ", ", g.out_w, "] is too small for input x ",
            x.describe(), " with kernel ", pair_str(k), ", stride ", pair_str(s), ", padding ", pair_str(p));
  return g;
}

Shape out_shape(const Tensor& x, const PoolGeom& g) { return {x.size(0), x.size(1), g.out_h, g.out_w}; }

}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  const PoolGeom g = window_geom(x, kernel, stride, padding, "max_pool2d");
  Tensor src = contiguous(x.detach());
  Tensor out = empty(out_shape(x, g), x.options());
  // The argmax is only kept for a backward.
  Tensor argmax;
  if (autograd::needs_grad({x})) argmax = empty(out_shape(x, g), Options(DType::i32, x.device()));
  int32_t* am = argmax.defined() ? argmax.data<int32_t>() : nullptr;
  detail::run_kernel(
      "max_pool2d", {&src}, {&out},
      [&](auto t) {
        using T = decltype(t);
        kernels::cuda::max_pool2d<T>(out.data<T>(), am, src.data<T>(), g, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::max_pool2d<T>(out.data<T>(), am, src.data<T>(), g);
      });
  const Shape in_shape = x.shape();
  const Options opts = x.options();
  record("MaxPool2dBackward", {x}, {out}, [g, argmax, in_shape, opts](const std::vector<Tensor>& grads) {
    Tensor gy = contiguous(grads[0]);
    Tensor gx = empty(in_shape, opts);
    detail::run_kernel(
        "max_pool2d backward", {&gy}, {&gx},
        [&](auto t) {
          using T = decltype(t);
          kernels::cuda::max_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), argmax.data<int32_t>(), g, cuda::stream());
        },
        [&](auto t) {
          using T = decltype(t);
          kernels::cpu::max_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), argmax.data<int32_t>(), g);
        });
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  const PoolGeom g = window_geom(x, kernel, stride, padding, "avg_pool2d");
  Tensor src = contiguous(x.detach());
  Tensor out = empty(out_shape(x, g), x.options());
  detail::run_kernel(
      "avg_pool2d", {&src}, {&out},
      [&](auto t) {
        using T = decltype(t);
        kernels::cuda::avg_pool2d<T>(out.data<T>(), src.data<T>(), g, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::avg_pool2d<T>(out.data<T>(), src.data<T>(), g);
      });
  const Shape in_shape = x.shape();
  const Options opts = x.options();
  record("AvgPool2dBackward", {x}, {out}, [g, in_shape, opts](const std::vector<Tensor>& grads) {
    Tensor gy = contiguous(grads[0]);
    Tensor gx = empty(in_shape, opts);
    detail::run_kernel(
        "avg_pool2d backward", {&gy}, {&gx},
        [&](auto t) {
          using T = decltype(t);
          kernels::cuda::avg_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), g, cuda::stream());
        },
        [&](auto t) {
          using T = decltype(t);
          kernels::cpu::avg_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), g);
        });
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_nchw(x, "adaptive_avg_pool2d");
  MTL_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size [", out_h, ", ", out_w,
            "] must be positive (input x ", x.describe(), ")");
  PoolGeom g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2), g.in_w = x.size(3), g.out_h = out_h, g.out_w = out_w;
  Tensor src = contiguous(x.detach());
  Tensor out = empty(out_shape(x, g), x.options());
  detail::run_kernel(
      "adaptive_avg_pool2d", {&src}, {&out},
      [&](auto t) {
        using T = decltype(t);
        kernels::cuda::adaptive_avg_pool2d<T>(out.data<T>(), src.data<T>(), g, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        kernels::cpu::adaptive_avg_pool2d<T>(out.data<T>(), src.data<T>(), g);
      });
  const Shape in_shape = x.shape();
  const Options opts = x.options();
  record("AdaptiveAvgPool2dBackward", {x}, {out}, [g, in_shape, opts](const std::vector<Tensor>& grads) {
    Tensor gy = contiguous(grads[0]);
    Tensor gx = empty(in_shape, opts);
    detail::run_kernel(
        "adaptive_avg_pool2d backward", {&gy}, {&gx},
        [&](auto t) {
          using T = decltype(t);
          kernels::cuda::adaptive_avg_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), g, cuda::stream());
        },
        [&](auto t) {
          using T = decltype(t);
          kernels::cpu::adaptive_avg_pool2d_backward<T>(gx.data<T>(), gy.data<T>(), g);
        });
    return std::vector<Tensor>{gx};
  });
  return out;
}

}  // namespace mtl::ops
