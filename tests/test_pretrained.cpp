// Pretrained weights onto ESANet (train/run/pretrained.h) with the PyTorch fixtures of
// tests/reference/make_pretrained_fixtures.py: torchvision ResNets mapped into both encoders give
// PyTorch's own encoder outputs; the depth encoder's first convolution is the channel sum; ESANet's
// ImageNet encoders and whole models load; class heads of another class count are listed, or kept
// with a learned adapter that trains; loads that map too little are errors; train.freeze and
// optim.lr_scale do exactly what they say; mtl_convert's exit codes and messages.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch_file.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training.h"
#include "train/data/synthetic/datagen.h"
#include "train/engine/train_job.h"
#include "train/optim/adamw.h"
#include "train/run/checkpoint.h"
#include "train/run/pretrained.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) {
  return std::string(MTL_SOURCE_DIR) + "/tests/reference/pretrained/" + name;
}

models::ModelConfig encoder_config(models::Encoder e, models::Block b, double width) {
  models::ModelConfig mc;
  mc.encoder = e, mc.block = b, mc.width = width;
  return mc;
}

int64_t encoder_tensors(const models::ESANet& m) {
  int64_t n = 0;
  for (const auto& [k, t] : m.state_dict()) n += k.rfind("encoder_rgb.", 0) == 0 || k.rfind("encoder_depth.", 0) == 0;
  return n;
}

Config tiny_config() {
  Config c = test::tiny_train_config(test::tiny_greenhouse(16, 4, 2, 9));
  c.train.epochs = 2;
  c.eval.batch_size = 4;
  c.log.visuals = 0;
  c.runtime.workers = 0;
  c.runtime.seed = 4;
  return c;
}

using test::train_losses;

}  // namespace

TEST_CASE("a torchvision ResNet-18 mapped onto both encoders computes PyTorch's encoder outputs") {
  models::ESANet model(encoder_config(models::Encoder::resnet18, models::Block::basic, 0.0625), {64, 64, 0});
  PretrainedWeights w = read_pretrained(fixture("resnet18_tv.pth"));
  CHECK(w.format == WeightFormat::torchvision);
  REQUIRE(w.layout.has_value());
  CHECK(w.layout->str() == "ResNet-18 (BasicBlock) at width 0.0625");
  CHECK(w.dropped == std::vector<std::string>{"fc.bias", "fc.weight"});
  InitReport r = load_pretrained(model, w, 0.5, "resnet18_tv.pth");
  CHECK(r.loaded == encoder_tensors(model));
  CHECK(r.unused == 0);
  CHECK(r.wrong_shape == 0);
  CHECK(r.summary.find("initialised from 'resnet18_tv.pth' (torchvision ResNet-18 (BasicBlock) at width 0.0625; "
                       "dropped fc.bias, fc.weight): " +
                       std::to_string(r.loaded) + " loaded, ") == 0);

  // The depth encoder's first convolution is the RGB one summed over its three input channels.
  const Tensor rgb_w = load_torch_file(fixture("resnet18_tv.pth")).tensors.at("conv1.weight");
  const std::vector<double> v = rgb_w.to_f64_vector(), d = model.encoder_depth->conv1->weight.to_f64_vector();
  REQUIRE(model.encoder_depth->conv1->weight.shape() == Shape{4, 1, 7, 7});
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t k = 0; k < 49; ++k) {
      const float sum = static_cast<float>(v[(o * 3 + 0) * 49 + k] + v[(o * 3 + 1) * 49 + k] + v[(o * 3 + 2) * 49 + k]);
      CHECK(d[o * 49 + k] == doctest::Approx(sum).epsilon(1e-6));
    }

  model.eval();
  SafetensorsFile ref = load_safetensors(fixture("reference.safetensors"));
  for (const char* branch : {"rgb", "depth"}) {
    INFO(branch);
    auto& enc = std::string(branch) == "rgb" ? model.encoder_rgb : model.encoder_depth;
    Tensor x = enc->forward_first_conv(ref.tensors.at(std::string("input/") + branch));
    CHECK_CLOSE(x, ref.tensors.at(std::string(branch) + "/stem"), 1e-5, 1e-4);
    x = ops::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
    for (int i = 1; i <= 4; ++i) {
      INFO("layer" << i);
      x = enc->forward_layer(i, x);
      CHECK_CLOSE(x, ref.tensors.at(std::string(branch) + "/layer" + std::to_string(i)), 1e-5, 1e-4);
    }
  }
}

