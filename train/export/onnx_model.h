#pragma once
// An ONNX model in memory and its serialisation, encoded by hand (core/protobuf.h) with the field
// numbers of ONNX's onnx.proto (github.com/onnx/onnx, Apache-2.0): only the messages and fields
// an inference graph of float32 tensors needs (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto with raw little-endian data, ValueInfoProto, OperatorSetIdProto,
// StringStringEntryProto). The tests check the result with the `onnx` package's checker.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mtl::train::onnx {

// TensorProto.DataType.
enum class DataType : int32_t { float32 = 1, int64 = 7 };

struct Attribute {
  // AttributeProto.AttributeType.
  enum class Kind : int32_t { f = 1, i = 2, s = 3, ints = 7 };
  std::string name;
  Kind kind = Kind::i;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::vector<int64_t> ints;

  static Attribute of(std::string name, int64_t v);
  static Attribute of(std::string name, float v);
  static Attribute of(std::string name, std::string v);
  static Attribute of(std::string name, std::vector<int64_t> v);
};

struct Node {
  std::string op_type, name;
  std::vector<std::string> inputs, outputs;  // an empty input name leaves an optional input out
  std::vector<Attribute> attributes;
};

// A constant tensor (GraphProto.initializer) with its data as raw little-endian bytes.
struct Initializer {
  std::string name;
  DataType type = DataType::float32;
  std::vector<int64_t> dims;
  std::string raw;
};

// A graph input or output: a tensor of `type` whose dimensions are fixed sizes or, where `params`
// names one (non-empty), a symbolic size such as the batch "N".
struct ValueInfo {
  std::string name;
  DataType type = DataType::float32;
  std::vector<int64_t> dims;
  std::vector<std::string> params;  // empty, or one per dimension ("" for a fixed one)
};

struct Model {
  int64_t opset = 17;  // of the default domain
  std::string producer_name = "mtl", producer_version, graph_name = "graph", doc_string;
  std::vector<Node> nodes;  // in topological order
  std::vector<Initializer> initializers;
  std::vector<ValueInfo> inputs, outputs;
  std::vector<std::pair<std::string, std::string>> metadata;  // ModelProto.metadata_props
};

// The oldest IR version that supports `opset` (ONNX's versioning table), so that older runtimes
// read the file. Throws mtl::Error for an opset outside [kMinOpset, kMaxOpset].
constexpr int64_t kMinOpset = 17, kMaxOpset = 21;
int64_t ir_version_for_opset(int64_t opset);

// The serialised ModelProto. Throws mtl::Error when the model exceeds protobuf's 2 GiB limit.
std::string serialize(const Model& m);

}  // namespace mtl::train::onnx
