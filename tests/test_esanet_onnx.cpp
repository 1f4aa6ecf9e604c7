// The ONNX graph of ESANet (train/export/esanet_onnx.h) without a runtime: BatchNorm folded away,
// one Conv per convolution of the evaluation forward pass, the context module's pooling and
// upsampling with fixed sizes (AveragePool where the bins divide the encoder output, MatMul and
// Gather where they do not), GroupNorm as InstanceNormalization, the inputs and outputs the model's
// modality and tasks call for, a symbolic batch, and the errors. That the numbers equal mtl's is
// test_export_job.cpp's part (ONNX Runtime).
#include <doctest/doctest.h>

#include <map>

#include "core/error.h"
#include "support/run_folder.h"
#include "train/export/esanet_onnx.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;

namespace {

Config demo_like() {
  Config c = test::tiny_run_config("unused");
  c.model.block = models::Block::nbt1d;
  c.model.width = 0.25;
  c.model.depth_head = models::DepthHead::light;
  return c;
}

onnx::Model graph_of(const Config& cfg, int64_t h, int64_t w, std::optional<int64_t> batch = 1) {
  const auto model = test::fresh_model(cfg);
  OnnxGraphOptions o;
  o.height = h, o.width = w, o.batch = batch;
  return esanet_onnx_graph(*model, o);
}

std::map<std::string, int> op_counts(const onnx::Model& m) {
  std::map<std::string, int> n;
  for (const onnx::Node& node : m.nodes) ++n[node.op_type];
  return n;
}

const onnx::Node& node_named(const onnx::Model& m, const std::string& name) {
  for (const onnx::Node& n : m.nodes)
    if (n.name == name) return n;
  FAIL("no node named ", name);
  throw Error("unreachable");
}

int64_t int_attr(const onnx::Node& n, const std::string& name) {
  for (const onnx::Attribute& a : n.attributes)
    if (a.name == name) return a.i;
  FAIL("node ", n.name, " has no attribute ", name);
  return 0;
}

// Convolutions the evaluation forward pass runs: all but the deep-supervision side outputs.
int eval_convolutions(const Config& cfg) {
  int n = 0;
  test::fresh_model(cfg)->visit([&](const std::string& name, nn::Module& m) {
    if (dynamic_cast<nn::Conv2d*>(&m) && name.find("side_output") == std::string::npos) ++n;
  });
  return n;
}

}  // namespace

TEST_CASE("esanet_onnx_graph: the demo network at 160x128") {
  const Config cfg = demo_like();
  const onnx::Model m = graph_of(cfg, 128, 160);
  const auto ops = op_counts(m);
  CHECK(ops.count("BatchNormalization") == 0);
  CHECK(ops.at("Conv") == eval_convolutions(cfg));
  // The encoder output is 5x4. PPM bin 1: AveragePool over all of it; bin 5: 4 rows to 5 is no
  // whole-number window, so a MatMul over the rows (the columns stay 5), and back from 5 rows to 4
  // a Gather. The decoders' and the light head's x2 steps are Resize (+ depthwise Conv).
  CHECK(node_named(m, "context_module.features.0/pool").op_type == "AveragePool");
  CHECK(node_named(m, "context_module.features.1/pool/rows").op_type == "MatMul");
  CHECK(ops.at("MatMul") == 1);
  CHECK(node_named(m, "context_module.features.1/upsample/rows").op_type == "Gather");
  CHECK(node_named(m, "context_module.features.0/upsample").op_type == "Resize");
  CHECK(ops.at("Resize") == 1 + 5 + 2);  // branch 0, the semantic decoder's 5, the light head's 2
  const onnx::Node& up = node_named(m, "decoder.upsample2.conv");
  CHECK(int_attr(up, "group") == 7);          // depthwise over the class channels
  CHECK(ops.at("Add") == 2 * 8 + 9 + 5 + 3);  // residuals (8 per encoder, 9 decoder), 5 fusions, 3 skips
  REQUIRE(m.inputs.size() == 2);
  CHECK(m.inputs[0].name == "rgb");
  CHECK(m.inputs[0].dims == std::vector<int64_t>{1, 3, 128, 160});
  CHECK(m.inputs[1].name == "depth");
  REQUIRE(m.outputs.size() == 2);
  CHECK(m.outputs[0].name == "semantic");
  CHECK(m.outputs[0].dims == std::vector<int64_t>{1, 7, 128, 160});
  CHECK(m.outputs[1].name == "depth_metres");
  CHECK(m.outputs[1].dims == std::vector<int64_t>{1, 1, 128, 160});
  CHECK(m.nodes.back().outputs == std::vector<std::string>{"depth_metres"});
}

