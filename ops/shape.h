#pragma once
// Differentiable layout ops: copies, casts, views and concatenation.
#include <vector>

#include "core/tensor.h"

namespace mtl::ops {

Tensor contiguous(const Tensor& x);                 // x itself when already contiguous
Tensor to(const Tensor& x, DType dtype);            // cast (differentiable between float types)
Tensor to(const Tensor& x, Device device);          // copy (differentiable)
Tensor reshape(const Tensor& x, const Shape& shape);  // one dimension may be -1
Tensor flatten(const Tensor& x, int64_t start_dim = 0);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t length);  // narrow, copied
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
// x mirrored along each of `dims` (negative counts from the end; each at most once), copied.
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
// Copies `src` into `dst` (same shape, device and dtype), any layouts; not differentiable.
void copy_(const Tensor& dst, const Tensor& src);
// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace mtl::ops
