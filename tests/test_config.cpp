// Configuration: defaults, the default file and to_yaml round trips, every kind of error message
// (unknown key with a suggestion, wrong type, out of range, cross-field mismatches, bad sizes),
// --set overrides, JSON input, and that docs/config.md documents every key.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "train/config/config.h"

using namespace mtl;
using namespace mtl::train;
using doctest::Contains;

namespace {

std::string temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("mtl_test_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {},
                     const std::string& source = "cfg.yaml") {
  try {
    parse_config(yaml, source, overrides);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no error for: " << yaml);
  return "";
}

}  // namespace

TEST_CASE("an empty document gives the documented defaults") {
  Config c = parse_config("", "empty.yaml");
  CHECK(c == Config{});
  CHECK(c.data.root == "data/greenhouse");
  CHECK(c.data.depth_scale == 0.001);
  CHECK(c.data.ignore_index == 255);
  CHECK(c.model.num_classes == 7);
  REQUIRE(c.data.classes.size() == 7);
  const char* names[] = {"background", "chamoe", "heatpipe", "path", "pillar", "topdownfarm", "unknown"};
  for (int i = 0; i < 7; ++i) CHECK(c.data.classes[i].name == names[i]);
  CHECK(c.train.input_size == Size2{640, 480});
  CHECK(c.train.scale_range == std::array<double, 2>{1.0, 1.4});
  CHECK(c.loss.balance == Balance::uncertainty);
  CHECK(c.loss.class_weighting == ClassWeighting::median_frequency);
  CHECK(c.runtime.device == DeviceChoice::auto_);
  CHECK(c.model.tasks == std::vector<Task>{Task::semantic, Task::depth});
}

TEST_CASE("the default config file parses back to the defaults and mentions every key") {
  const std::string text = default_config_yaml();
  CHECK(parse_config(text, "default.yaml") == Config{});
  for (const std::string& key : config_keys()) {
    std::string leaf = key.substr(key.rfind('.') + 1);
    CHECK_MESSAGE(text.find(leaf + ":") != std::string::npos, key);
  }
  // Comments explain the keys.
  CHECK(text.find("# Depth file units to metres") != std::string::npos);
}

TEST_CASE("the shipped configs/default.yaml is the generated default") {
  std::ifstream f(std::string(MTL_SOURCE_DIR) + "/configs/default.yaml");
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  CHECK(ss.str() == default_config_yaml());
}

TEST_CASE("the shipped demo config parses") {
  Config c = load_config(std::string(MTL_SOURCE_DIR) + "/configs/demo.yaml");
  CHECK(c.train.input_size.width * c.train.input_size.height <= 160 * 128);
  CHECK(c.runtime.threads == 2);
  CHECK(c.model.num_classes == 7);
}

TEST_CASE("to_yaml round-trips a config with every kind of value changed") {
  Config c;
  c.data.sources = {{"real", "data/real", 1.0}, {"synthetic", "data/syn dir", 0.5}};
  c.data.root = "data/real";
  c.data.depth_scale = 0.0002;
  c.data.max_depth = 8.5;
  c.data.ignore_index = 250;
  c.data.label_map = {{40, 2}, {255, 250}, {7, 1}};
  c.data.classes = {{"a", {1, 2, 3}}, {"b: tricky", {255, 0, 9}}, {"true", {4, 5, 6}}};
  c.data.on_error = OnError::skip;
  c.model.encoder = models::Encoder::resnet18;
  c.model.block = models::Block::basic;
  c.model.context = models::Context::appm;
  c.model.num_classes = 3;
  c.model.upsampling = nn::UpsampleMode::bilinear;
  c.model.norm = nn::NormKind::groupnorm;
  c.model.width = 0.375;
  c.model.tasks = {Task::depth, Task::semantic};
  c.model.depth_head = models::DepthHead::light;
  c.loss.balance = Balance::dwa;
  c.loss.depth = DepthLoss::l1;
  c.loss.silog_lambda = 0.5;
  c.loss.class_weighting = ClassWeighting::list;
  c.loss.class_weights = {0.1, 2.0, 1e-3};
  c.loss.fixed_weight_semantic = 0.3;
  c.loss.fixed_weight_depth = 3;
  c.loss.dwa_temperature = 1.5;
  c.loss.deep_supervision = false;
  c.optim.lr = 3e-4;
  c.optim.weight_decay = 0.05;
  c.optim.betas = {0.8, 0.95};
  c.optim.eps = 1e-6;
  c.optim.grad_clip = 1.0;
  c.optim.accumulate = 4;
  c.schedule.policy = SchedulePolicy::linear;
  c.schedule.warmup_steps = 123;
  c.schedule.warmup_epochs = 0;
  c.schedule.min_lr = 1e-7;
  c.train.epochs = 77;
  c.train.batch_size = 3;
  c.train.input_size = {320, 224};
  c.train.val_every = 2;
  c.train.patience = 5;
  c.train.min_delta = 0.001;
  c.train.monitor = Monitor::depth_rmse;
  c.train.on_nonfinite = OnNonFinite::stop;
  c.train.scale_range = {0.5, 2.0};
  c.train.hsv_jitter = 0.0;
  c.train.flip = false;
  c.train.drop_last = false;
  c.train.test_on_interrupt = true;
  c.eval.batch_size = 24;
  c.eval.tta = Tta::multiscale_flip;
  c.eval.scales = {0.5, 1.0, 1.75};
  c.checkpoint.keep_top_k = 3;
  c.checkpoint.every_epochs = 10;
  c.loss.source_weighting = SourceWeighting::mean;
  c.data.batch_mix = {{"real", 2}, {"synthetic", 1}};
  c.model.modality = models::Modality::depth;
  c.log.every = 7;
  c.log.visuals = 0;
  c.runtime.device = DeviceChoice::cuda;
  c.runtime.seed = 123456789012345ull;
  c.runtime.threads = 3;
  c.runtime.deterministic = false;
  c.runtime.precision = Precision::bf16;
  c.runtime.workers = 0;
  const std::string y = to_yaml(c);
  Config back = parse_config(y, "resolved.yaml");
  CHECK(back == c);
  CHECK(to_yaml(back) == y);
  CHECK(parse_config(to_yaml(c, true), "resolved.yaml") == c);
}

TEST_CASE("unknown keys are errors with a did-you-mean suggestion") {
  std::string e = error_of("train:\n  batchsize: 4\n");
  CHECK(e.find("cfg.yaml:2:3") != std::string::npos);
  CHECK(e.find("unknown key `train.batchsize`") != std::string::npos);
  CHECK(e.find("did you mean `train.batch_size`?") != std::string::npos);
  // The right name in the wrong section.
  CHECK_THROWS_WITH_AS(parse_config("train:\n  lr: 0.1\n", "c.yaml"), Contains("did you mean `optim.lr`?"), Error);
  CHECK_THROWS_WITH_AS(parse_config("trian:\n  epochs: 3\n", "c.yaml"), Contains("did you mean `train`?"), Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  early_stopping:\n    patiense: 3\n", "c.yaml"),
                       Contains("did you mean `train.early_stopping.patience`?"), Error);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  classes:\n    - {name: a, colour: [1, 2, 3]}\n", "c.yaml"),
                       Contains("did you mean `data.classes[0].color`?"), Error);
  // Nothing close: no suggestion, but still an error.
  e = error_of("completely_unrelated_section: 1\n");
  CHECK(e.find("unknown key `completely_unrelated_section`") != std::string::npos);
  CHECK(e.find("did you mean") == std::string::npos);
}