TEST_CASE("esanet_onnx_graph: bins that divide the encoder output pool with AveragePool alone") {
  const onnx::Model m = graph_of(demo_like(), 480, 640);  // encoder output 20x15: bins 1 and 5 divide it
  const auto ops = op_counts(m);
  CHECK(ops.count("MatMul") == 0);
  CHECK(ops.count("Gather") == 0);
  CHECK(ops.at("AveragePool") == 2);
}

TEST_CASE("esanet_onnx_graph: GroupNorm, appm, a depth decoder and a symbolic batch") {
  Config cfg = demo_like();
  cfg.model.norm = nn::NormKind::groupnorm;
  cfg.model.context = models::Context::appm;
  cfg.model.depth_head = models::DepthHead::decoder;
  const onnx::Model m = graph_of(cfg, 256, 320, std::nullopt);
  int group_norms = 0;
  test::fresh_model(cfg)->visit(
      [&](const std::string&, nn::Module& mod) { group_norms += dynamic_cast<nn::GroupNorm*>(&mod) != nullptr; });
  const auto ops = op_counts(m);
  CHECK(ops.at("InstanceNormalization") == group_norms);
  CHECK(ops.at("Reshape") == 2 * group_norms);
  // appm at twice the training size: bins 2 and 10 over the 10x8 encoder output.
  CHECK(node_named(m, "context_module.features.0/pool").op_type == "AveragePool");
  CHECK(node_named(m, "context_module.features.1/pool/rows").op_type == "MatMul");
  for (const onnx::ValueInfo& v : m.inputs) CHECK(v.params == std::vector<std::string>{"N", "", "", ""});
  for (const onnx::ValueInfo& v : m.outputs) CHECK(v.params == std::vector<std::string>{"N", "", "", ""});
  CHECK(m.outputs.size() == 2);
}

TEST_CASE("esanet_onnx_graph: a single-modality, single-task network has only its input and output") {
  Config cfg = demo_like();
  cfg.model.modality = models::Modality::depth;
  cfg.model.tasks = {Task::depth};
  cfg.model.depth_head = models::DepthHead::decoder;
  const onnx::Model m = graph_of(cfg, 128, 160);
  REQUIRE(m.inputs.size() == 1);
  CHECK(m.inputs[0].name == "depth");
  REQUIRE(m.outputs.size() == 1);
  CHECK(m.outputs[0].name == "depth_metres");
}

TEST_CASE("esanet_onnx_graph: sizes and opsets it cannot export") {
  const auto model = test::fresh_model(demo_like());
  OnnxGraphOptions o;
  o.height = 120, o.width = 160;
  CHECK_THROWS_WITH_AS(esanet_onnx_graph(*model, o),
                       Contains("--input-size 160x120: both sides must be positive multiples of 32"), Error);
  o.height = 128;
  o.opset = 13;
  CHECK_THROWS_WITH_AS(esanet_onnx_graph(*model, o), Contains("--opset 13 is not supported (expected 17 to 21)"),
                       Error);
}

TEST_CASE("onnx::serialize: the IR version follows the opset") {
  CHECK(onnx::ir_version_for_opset(17) == 8);
  CHECK(onnx::ir_version_for_opset(19) == 9);
  CHECK(onnx::ir_version_for_opset(21) == 10);
  onnx::Model m;
  m.opset = 21;
  const std::string bytes = onnx::serialize(m);
  // Field 1 (ir_version) as a varint first: key 0x08, value 10.
  REQUIRE(bytes.size() > 2);
  CHECK(bytes[0] == 0x08);
  CHECK(bytes[1] == 10);
}