TEST_CASE("a single-modality network takes the encoder of its input") {
  const PretrainedWeights w = read_pretrained(fixture("resnet18_tv.pth"));
  const Tensor rgb_w = load_torch_file(fixture("resnet18_tv.pth")).tensors.at("conv1.weight");
  for (models::Modality m : {models::Modality::rgb, models::Modality::depth}) {
    CAPTURE(to_string(m));
    models::ModelConfig mc = encoder_config(models::Encoder::resnet18, models::Block::basic, 0.0625);
    mc.modality = m;
    models::ESANet model(mc, {64, 64, 0});
    const InitReport r = load_pretrained(model, w, 0.5, "resnet18_tv.pth");
    CHECK(r.unused == 0);  // the other encoder's copy is not offered
    const Tensor& conv1 = model.encoder->conv1->weight;
    if (m == models::Modality::rgb) {
      CHECK(conv1.to_f64_vector() == rgb_w.to_f64_vector());
    } else {
      REQUIRE(conv1.shape() == Shape{4, 1, 7, 7});
      CHECK_CLOSE(conv1, ops::sum(rgb_w, {1}, true), 1e-6, 1e-6);
    }
    CHECK(model.state_dict().at("encoder.layer4.1.bn2.running_var").to_f64_vector() ==
          load_torch_file(fixture("resnet18_tv.pth")).tensors.at("layer4.1.bn2.running_var").to_f64_vector());
  }
}

TEST_CASE("the wrapped and legacy forms map to the same tensors") {
  const PretrainedWeights zip = read_pretrained(fixture("resnet18_tv.pth"));
  for (const char* f : {"resnet18_tv_legacy.pth", "resnet18_tv_dataparallel.pth", "resnet18_tv_lightning.ckpt"}) {
    INFO(f);
    PretrainedWeights w = read_pretrained(fixture(f));
    CHECK(w.format == WeightFormat::torchvision);
    REQUIRE(w.tensors.size() == zip.tensors.size());
    for (const auto& [k, t] : zip.tensors) CHECK(w.tensors.at(k).to_f64_vector() == t.to_f64_vector());
  }
  CHECK(read_pretrained(fixture("resnet18_tv_lightning.ckpt")).container ==
        "torch zip, under 'state_dict', prefix 'model.' removed");
}

TEST_CASE("ResNet-34, ResNet-50 and ESANet's ImageNet NBt1D encoders load completely") {
  struct Case {
    const char* file;
    models::Encoder enc;
    models::Block block;
    double width;
    WeightFormat format;
  };
  for (const Case& c :
       {Case{"resnet34_tv.pth", models::Encoder::resnet34, models::Block::basic, 0.03125, WeightFormat::torchvision},
        Case{"resnet50_tv.pth", models::Encoder::resnet50, models::Block::basic, 0.03125, WeightFormat::torchvision},
        Case{"r18_nbt1d_imagenet.pth", models::Encoder::resnet18, models::Block::nbt1d, 0.0625,
             WeightFormat::esanet_imagenet}}) {
    INFO(c.file);
    models::ESANet model(encoder_config(c.enc, c.block, c.width), {64, 64, 0});
    PretrainedWeights w = read_pretrained(fixture(c.file));
    CHECK(w.format == c.format);
    InitReport r = load_pretrained(model, w, 1.0, c.file);
    CHECK(r.loaded == encoder_tensors(model));
    const Tensor src = load_torch_file(fixture(c.file)).tensors.begin()->second;  // any one: compare a known name
    (void)src;
  }
  // ESANet's ImageNet encoder: encoder.* into both encoders, fc.* dropped.
  models::ESANet model(encoder_config(models::Encoder::resnet18, models::Block::nbt1d, 0.0625), {64, 64, 0});
  PretrainedWeights w = read_pretrained(fixture("r18_nbt1d_imagenet.pth"));
  CHECK(w.dropped == std::vector<std::string>{"fc.bias", "fc.weight"});
  load_pretrained(model, w, 0.5, "imagenet");
  const TorchFile raw = load_torch_file(fixture("r18_nbt1d_imagenet.pth"));
  CHECK(model.encoder_rgb->state_dict().at("layer3.1.conv1x3_2.bias").to_f64_vector() ==
        raw.tensors.at("encoder.layer3.1.conv1x3_2.bias").to_f64_vector());
  CHECK(model.encoder_depth->state_dict().at("layer3.1.bn2.running_var").to_f64_vector() ==
        raw.tensors.at("encoder.layer3.1.bn2.running_var").to_f64_vector());
}

