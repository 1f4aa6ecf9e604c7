#pragma once
// Label maps for the loss and metric ops: accepted dtypes, the kernels' view of them, and the
// error for a label that is neither a class nor ignore_index (found by a kernel, reported here).
#include <string>

#include "core/tensor.h"
#include "kernels/labels.h"

namespace mtl::ops::detail {

// uint8, int32 or int64, else an mtl::Error naming the op and argument.
void check_label_dtype(const Tensor& labels, const char* op, const char* arg);
// The kernels' view of a contiguous label tensor.
kernels::Labels label_view(const Tensor& labels);
// The label at flat index `i` of a contiguous label tensor, copied to the host (one element).
int64_t label_at(const Tensor& labels, int64_t i);
// "[1, 4, 6]": the position of flat index `i` in `shape`.
std::string index_str(const Shape& shape, int64_t i);
// Throws mtl::Error naming the tensor, the value, its position and the valid range.
[[noreturn]] void throw_bad_label(const char* op, const char* arg, const Tensor& labels, int64_t i, int64_t num_classes,
                                  const std::string& also_allowed);
// Optional weights: undefined, or a tensor of shape [len] on `like`'s device with its dtype;
// returned contiguous and detached.
Tensor check_weights(const Tensor& w, int64_t len, const Tensor& like, const char* op, const char* arg);

}  // namespace mtl::ops::detail
