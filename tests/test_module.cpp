// nn::Module: dotted names, train/eval, state dicts (strict and non-strict), safetensors round
// trip, device moves; nn::Linear against a hand computation.
#include <doctest/doctest.h>

#include <filesystem>

#include "core/generator.h"
#include "nn/linear.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"

using namespace mtl;
namespace fs = std::filesystem;

namespace {
struct Head : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor scale, steps;
  Head(int64_t classes, Generator& g) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8, true, g));
    fc2 = register_module("classifier", std::make_shared<nn::Linear>(8, classes, true, g));
    scale = ones({1});
    register_parameter("scale", &scale);
    steps = zeros({}, DType::i64);
    register_buffer("steps", &steps);
  }
  Tensor forward(const Tensor& x) override {
    return ops::mul(fc2->forward(ops::relu(fc1->forward(x))), scale);
  }
};
}  // namespace

TEST_CASE("parameters and buffers carry dotted names") {
  Generator g(1);
  Head h(3, g);
  std::vector<std::string> names;
  for (auto& [n, t] : h.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"scale", "fc1.weight", "fc1.bias", "classifier.weight", "classifier.bias"});
  CHECK(h.named_buffers().at(0).first == "steps");
  CHECK(h.num_parameters() == 1 + 4 * 8 + 8 + 8 * 3 + 3);
  auto sd = h.state_dict();
  CHECK(sd.size() == 6);
  CHECK(sd.at("classifier.weight").shape() == Shape{3, 8});
  for (auto& [n, t] : h.named_parameters()) CHECK(t.requires_grad());
}

TEST_CASE("train and eval reach every child") {
  Generator g(1);
  Head h(3, g);
  h.eval();
  CHECK_FALSE(h.is_training());
  CHECK_FALSE(h.fc2->is_training());
  h.train();
  CHECK(h.fc1->is_training());
}

TEST_CASE("Linear computes x W^T + b and its gradients") {
  Generator g(3);
  nn::Linear lin(3, 2, true, g, DType::f64);
  Tensor x = from_vector({1, 2, 3, -1, 0, 4}, {2, 3}, DType::f64);
  Tensor y = lin.forward(x);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t o = 0; o < 2; ++o) {
      double e = lin.bias.at({o});
      for (int64_t k = 0; k < 3; ++k) e += x.at({i, k}) * lin.weight.at({o, k});
      CHECK(y.at({i, o}) == doctest::Approx(e));
    }
  CHECK_GRADCHECK([&](auto& in) { return lin.forward(in[0]); }, {test::randn_grad({4, 3}), lin.weight, lin.bias});
  CHECK_THROWS_WITH_AS(lin.forward(zeros({2, 5}, DType::f64)), doctest::Contains("is not [N, 3]"), Error);
}

TEST_CASE("state dict round trip through safetensors gives identical outputs") {
  Generator g1(1), g2(2);
  Head a(3, g1), b(3, g2);
  Tensor x = test::randn({5, 4});
  CHECK(a.forward(x).to_f64_vector() != b.forward(x).to_f64_vector());
  fs::path p = fs::temp_directory_path() / ("mtl_module_" + std::to_string(test::fresh_seed()) + ".safetensors");
  a.steps.set({}, 17);
  a.save(p.string());
  nn::LoadReport r = b.load(p.string());
  CHECK(r.clean());
  CHECK(r.loaded == 6);
  CHECK(b.forward(x).to_f64_vector() == a.forward(x).to_f64_vector());
  CHECK(b.steps.item() == 17);
  fs::remove(p);
}

TEST_CASE("strict loading lists every problem and changes nothing") {
  Generator g1(1), g2(2);
  Head seven(7, g1), three(3, g2);
  auto sd = seven.state_dict();
  sd["extra.weight"] = zeros({2});
  sd.erase("fc1.bias");
  std::vector<double> before = three.fc1.get()->weight.to_f64_vector();
  try {
    three.load_state_dict(sd, true, "'pretrained.safetensors'");
    FAIL("no error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("'pretrained.safetensors'") != std::string::npos);
    CHECK(m.find("missing (left at initialisation): fc1.bias") != std::string::npos);
    CHECK(m.find("unexpected (ignored): extra.weight") != std::string::npos);
    CHECK(m.find("classifier.weight: 'pretrained.safetensors' has F32[7, 8], model has F32[3, 8]") != std::string::npos);
  }
  CHECK(three.fc1->weight.to_f64_vector() == before);
}

TEST_CASE("non-strict loading takes what matches and reports the rest") {
  Generator g1(1), g2(2);
  Head seven(7, g1), three(3, g2);
  auto sd = seven.state_dict();
  sd.erase("fc1.bias");
  nn::LoadReport r = three.load_state_dict(sd, false);
  CHECK(r.missing == std::vector<std::string>{"fc1.bias"});
  CHECK(r.shape_mismatch.size() == 2);  // classifier.weight and classifier.bias
  CHECK(r.loaded == 3);                 // scale, fc1.weight, steps
  CHECK(three.fc1->weight.to_f64_vector() == seven.fc1->weight.to_f64_vector());
  CHECK(three.fc2->weight.shape() == Shape{3, 8});
}

TEST_CASE("loading converts dtypes") {
  Generator g1(1), g2(2);
  Head a(3, g1), b(3, g2);
  auto sd = a.state_dict();
  for (auto& [n, t] : sd)
    if (is_floating(t.dtype())) t = ops::to(t, DType::f64);
  b.load_state_dict(sd);
  CHECK(b.fc1->weight.dtype() == DType::f32);
  CHECK(b.fc1->weight.to_f64_vector() == a.fc1->weight.to_f64_vector());
}

TEST_SUITE("cuda") {
  TEST_CASE("cuda: a module moved to the device computes what it computed on the cpu") {
    MTL_REQUIRE_CUDA();  // cuBLAS, emulated on the CPU execution layer
    Generator g(5);
    Head h(3, g);
    Tensor x = test::randn({6, 4});
    Tensor ref = h.forward(x);
    h.to(Device::cuda());
    for (auto& [n, t] : h.named_parameters()) CHECK(t.is_cuda());
    CHECK(h.steps.is_cuda());
    CHECK_CLOSE(h.forward(x.cuda()), ref, 1e-5, 1e-5);
    ops::sum(h.forward(x.cuda())).backward();
    CHECK(h.fc1->weight.grad().is_cuda());
  }
}