TEST_CASE("a whole 40-class ESANet: its head is listed and left, or kept with a class adapter") {
  models::ModelConfig mc = encoder_config(models::Encoder::resnet18, models::Block::nbt1d, 0.03125);
  PretrainedWeights w = read_pretrained(fixture("esanet_r18_nbt1d_40.pth"));
  CHECK(w.format == WeightFormat::esanet);
  {
    models::ESANet model(mc, {64, 64, 0});  // 7 classes
    InitReport r = load_pretrained(model, w, 0.5, "nyu.pth");
    CHECK(r.wrong_shape == 12);  // weight and bias of conv_out, upsample1/2.conv and the three side outputs
    CHECK(r.summary.find("wrong shape, left at initialisation: decoder.conv_out.weight: file has F32[40, 4, 3, 3], "
                         "model has F32[7, 4, 3, 3]") != std::string::npos);
  }
  mc.pretrained_classes = 40;
  models::ESANet model(mc, {64, 64, 0});
  REQUIRE(model.class_adapter);
  CHECK(model.class_adapter->weight.shape() == Shape{7, 40, 1, 1});
  model.init_class_adapter({{0, {0}}, {3, {1, 2}}});
  const Tensor aw = model.class_adapter->weight;
  CHECK(aw.at({3, 1, 0, 0}) == 1.0);
  CHECK(aw.at({3, 2, 0, 0}) == 1.0);
  CHECK(aw.at({3, 5, 0, 0}) == 0.0);
  CHECK(model.class_adapter->bias.at({3}) == 0.0);
  CHECK_THROWS_WITH_AS(model.init_class_adapter({{7, {0}}}), Contains("class 7 is not in [0, 7)"), Error);
  CHECK_THROWS_WITH_AS(model.init_class_adapter({{0, {40}}}), Contains("pretrained class 40, not in [0, 40)"), Error);
  InitReport r = load_pretrained(model, w, 0.5, "nyu.pth");
  CHECK(r.wrong_shape == 0);
  CHECK(r.left == 2);  // class_adapter.weight and .bias
  CHECK(model.state_dict().at("decoder.conv_out.weight").to_f64_vector() ==
        w.tensors.at("decoder.conv_out.weight").to_f64_vector());
  model.eval();
  models::ESANetOutput out = model.forward(test::randn({1, 3, 64, 64}), test::randn({1, 1, 64, 64}));
  CHECK(out.semantic.shape() == Shape{1, 7, 64, 64});
}

TEST_CASE("loads that map too little are errors naming both sides and the closest matches") {
  models::ESANet basic(encoder_config(models::Encoder::resnet18, models::Block::basic, 0.0625), {64, 64, 0});
  models::ESANet nbt(encoder_config(models::Encoder::resnet18, models::Block::nbt1d, 0.0625), {64, 64, 0});
  models::ESANet narrow(encoder_config(models::Encoder::resnet18, models::Block::basic, 0.03125), {64, 64, 0});
  const PretrainedWeights tv = read_pretrained(fixture("resnet18_tv.pth"));
  CHECK_THROWS_WITH_AS(load_pretrained(nbt, tv, 0.5, "tv.pth"), Contains("set model.block: basic"), Error);
  CHECK_THROWS_WITH_AS(load_pretrained(basic, read_pretrained(fixture("resnet34_tv.pth")), 0.5, "r34.pth"),
                       Contains("holds a ResNet-34 (BasicBlock) at width 0.03125 but model.encoder is resnet18"),
                       Error);
  // Another width: every encoder tensor has the wrong shape.
  CHECK_THROWS_WITH_AS(load_pretrained(narrow, tv, 0.5, "tv.pth"), Contains("below model.init_min_fraction 0.5"),
                       Error);
  CHECK_THROWS_WITH_AS(load_pretrained(narrow, tv, 0.5, "tv.pth"), Contains("wrong shape: encoder_depth.bn1.bias"),
                       Error);
  // Names that match nothing: the torchvision file taken as a whole ESANet.
  const PretrainedWeights as_esanet = read_pretrained(fixture("resnet18_tv.pth"), WeightFormat::esanet);
  try {
    load_pretrained(basic, as_esanet, 0.5, "tv.pth");
    FAIL("no error");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("matches 0 tensors of the model") != std::string::npos);
    CHECK(m.find("in the model, not in the file: context_module.") != std::string::npos);
    CHECK(m.find("in the file, not in the model: bn1.bias") != std::string::npos);
    CHECK(m.find("closest matches (file ~ model): bn1.bias ~ encoder_rgb.bn1.bias") != std::string::npos);
  }
  // Nothing changed in the model by a refused load.
  const auto before = basic.state_dict().at("encoder_rgb.conv1.weight").to_f64_vector();
  CHECK_THROWS_AS(load_pretrained(basic, tv, 1.01, "tv.pth"), Error);
  CHECK(basic.state_dict().at("encoder_rgb.conv1.weight").to_f64_vector() == before);
  CHECK_THROWS_WITH_AS(read_pretrained(fixture("reference.safetensors")), Contains("cannot tell what the file holds"),
                       Error);
}

