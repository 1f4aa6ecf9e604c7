#include "ops/shape.h"

#include <numeric>

#include "core/cuda_context.h"
#include "kernels/copy.h"
#include "ops/autograd_util.h"
#include "ops/dispatch.h"
#include "ops/reduce.h"

namespace mtl::ops {

void copy_(const Tensor& dst, const Tensor& src) {
  MTL_CHECK(dst.shape() == src.shape(), "copy_: shapes differ: ", dst.describe(), " <- ", src.describe());
  detail::check_same(dst, src, "copy_");
  if (dst.numel() == 0) return;
  if (dst.is_contiguous() && src.is_contiguous()) return copy_bytes(dst, src);
  kernels::Layout l = detail::copy_layout(dst, src);
  if (dst.is_cuda())
    kernels::cuda::copy_strided(dst.data_ptr(), src.data_ptr(), dtype_size(dst.dtype()), l, cuda::stream());
  else
    kernels::cpu::copy_strided(dst.data_ptr(), src.data_ptr(), dtype_size(dst.dtype()), l);
}

Tensor contiguous(const Tensor& x) {
  detail::check_defined(x, "contiguous", "x");
  if (x.is_contiguous()) return x;
  Tensor out = empty(x.shape(), x.options());
  copy_(out, x.detach());
  record("ContiguousBackward", {x}, {out}, [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  return out;
}

Tensor to(const Tensor& x, DType dtype) {
  detail::check_defined(x, "to", "x");
  if (x.dtype() == dtype) return x;
  Tensor src = contiguous(x.detach());
  Tensor out = empty(x.shape(), {dtype, x.device()});
  if (x.is_cuda())
    kernels::cuda::cast(out.data_ptr(), dtype, src.data_ptr(), x.dtype(), x.numel(), cuda::stream());
  else
    kernels::cpu::cast(out.data_ptr(), dtype, src.data_ptr(), x.dtype(), x.numel());
  if (is_floating(dtype)) {
    const DType from = x.dtype();
    record("CastBackward", {x}, {out}, [from](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{to(g[0], from)};
    });
  }
  return out;
}

Tensor to(const Tensor& x, Device device) {
  detail::check_defined(x, "to", "x");
  if (x.device() == device) return x;
  Tensor out = contiguous(x.detach()).to(device);
  const Device from = x.device();
  record("ToDeviceBackward", {x}, {out}, [from](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].to(from)};
  });
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  detail::check_defined(x, "reshape", "x");
  Tensor out = contiguous(x.detach()).view(shape);
  const Shape in_shape = x.shape();
  record("ReshapeBackward", {x}, {out}, [in_shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].view(in_shape)};
  });
  return out;
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  int s = wrap_dim(start_dim, x.dim(), "flatten start_dim");
  Shape sh(x.shape().begin(), x.shape().begin() + s);
  sh.push_back(-1);
  return reshape(x, sh);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  detail::check_defined(x, "permute", "x");
  Tensor v = x.detach().permute(dims);
  Tensor out = empty(v.shape(), x.options());
  copy_(out, v);
  std::vector<int64_t> inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[wrap_dim(dims[i], x.dim())] = static_cast<int64_t>(i);
  record("PermuteBackward", {x}, {out}, [inv](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{contiguous(g[0].permute(inv))};
  });
  return out;
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  detail::check_defined(x, "slice", "x");
  int d = wrap_dim(dim, x.dim());
  Tensor v = x.detach().narrow(d, start, length);
  Tensor out = empty(v.shape(), x.options());
  copy_(out, v);
  const Shape in_shape = x.shape();
  record("SliceBackward", {x}, {out}, [in_shape, d, start, length](const std::vector<Tensor>& g) {
    Tensor gx = zeros(in_shape, g[0].options());
    copy_(gx.narrow(d, start, length), g[0]);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  detail::check_defined(x, "flip", "x");
  const Tensor src = x.detach();
  Shape strides = src.strides();
  int64_t offset = src.offset();
  std::vector<bool> seen(static_cast<size_t>(x.dim()), false);
  for (int64_t dim : dims) {
    const int d = wrap_dim(dim, x.dim(), "flip dim");
    MTL_CHECK(!seen[static_cast<size_t>(d)], "flip: dimension ", d, " is listed twice for ", x.describe());
    seen[static_cast<size_t>(d)] = true;
    if (x.size(d) == 0) continue;
    offset += (x.size(d) - 1) * strides[d];
    strides[d] = -strides[d];
  }
  // A negative-stride view, copied in order on either device.
  Tensor out = empty(x.shape(), x.options());
  copy_(out, src.as_strided(src.shape(), strides, offset));
  record("FlipBackward", {x}, {out},
         [dims](const std::vector<Tensor>& g) { return std::vector<Tensor>{flip(g[0], dims)}; });
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  MTL_CHECK(!xs.empty(), "cat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) detail::check_defined(xs[i], "cat", "tensors");
  const Tensor& x0 = xs[0];
  int d = wrap_dim(dim, x0.dim());
  Shape shape = x0.shape();
  int64_t total = 0;
  for (const Tensor& x : xs) {
    detail::check_same(x0, x, "cat");
    MTL_CHECK(x.dim() == x0.dim(), "cat: ", x.describe(), " and ", x0.describe(), " differ in rank");
    for (int64_t k = 0; k < x.dim(); ++k)
      MTL_CHECK(k == d || x.shape()[k] == x0.shape()[k], "cat along dim ", d, ": ", x.describe(), " and ",
                x0.describe(), " differ in dimension ", k);
    total += x.shape()[d];
  }
  shape[d] = total;
  Tensor out = empty(shape, x0.options());
  std::vector<int64_t> sizes;
  int64_t off = 0;
  for (const Tensor& x : xs) {
    copy_(out.narrow(d, off, x.shape()[d]), x.detach());
    sizes.push_back(x.shape()[d]);
    off += x.shape()[d];
  }
  record("CatBackward", xs, {out}, [d, sizes](const std::vector<Tensor>& g) {
    std::vector<Tensor> gs;
    int64_t o = 0;
    for (int64_t s : sizes) {
      gs.push_back(slice(g[0], d, o, s));
      o += s;
    }
    return gs;
  });
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  MTL_ASSERT(lead >= 0, "sum_to ", g.describe(), " -> ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  Tensor r = sum(g, dims, /*keepdim=*/true);
  return reshape(r, shape);
}

}  // namespace mtl::ops