TEST_CASE("wrong types name the key, the value and what is allowed") {
  std::string e = error_of("train:\n  epochs: ten\n");
  CHECK(e.find("cfg.yaml:2:11: train.epochs: expected an integer in [1, 1000000], got 'ten'") != std::string::npos);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  batch_size: 2.5\n", "c.yaml"),
                       Contains("train.batch_size: expected an integer in [1, 4096], got '2.5'"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  lr: \"0.1\"\n", "c.yaml"),
                       Contains("optim.lr: expected a number in (0, 10], got the string \"0.1\""), Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  flip: yes\n", "c.yaml"),
                       Contains("train.flip: expected true or false, got 'yes'"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  betas: 0.9\n", "c.yaml"),
                       Contains("optim.betas: expected a list of two numbers, got '0.9'"), Error);
  CHECK_THROWS_WITH_AS(parse_config("train: 3\n", "c.yaml"), Contains("train: expected a mapping of keys, got '3'"), Error);
  CHECK_THROWS_WITH_AS(parse_config("loss:\n  balance: uncertainity\n", "c.yaml"),
                       Contains("loss.balance: 'uncertainity' is not allowed; expected uncertainty, dwa or fixed; did you mean `uncertainty`?"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("runtime:\n  device: gpu\n", "c.yaml"),
                       Contains("runtime.device: 'gpu' is not allowed; expected cpu, cuda or auto"), Error);
  CHECK_THROWS_WITH_AS(parse_config("loss:\n  class_weighting: list\n", "c.yaml"),
                       Contains("loss.class_weighting: give the weights themselves as a list"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  tasks: []\n", "c.yaml"),
                       Contains("model.tasks: expected a non-empty list of semantic or depth, got a list of 0 values"), Error);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  classes:\n    - {name: a, color: [1, 2]}\n", "c.yaml"),
                       Contains("data.classes[0].color: expected [r, g, b] with values in [0, 255], got a list of 2 values"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  tasks: [semantic, semantic]\n", "c.yaml"),
                       Contains("task 'semantic' is listed twice"), Error);
}

TEST_CASE("out-of-range values are errors") {
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  lr: -0.5\n", "c.yaml"),
                       Contains("c.yaml:2:7: optim.lr: -0.5 is out of range; expected a number in (0, 10]"), Error);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  depth_scale: 0\n", "c.yaml"),
                       Contains("data.depth_scale: 0 is out of range; expected a number > 0"), Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  scale_range: [1.4, 1.0]\n", "c.yaml"),
                       Contains("train.scale_range: [1.4, 1.0] is not a range"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  betas: [0.9, 1.0]\n", "c.yaml"),
                       Contains("optim.betas[1]: 1.0 is out of range; expected a number in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  width: 0\n", "c.yaml"),
                       Contains("model.width: 0 is out of range"), Error);
  CHECK_THROWS_WITH_AS(parse_config("schedule:\n  min_lr: 0.1\n", "c.yaml"),
                       Contains("schedule.min_lr: 0.1 exceeds optim.lr (0.001)"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  sync_bn: true\nruntime:\n  precision: bf16\n", "c.yaml"),
                       Contains("model.sync_bn: synchronised BatchNorm computes in float32 only"), Error);
  CHECK(parse_config("runtime:\n  precision: bf16\n", "c.yaml").runtime.precision == Precision::bf16);
}

TEST_CASE("the model section follows the network's own rules") {
  // One rule for each value, models::ModelConfig's: the config reader and the network agree.
  CHECK(parse_config("model:\n  width: 4\n", "c.yaml").model.width == 4);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  width: 4.5\n", "c.yaml"),
                       Contains("model.width: 4.5 is out of range; expected a number in (0, 4]"), Error);
  std::string classes;
  for (int i = 0; i < 257; ++i) classes += "    - {name: c" + std::to_string(i) + ", color: [0, 0, 0]}\n";
  CHECK_THROWS_WITH_AS(parse_config("data:\n  classes:\n" + classes + "model:\n  num_classes: 257\n", "c.yaml"),
                       Contains("model.num_classes: 257 is out of range; expected an integer in [1, 256]"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  encoder: resnet101\n", "c.yaml"),
                       Contains("model.encoder: 'resnet101'"), Error);
  // A combination the network cannot build is found when the file is read, not when training starts.
  CHECK_THROWS_WITH_AS(parse_config("model:\n  tasks: [depth]\n  depth_head: light\ntrain:\n  monitor: depth_rmse\n",
                                    "c.yaml"),
                       Contains("c.yaml: model.depth_head: light puts the depth head on the semantic decoder"), Error);
}

TEST_CASE("several problems are reported together") {
  std::string e = error_of("optim:\n  lr: -1\ntrain:\n  epochs: x\n  batchsize: 3\n");
  CHECK(e.find("3 problems in config 'cfg.yaml'") != std::string::npos);
  CHECK(e.find("optim.lr") != std::string::npos);
  CHECK(e.find("train.epochs") != std::string::npos);
  CHECK(e.find("train.batchsize") != std::string::npos);
}

TEST_CASE("num_classes must match the class list") {
  CHECK_THROWS_WITH_AS(parse_config("model:\n  num_classes: 5\n", "c.yaml"),
                       Contains("model.num_classes: 5 does not match data.classes, which lists 7 classes (background, chamoe"),
                       Error);
  Config c = parse_config(
      "data:\n  classes:\n    - {name: floor, color: [1, 2, 3]}\n    - {name: wall, color: [4, 5, 6]}\nmodel:\n  num_classes: 2\n",
      "c.yaml");
  CHECK(c.data.classes.size() == 2);
  CHECK(c.data.classes[1] == ClassInfo{"wall", {4, 5, 6}});
  CHECK_THROWS_WITH_AS(parse_config("loss:\n  class_weighting: [1, 2]\n", "c.yaml"),
                       Contains("loss.class_weighting: lists 2 weights but model.num_classes is 7"), Error);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  label_map: {40: 9}\n", "c.yaml"),
                       Contains("data.label_map.40: maps to 9, which is neither a class id in [0, 6] nor data.ignore_index (255)"),
                       Error);
}

TEST_CASE("input_size must be WIDTHxHEIGHT in multiples of 32") {
  CHECK(parse_config("train:\n  input_size: 320x224\n", "c.yaml").train.input_size == Size2{320, 224});
  for (const char* bad : {"640*480", "640x", "x480", "640x480x3", "-64x32", "abc"})
    CHECK_THROWS_WITH_AS(parse_config(std::string("train:\n  input_size: \"") + bad + "\"\n", "c.yaml"),
                         Contains(("train.input_size: '" + std::string(bad) + "' is not a size; expected a string WIDTHxHEIGHT").c_str()),
                         Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  input_size: 160x120\n", "c.yaml"),
                       Contains("'160x120' is not allowed; expected a string WIDTHxHEIGHT with both sides multiples of 32"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  input_size: [640, 480]\n", "c.yaml"),
                       Contains("train.input_size: expected a string WIDTHxHEIGHT"), Error);
  CHECK(parse_size("640x480") == Size2{640, 480});
  CHECK(!parse_size("640x0"));
}

TEST_CASE("--set overrides are applied, validated and named in errors") {
  Config c = parse_config("optim:\n  lr: 0.01\n", "c.yaml",
                          {"optim.lr=0.002", "train.input_size=320x256", "model.tasks=[depth]",
                           "train.monitor=depth_rmse", "data.label_map={255: ignore}", "runtime.seed=7"});
  CHECK(c.optim.lr == 0.002);
  CHECK(c.train.input_size == Size2{320, 256});
  CHECK(c.model.tasks == std::vector<Task>{Task::depth});
  CHECK(c.data.label_map.at(255) == 255);
  CHECK(c.runtime.seed == 7);
  CHECK_THROWS_WITH_AS(parse_config("", "c.yaml", {"optim.lr=abc"}),
                       Contains("--set optim.lr=abc: optim.lr: expected a number in (0, 10], got 'abc'"), Error);
  CHECK_THROWS_WITH_AS(parse_config("", "c.yaml", {"train.batchsize=4"}),
                       Contains("--set train.batchsize=4: unknown key `train.batchsize`; did you mean `train.batch_size`?"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("", "c.yaml", {"optim.lr"}), Contains("expected KEY=VALUE"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  lr: 0.1\n", "c.yaml", {"optim.lr.x=1"}),
                       Contains("--set optim.lr.x=1: `optim.lr` is not a section, so it has no key `x`"), Error);
  CHECK_THROWS_WITH_AS(parse_config("", "c.yaml", {"optim.lr.x=1"}),
                       Contains("--set optim.lr.x=1: optim.lr: expected a number in (0, 10], got a mapping"), Error);

  Config d;
  apply_override(d, "train.batch_size=16");
  CHECK(d.train.batch_size == 16);
  Config expected;
  expected.train.batch_size = 16;
  CHECK(d == expected);
  // Giving one of two exclusive keys turns the other off, whichever level it came from.
  apply_override(d, "schedule.warmup_steps=500");
  CHECK(d.schedule.warmup_steps == 500);
  CHECK(d.schedule.warmup_epochs == 0);
  CHECK_THROWS_WITH_AS(parse_config("schedule:\n  warmup_steps: 10\n  warmup_epochs: 2\n", "c.yaml"),
                       Contains("are both set"), Error);
  CHECK_THROWS_WITH_AS(apply_override(d, "model.num_classes=3"),
                       Contains("--set model.num_classes=3: model.num_classes: 3 does not match data.classes"), Error);
}

TEST_CASE("data sources") {
  Config c = parse_config(
      "data:\n  sources:\n    - {root: a, weight: 1.0, name: real}\n    - {root: b, weight: 0.5}\n", "c.yaml");
  REQUIRE(c.data.sources.size() == 2);
  CHECK(c.data.sources[1].name == "source1");
  CHECK(c.data.sources[1].weight == 0.5);
  CHECK(c.data.resolved_sources().size() == 2);
  CHECK(Config{}.data.resolved_sources() == std::vector<DataSource>{{"default", "data/greenhouse", 1.0}});
  CHECK_THROWS_WITH_AS(parse_config("data:\n  root: x\n  sources: [{root: a}]\n", "c.yaml"),
                       Contains("data.root and data.sources are both set"), Error);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  sources: [{weight: 1}]\n", "c.yaml"),
                       Contains("data.sources[0]: a source needs a `root` folder"), Error);
  // A later --set data.root replaces the sources.
  Config d = parse_config("data:\n  sources: [{root: a}, {root: b}]\n", "c.yaml", {"data.root=elsewhere"});
  CHECK(d.data.sources.empty());
  CHECK(d.data.root == "elsewhere");
}

TEST_CASE("files: YAML and JSON, with syntax errors located") {
  const std::string dir = temp_dir();
  write_file_atomic(dir + "/a.yaml", "train:\n  epochs: 3\n");
  CHECK(load_config(dir + "/a.yaml").train.epochs == 3);
  write_file_atomic(dir + "/a.json", "{\"train\": {\"epochs\": 4, \"input_size\": \"320x256\"},\n\t\"optim\": {\"lr\": 0.5}}");
  Config j = load_config(dir + "/a.json");
  CHECK(j.train.epochs == 4);
  CHECK(j.optim.lr == 0.5);
  write_file_atomic(dir + "/b.json", "{\"train\": {\"epochs\": \"4\"}}");
  CHECK_THROWS_WITH_AS(load_config(dir + "/b.json"), Contains("train.epochs: expected an integer in [1, 1000000], got the string \"4\""), Error);
  write_file_atomic(dir + "/c.json", "{\"train\": [1, 2}");
  CHECK_THROWS_WITH_AS(load_config(dir + "/c.json"), Contains("c.json: JSON syntax error"), Error);
  write_file_atomic(dir + "/d.json", "{\"train\": {\"epoch\": 4}}");
  CHECK_THROWS_WITH_AS(load_config(dir + "/d.json"), Contains("did you mean `train.epochs`?"), Error);
  write_file_atomic(dir + "/e.json", "{\"train\": 4}");
  CHECK_THROWS_WITH_AS(load_config(dir + "/e.json"), Contains("expected an object of keys"), Error);
  write_file_atomic(dir + "/bad.yaml", "train:\n  epochs: [1, 2\n");
  CHECK_THROWS_WITH_AS(load_config(dir + "/bad.yaml"), Contains("bad.yaml:"), Error);
  CHECK_THROWS_WITH_AS(load_config(dir + "/bad.yaml"), Contains("YAML syntax error"), Error);
  CHECK_THROWS_WITH_AS(load_config(dir + "/missing.yaml"), Contains(("cannot read config '" + dir + "/missing.yaml'").c_str()), Error);
  CHECK_THROWS_WITH_AS(parse_config("- 1\n- 2\n", "list.yaml"), Contains("list.yaml: the top level must be a mapping"), Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  epochs: 1\n  epochs: 2\n", "dup.yaml"), Contains("train.epochs: appears twice"), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("docs/config.md documents every key") {
  std::ifstream f(std::string(MTL_SOURCE_DIR) + "/docs/config.md");
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  for (const std::string& key : config_keys()) CHECK_MESSAGE(ss.str().find("`" + key + "`") != std::string::npos, key);
  // The key table is the generated one, so defaults and descriptions cannot drift from the code.
  CHECK(ss.str().find(config_reference_table()) != std::string::npos);
}

TEST_CASE("fine-tuning keys: lr_scale, freeze, pretrained classes and their class map") {
  Config c = parse_config(
      "model:\n  pretrained_classes: 40\n  init_min_fraction: 0.8\n"
      "data:\n  class_map_from_pretrained: {0: [0], 3: [1, 2]}\n"
      "optim:\n  lr_scale: {encoder_rgb: 0.1, encoder_depth.layer1: 0.5}\n"
      "train:\n  freeze: [decoder.decoder_module_1]\n",
      "ft.yaml");
  CHECK(c.model.pretrained_classes == 40);
  CHECK(c.model.init_min_fraction == 0.8);
  CHECK(c.data.class_map_from_pretrained == std::map<int, std::vector<int>>{{0, {0}}, {3, {1, 2}}});
  CHECK(c.optim.lr_scale == std::map<std::string, double>{{"encoder_rgb", 0.1}, {"encoder_depth.layer1", 0.5}});
  CHECK(c.train.freeze == std::vector<std::string>{"decoder.decoder_module_1"});
  CHECK(parse_config(to_yaml(c), "again.yaml") == c);
  CHECK(parse_config("", "x.yaml", {"optim.lr_scale.encoder_rgb=0.1", "train.freeze=[encoder_depth]"}).optim.lr_scale.at(
            "encoder_rgb") == 0.1);
  CHECK_THROWS_WITH_AS(parse_config("data:\n  class_map_from_pretrained: {0: [1]}\n", "m.yaml"),
                       Contains("data.class_map_from_pretrained: needs model.pretrained_classes"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  pretrained_classes: 40\ndata:\n  class_map_from_pretrained: {9: [40]}\n", "m.yaml"),
                       Contains("class 9 is not in [0, 6]"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  pretrained_classes: 40\ndata:\n  class_map_from_pretrained: {1: [40]}\n", "m.yaml"),
                       Contains("pretrained class 40 is not in [0, 39]"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  pretrained_classes: 7\n", "m.yaml"),
                       Contains("model.pretrained_classes: 7 equals model.num_classes"), Error);
  CHECK_THROWS_WITH_AS(parse_config("model:\n  init_min_fraction: 1.5\n", "m.yaml"), Contains("model.init_min_fraction"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  lr_scale: {encoder_rgb: -1}\n", "m.yaml"),
                       Contains("optim.lr_scale.encoder_rgb"), Error);
  CHECK_THROWS_WITH_AS(parse_config("optim:\n  lr_scale: {encoder..rgb: 1}\n", "m.yaml"), Contains("is not a module prefix"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  freeze: [encoder_rgb, encoder_rgb]\n", "m.yaml"), Contains("listed twice"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_config("train:\n  freeze: [encoder_rgb]\noptim:\n  lr_scale: {encoder_rgb.layer1: 0.1}\n", "m.yaml"),
                       Contains("optim.lr_scale.encoder_rgb.layer1: 'encoder_rgb.layer1' is frozen by train.freeze"), Error);
}
