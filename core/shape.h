#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mtl {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3, 5]"
// Wraps a possibly negative dimension index; throws naming `what` when out of range.
int wrap_dim(int64_t d, int64_t ndim, const char* what = "dim");
// NumPy broadcasting of two shapes; throws naming both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace mtl
