#include "ops/resize.h"

#include "kernels/resize.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/shape.h"

namespace mtl::ops {

using kernels::ResizeGeom;

namespace {

enum class Mode { nearest, bilinear };

ResizeGeom resize_geom(const Tensor& x, int64_t out_h, int64_t out_w, const char* op) {
  detail::check_defined(x, op, "x");
  detail::check_float_or_bf16(x, op);
  MTL_CHECK(x.dim() == 4, op, ": expected a 4-D NCHW input x, got ", x.describe());
  MTL_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": input x ", x.describe(), " has an empty spatial dimension");
  MTL_CHECK(out_h > 0 && out_w > 0, op, ": output size [", out_h, ", ", out_w, "] must be positive (input x ",
            x.describe(), ")");
  ResizeGeom g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2), g.in_w = x.size(3), g.out_h = out_h, g.out_w = out_w;
  return g;
}

void run_forward(Mode m, Tensor& out, Tensor& src, const ResizeGeom& g) {
  detail::run_kernel(
      "interpolate", {&src}, {&out},
      [&](auto t) {
        using T = decltype(t);
        if (m == Mode::nearest)
          kernels::cuda::resize_nearest<T>(out.data<T>(), src.data<T>(), g, cuda::stream());
        else
          kernels::cuda::resize_bilinear<T>(out.data<T>(), src.data<T>(), g, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        if (m == Mode::nearest)
          kernels::cpu::resize_nearest<T>(out.data<T>(), src.data<T>(), g);
        else
          kernels::cpu::resize_bilinear<T>(out.data<T>(), src.data<T>(), g);
      });
}

void run_backward(Mode m, Tensor& gx, Tensor& gy, const ResizeGeom& g) {
  detail::run_kernel(
      "interpolate backward", {&gy}, {&gx},
      [&](auto t) {
        using T = decltype(t);
        if (m == Mode::nearest)
          kernels::cuda::resize_nearest_backward<T>(gx.data<T>(), gy.data<T>(), g, cuda::stream());
        else
          kernels::cuda::resize_bilinear_backward<T>(gx.data<T>(), gy.data<T>(), g, cuda::stream());
      },
      [&](auto t) {
        using T = decltype(t);
        if (m == Mode::nearest)
          kernels::cpu::resize_nearest_backward<T>(gx.data<T>(), gy.data<T>(), g);
        else
          kernels::cpu::resize_bilinear_backward<T>(gx.data<T>(), gy.data<T>(), g);
      });
}

Tensor resize(Mode m, const Tensor& x, int64_t out_h, int64_t out_w, const char* op, const char* node) {
  const ResizeGeom g = resize_geom(x, out_h, out_w, op);
  Tensor src = contiguous(x.detach());
  Tensor out = empty({x.size(0), x.size(1), out_h, out_w}, x.options());
  run_forward(m, out, src, g);
  const Shape in_shape = x.shape();
  const Options opts = x.options();
  record(node, {x}, {out}, [m, g, in_shape, opts](const std::vector<Tensor>& grads) {
    Tensor gy = contiguous(grads[0]);
    Tensor gx = empty(in_shape, opts);
    run_backward(m, gx, gy, g);
    return std::vector<Tensor>{gx};
  });
  return out;
}

}  // namespace

Tensor interpolate_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  return resize(Mode::nearest, x, out_h, out_w, "interpolate_nearest", "UpsampleNearest2dBackward");
}

Tensor interpolate_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  return resize(Mode::bilinear, x, out_h, out_w, "interpolate_bilinear", "UpsampleBilinear2dBackward");
}

}  // namespace mtl::ops