TEST_CASE("optim.lr_scale scales updates exactly and train.freeze leaves parameters out") {
  // Two parameters from zero with equal gradients: the update of the scaled one is exactly a
  // quarter of the other's (a power of two scales AdamW's step without rounding).
  Tensor a = zeros({5}), b = zeros({5}), c = zeros({5});
  for (Tensor* t : {&a, &b, &c}) t->set_requires_grad(true);
  const std::vector<std::pair<std::string, Tensor>> named = {
      {"encoder_rgb.w", a}, {"decoder.w", b}, {"encoder_depth.w", c}};
  std::vector<ParamGroup> groups = make_param_groups(named, 0.01, {{"encoder_rgb", 0.25}}, {"encoder_depth"});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "no_decay");
  CHECK(groups[1].name == "no_decay/encoder_rgb");
  CHECK(groups[1].lr_scale == 0.25);
  AdamW opt(groups);
  const Tensor g = test::randn({5});
  for (int step = 0; step < 3; ++step) {
    a.set_grad(g.clone()), b.set_grad(g.clone()), c.set_grad(g.clone());
    opt.step(1e-2);
  }
  const std::vector<double> va = a.to_f64_vector(), vb = b.to_f64_vector();
  for (size_t i = 0; i < 5; ++i) CHECK(va[i] == 0.25 * vb[i]);
  CHECK(vb[0] != 0.0);
  CHECK(c.to_f64_vector() == std::vector<double>(5, 0.0));  // frozen: not in any group
  CHECK_THROWS_WITH_AS(make_param_groups(named, 0.0, {{"encoder", 0.1}}, {}),
                       Contains("optim.lr_scale.encoder: 'encoder' matches no parameter of the model (its modules: "
                                "decoder, encoder_depth, encoder_rgb)"),
                       Error);
  CHECK_THROWS_WITH_AS(make_param_groups(named, 0.0, {}, {"decoder.x"}), Contains("train.freeze: 'decoder.x'"), Error);
}

TEST_CASE("train.freeze keeps parameters and BatchNorm statistics bit-identical through training") {
  test::TempDir tmp("pretrained_freeze");
  Config c = tiny_config();
  c.train.epochs = 1;
  c.train.freeze = {"encoder_rgb", "encoder_depth.layer1"};
  const auto initial = models::ESANet(c.model, model_build_options(c)).state_dict();
  TrainOptions o;
  o.output_dir = (tmp.path / "r").string();
  o.quiet = true;
  run_training(c, o);
  Checkpoint last = load_checkpoint((tmp.path / "r" / "checkpoints" / "last.safetensors").string());
  int frozen = 0, moved = 0;
  for (const auto& [k, t] : initial) {
    const bool f = k.rfind("encoder_rgb.", 0) == 0 || k.rfind("encoder_depth.layer1.", 0) == 0;
    const bool same = last.model.at(k).to_f64_vector() == t.to_f64_vector();
    if (f) {
      INFO(k);
      CHECK(same);
      ++frozen;
    } else if (!same) {
      ++moved;
    }
  }
  CHECK(frozen > 50);
  CHECK(last.model.at("encoder_depth.layer2.0.bn1.running_mean").to_f64_vector() !=
        initial.at("encoder_depth.layer2.0.bn1.running_mean").to_f64_vector());
  CHECK(moved > 50);
  // Gradients still flow through the frozen encoder_depth.layer1 (its norms in evaluation mode) to conv1.
  CHECK(last.model.at("encoder_depth.conv1.weight").to_f64_vector() !=
        initial.at("encoder_depth.conv1.weight").to_f64_vector());
  c.train.freeze = {"encoder_rgb.layer9"};
  o.output_dir = (tmp.path / "r2").string();
  CHECK_THROWS_WITH_AS(run_training(c, o), Contains("train.freeze: 'encoder_rgb.layer9' names no module of the model"),
                       Error);
}

