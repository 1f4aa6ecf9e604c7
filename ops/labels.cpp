#include "ops/labels.h"

#include <sstream>

#include "core/error.h"
#include "ops/shape.h"

namespace mtl::ops::detail {

void check_label_dtype(const Tensor& labels, const char* op, const char* arg) {
  const DType t = labels.dtype();
  MTL_CHECK(t == DType::u8 || t == DType::i32 || t == DType::i64, op, ": ", arg,
            " must hold integer labels (U8, I32 or I64), got ", labels.describe());
}

kernels::Labels label_view(const Tensor& labels) {
  MTL_ASSERT(labels.is_contiguous(), labels.describe());
  kernels::Labels l;
  l.data = labels.data_ptr();
  switch (labels.dtype()) {
    case DType::u8: l.type = kernels::LabelType::u8; break;
    case DType::i32: l.type = kernels::LabelType::i32; break;
    case DType::i64: l.type = kernels::LabelType::i64; break;
    default: MTL_ASSERT(false, "label dtype ", labels.describe());
  }
  return l;
}

int64_t label_at(const Tensor& labels, int64_t i) {
  Tensor one = labels.view({labels.numel()}).narrow(0, i, 1).cpu();
  switch (labels.dtype()) {
    case DType::u8: return one.data<uint8_t>()[0];
    case DType::i32: return one.data<int32_t>()[0];
    default: return one.data<int64_t>()[0];
  }
}

std::string index_str(const Shape& shape, int64_t i) {
  Shape idx(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    if (shape[d]) i /= shape[d];
  }
  return shape_str(idx);
}

void throw_bad_label(const char* op, const char* arg, const Tensor& labels, int64_t i, int64_t num_classes,
                     const std::string& also_allowed) {
  std::ostringstream os;
  os << op << ": " << arg << " " << labels.describe() << " hold the label " << label_at(labels, i) << " at "
     << index_str(labels.shape(), i) << ", which is not a class in [0, " << num_classes << ")" << also_allowed;
  throw Error(os.str());
}

Tensor check_weights(const Tensor& w, int64_t len, const Tensor& like, const char* op, const char* arg) {
  if (!w.defined()) return Tensor();
  MTL_CHECK(w.shape() == Shape{len} && w.dtype() == like.dtype() && w.device() == like.device(), op, ": ", arg,
            " must be ", dtype_name(like.dtype()), "[", len, "] on ", like.device().str(), ", got ", w.describe());
  return contiguous(w.detach());
}

}  // namespace mtl::ops::detail
