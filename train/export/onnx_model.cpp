#include "train/export/onnx_model.h"

#include <limits>

#include "core/error.h"
#include "core/protobuf.h"

namespace mtl::train::onnx {

using namespace protobuf;

Attribute Attribute::of(std::string name, int64_t v) {
  Attribute a;
  a.name = std::move(name), a.kind = Kind::i, a.i = v;
  return a;
}
Attribute Attribute::of(std::string name, float v) {
  Attribute a;
  a.name = std::move(name), a.kind = Kind::f, a.f = v;
  return a;
}
Attribute Attribute::of(std::string name, std::string v) {
  Attribute a;
  a.name = std::move(name), a.kind = Kind::s, a.s = std::move(v);
  return a;
}
Attribute Attribute::of(std::string name, std::vector<int64_t> v) {
  Attribute a;
  a.name = std::move(name), a.kind = Kind::ints, a.ints = std::move(v);
  return a;
}

int64_t ir_version_for_opset(int64_t opset) {
  MTL_CHECK(opset >= kMinOpset && opset <= kMaxOpset, "--opset ", opset, " is not supported (expected ", kMinOpset,
            " to ", kMaxOpset, ")");
  // IR 8 came with opset 17 and 18, IR 9 with 19 and 20, IR 10 with 21.
  return opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

namespace {

// onnx.proto's field numbers, by message.
namespace field {
constexpr uint32_t kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3, kModelDocString = 6,
                   kModelGraph = 7, kModelOpsetImport = 8, kModelMetadataProps = 14;
constexpr uint32_t kOpsetDomain = 1, kOpsetVersion = 2;
constexpr uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr uint32_t kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11, kGraphOutput = 12;
constexpr uint32_t kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr uint32_t kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrS = 4, kAttrInts = 8, kAttrType = 20;
constexpr uint32_t kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9;
constexpr uint32_t kValueInfoName = 1, kValueInfoType = 2;
constexpr uint32_t kTypeTensorType = 1;
constexpr uint32_t kTensorTypeElemType = 1, kTensorTypeShape = 2;
constexpr uint32_t kShapeDim = 1;
constexpr uint32_t kDimValue = 1, kDimParam = 2;
}  // namespace field

std::string attribute(const Attribute& a) {
  std::string out;
  put_bytes(out, field::kAttrName, a.name);
  switch (a.kind) {
    case Attribute::Kind::f:
      put_float(out, field::kAttrF, a.f);
      break;
    case Attribute::Kind::i:
      put_int(out, field::kAttrI, a.i);
      break;
    case Attribute::Kind::s:
      put_bytes(out, field::kAttrS, a.s);
      break;
    case Attribute::Kind::ints:
      for (int64_t v : a.ints) put_int(out, field::kAttrInts, v);
      break;
  }
  put_int(out, field::kAttrType, static_cast<int32_t>(a.kind));
  return out;
}

std::string node(const Node& n) {
  std::string out;
  for (const std::string& i : n.inputs) put_bytes(out, field::kNodeInput, i);
  for (const std::string& o : n.outputs) put_bytes(out, field::kNodeOutput, o);
  if (!n.name.empty()) put_bytes(out, field::kNodeName, n.name);
  put_bytes(out, field::kNodeOpType, n.op_type);
  for (const Attribute& a : n.attributes) put_bytes(out, field::kNodeAttribute, attribute(a));
  return out;
}

std::string tensor(const Initializer& t) {
  std::string out;
  for (int64_t d : t.dims) put_int(out, field::kTensorDims, d);
  put_int(out, field::kTensorDataType, static_cast<int32_t>(t.type));
  put_bytes(out, field::kTensorName, t.name);
  put_bytes(out, field::kTensorRawData, t.raw);
  return out;
}

std::string value_info(const ValueInfo& v) {
  MTL_ASSERT(v.params.empty() || v.params.size() == v.dims.size(), "ValueInfo '", v.name, "': one param per dim");
  std::string shape;
  for (size_t i = 0; i < v.dims.size(); ++i) {
    std::string dim;
    if (!v.params.empty() && !v.params[i].empty())
      put_bytes(dim, field::kDimParam, v.params[i]);
    else
      put_int(dim, field::kDimValue, v.dims[i]);
    put_bytes(shape, field::kShapeDim, dim);
  }
  std::string tensor_type;
  put_int(tensor_type, field::kTensorTypeElemType, static_cast<int32_t>(v.type));
  put_bytes(tensor_type, field::kTensorTypeShape, shape);
  std::string type;
  put_bytes(type, field::kTypeTensorType, tensor_type);
  std::string out;
  put_bytes(out, field::kValueInfoName, v.name);
  put_bytes(out, field::kValueInfoType, type);
  return out;
}

std::string graph(const Model& m) {
  std::string out;
  for (const Node& n : m.nodes) put_bytes(out, field::kGraphNode, node(n));
  put_bytes(out, field::kGraphName, m.graph_name);
  for (const Initializer& t : m.initializers) put_bytes(out, field::kGraphInitializer, tensor(t));
  for (const ValueInfo& v : m.inputs) put_bytes(out, field::kGraphInput, value_info(v));
  for (const ValueInfo& v : m.outputs) put_bytes(out, field::kGraphOutput, value_info(v));
  return out;
}

}  // namespace

std::string serialize(const Model& m) {
  std::string opset;
  put_bytes(opset, field::kOpsetDomain, "");  // the default domain, ai.onnx
  put_int(opset, field::kOpsetVersion, m.opset);
  const std::string g = graph(m);
  // Protobuf parsers refuse messages of 2 GiB or more (ONNX stores larger weights in side files,
  // which this writer does not).
  MTL_CHECK(g.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()) - (1 << 20), "the ONNX graph '",
            m.graph_name, "' is ", g.size() >> 20, " MiB, above protobuf's 2 GiB limit");
  std::string out;
  put_int(out, field::kModelIrVersion, ir_version_for_opset(m.opset));
  put_bytes(out, field::kModelProducerName, m.producer_name);
  if (!m.producer_version.empty()) put_bytes(out, field::kModelProducerVersion, m.producer_version);
  if (!m.doc_string.empty()) put_bytes(out, field::kModelDocString, m.doc_string);
  put_bytes(out, field::kModelGraph, g);
  put_bytes(out, field::kModelOpsetImport, opset);
  for (const auto& [k, v] : m.metadata) {
    std::string e;
    put_bytes(e, field::kEntryKey, k);
    put_bytes(e, field::kEntryValue, v);
    put_bytes(out, field::kModelMetadataProps, e);
  }
  return out;
}

}  // namespace mtl::train::onnx