TEST_CASE("the 40-to-N class adapter trains from a whole 40-class ESANet") {
  test::TempDir tmp("pretrained_adapter");
  Config c = tiny_config();
  c.model.block = models::Block::nbt1d;
  c.model.width = 0.03125;
  c.model.depth_head = models::DepthHead::decoder;
  c.model.pretrained_classes = 40;
  c.data.class_map_from_pretrained = {{0, {0}}, {5, {3, 4}}};
  c.model.tasks = {Task::semantic};
  c.train.monitor = Monitor::miou;
  c.train.epochs = 4;
  c.optim.lr = 1e-2;
  c.train.freeze = {"encoder_rgb", "encoder_depth"};
  c.optim.lr_scale = {{"decoder", 0.5}};
  TrainOptions o;
  o.output_dir = (tmp.path / "r").string();
  o.quiet = true;
  o.init_from = fixture("esanet_r18_nbt1d_40.pth");
  run_training(c, o);
  const std::vector<double> l = train_losses(tmp.path / "r");
  REQUIRE(l.size() == 16);
  MESSAGE("losses: " << l[0] << " " << l[1] << " " << l[2] << " " << l[3] << " ... " << l[12] << " " << l[13] << " "
                     << l[14] << " " << l[15]);
  CHECK((l[12] + l[13] + l[14] + l[15]) < 0.9 * (l[0] + l[1] + l[2] + l[3]));
  Checkpoint last = load_checkpoint((tmp.path / "r" / "checkpoints" / "last.safetensors").string());
  CHECK(last.model.at("class_adapter.weight").shape() == Shape{7, 40, 1, 1});
}

TEST_CASE("mtl_convert writes mapped weights, and its exit codes and errors") {
  test::TempDir tmp("pretrained_cli");
  auto run = [&](const std::string& args) {
    const std::string cmd =
        std::string(MTL_CONVERT_EXE) + " " + args + " > " + tmp / "out.txt" + " 2> " + tmp / "err.txt";
    const int rc = std::system(cmd.c_str());
    std::ifstream o(tmp / "out.txt"), e(tmp / "err.txt");
    return std::make_tuple(WEXITSTATUS(rc), std::string((std::istreambuf_iterator<char>(o)), {}),
                           std::string((std::istreambuf_iterator<char>(e)), {}));
  };
  const std::string dst = tmp / "r18.safetensors";
  auto [rc, out, err] =
      run(fixture("resnet18_tv_lightning.ckpt") + " --out " + dst + " --encoder resnet18 --block basic");
  CHECK(rc == 0);
  CHECK(out.find("torchvision ResNet-18 (BasicBlock) at width 0.0625 (torch zip, under 'state_dict', prefix 'model.' "
                 "removed)") != std::string::npos);
  CHECK(out.find("dropped fc.bias, fc.weight") != std::string::npos);
  CHECK(out.find("wrote " + dst) != std::string::npos);
  // The written file is mtl's: it loads by name and gives the same tensors.
  PretrainedWeights mine = read_pretrained(dst), direct = read_pretrained(fixture("resnet18_tv.pth"));
  CHECK(mine.format == WeightFormat::mtl);
  REQUIRE(mine.tensors.size() == direct.tensors.size());
  for (const auto& [k, t] : direct.tensors) CHECK(mine.tensors.at(k).to_f64_vector() == t.to_f64_vector());

  auto [rc2, out2, err2] = run(fixture("resnet18_tv.pth") + " --out " + dst + " --encoder resnet34");
  CHECK(rc2 == 1);
  CHECK(err2.find("mtl_convert: error: --encoder resnet34: ") == 0);
  auto [rc3, out3, err3] = run(fixture("forbidden_global.pth") + " --out " + dst);
  CHECK(rc3 == 1);
  CHECK(err3.find("global 'os.system' is not allowed") != std::string::npos);
  auto [rc4, out4, err4] = run(fixture("truncated.pth") + " --out " + dst);
  CHECK(rc4 == 1);
  CHECK(err4.find("truncated.pth") != std::string::npos);
  auto [rc5, out5, err5] = run(fixture("resnet18_tv.pth") + " --out " + dst + " --format onnx");
  CHECK(rc5 == 2);
  auto [rc6, out6, err6] = run(fixture("resnet18_tv.pth"));
  CHECK(rc6 == 2);
  CHECK(err6.find("--out") != std::string::npos);
  auto [rc7, out7, err7] = run(fixture("esanet_r18_nbt1d_40.pth") + " --out " + dst);
  CHECK(rc7 == 0);
  CHECK(out7.find("whole ESANet") != std::string::npos);
}
