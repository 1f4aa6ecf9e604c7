#pragma once
// ESANet's evaluation-mode forward pass as an ONNX graph, written by walking the network module by
// module as models/esanet.cpp runs it (no tracing): BatchNorm folded into the convolution before
// it, GroupNorm as Reshape + InstanceNormalization + Reshape + Mul + Add, the context module's
// pooling with fixed sizes for the export's input size (AveragePool where the bins divide the
// encoder output, else two MatMuls with constant averaging matrices, which is exactly adaptive
// pooling), nearest x2 upsampling as Resize and learned upsampling as Resize plus a depthwise
// Conv. docs/deploy.md lists every op and why.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/esanet.h"
#include "train/export/onnx_model.h"

namespace mtl::train {

struct OnnxGraphOptions {
  int64_t height = 0, width = 0;  // the network input; multiples of 32
  std::optional<int64_t> batch;   // nullopt: a symbolic batch dimension "N"
  int64_t opset = 17;
  double max_depth = 10.0;  // depth_metres = sigmoid(depth logits) * max_depth
};

// The graph of `model` (its parameters on any device) with inputs `rgb` [N, 3, H, W] and `depth`
// [N, 1, H, W] (those the model's modality reads; normalised as mtl normalises them) and outputs
// `semantic` (logits [N, C, H, W]) and `depth_metres` ([N, 1, H, W]) for the tasks it has. Node,
// value and initializer names are the modules' state-dict names. Throws mtl::Error for a size
// that is not a multiple of 32, a batch below 1 or an opset outside [kMinOpset, kMaxOpset].
onnx::Model esanet_onnx_graph(const models::ESANet& model, const OnnxGraphOptions& o);

}  // namespace mtl::train
