// The trainer end to end on a tiny synthetic data set: the loss falls and the run folder holds
// what it promises; checkpoints round-trip; a run interrupted and resumed on the CPU produces the
// same losses, bit for bit, as one that never stopped; the NaN guard; SIGTERM handling; the
// model summary; mtl_train's exit codes.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/generator.h"
#include "models/esanet.h"
#include "train/optim/adamw.h"
#include "train/objective/balancer.h"
#include "train/run/checkpoint.h"
#include "train/config/config.h"
#include "train/data/synthetic/datagen.h"
#include "train/engine/hooks.h"
#include "train/engine/train_job.h"
#include "tests/support/random.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

Config tiny_config() { return test::tiny_train_config(); }

TrainOptions quiet_opts(const fs::path& out) { return test::quiet_options(out); }

using test::read_jsonl;
using test::train_losses;

}  // namespace

TEST_CASE("a tiny run trains and leaves a complete run folder") {
  test::TempDir tmp("trainer_run");
  fs::path run = tmp.path / "r";
  Config c = tiny_config();
  c.train.epochs = 6;
  c.optim.lr = 5e-3;
  TrainSummary s = run_training(c, quiet_opts(run));
  CHECK(s.steps == 6 * 6);
  CHECK_FALSE(s.interrupted);
  CHECK(train_losses(run).size() == 36);
  // It learns: the validation loss falls and the mIoU rises (the run is deterministic, so these
  // margins are not luck).
  std::vector<double> val_loss, miou;
  for (auto& r : read_jsonl(run / "metrics.jsonl"))
    if (r["type"] == "eval") val_loss.push_back(r["loss"].get<double>()), miou.push_back(r["miou"].get<double>());
  REQUIRE(val_loss.size() == 6);
  CHECK(val_loss.back() < 0.9 * val_loss.front());
  CHECK(miou.back() > miou.front());
  // The run folder.
  for (const char* f : {"config.yaml", "metrics.jsonl", "checkpoints/last.safetensors", "checkpoints/best.safetensors",
                        "visuals/epoch006_0.png", "visuals/epoch006_1.png"})
    CHECK_MESSAGE(fs::exists(run / f), f);
  CHECK(load_config((run / "config.yaml").string()) == c);
  bool events = false;
  for (auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      events = true;
      std::ifstream in(e.path(), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), {});
      CHECK(bytes.find("train/loss") != std::string::npos);
      CHECK(bytes.find("eval/miou") != std::string::npos);
      CHECK(bytes.find("\x89PNG") != std::string::npos);  // the visual panels
    }
  CHECK(events);
  // Evaluation records with per-class IoU by name.
  int evals = 0;
  for (auto& r : read_jsonl(run / "metrics.jsonl"))
    if (r["type"] == "eval") {
      ++evals;
      CHECK(r["per_class_iou"].contains("topdownfarm"));
      CHECK(r["miou"].get<double>() >= 0);
      CHECK(r.contains("depth_delta1"));
    }
  CHECK(evals == 6);
  // The best checkpoint holds weights that load strictly into the configured model.
  Checkpoint best = load_checkpoint((run / "checkpoints/best.safetensors").string());
  CHECK(best.optimizer.empty());
  CHECK_FALSE(best.state.has_value());
}

TEST_CASE("an RGB-only network trains, is tested, and mtl_eval reads it") {
  test::TempDir tmp("trainer_rgb");
  Config c = tiny_config();
  c.train.epochs = 2;
  c.model.modality = models::Modality::rgb;
  const TrainSummary s = run_training(c, quiet_opts(tmp.path / "r"));
  CHECK(s.steps == 12);
  const std::vector<double> l = train_losses(tmp.path / "r");
  CHECK(l.back() < l.front());
  const Checkpoint best = load_checkpoint(s.best_checkpoint);
  CHECK(best.model.count("encoder.conv1.weight"));
  CHECK_FALSE(best.model.count("encoder_depth.conv1.weight"));
  CHECK(fs::exists(tmp.path / "r/test_metrics.json"));
}

TEST_CASE("checkpoints round-trip the model the optimizer the balancer and the loop state") {
  test::TempDir tmp("trainer_ckpt");
  const fs::path& d = tmp.path;
  models::ModelConfig mc;
  mc.encoder = models::Encoder::resnet18, mc.width = 0.0625;
  models::ESANet model(mc, {64, 64, 0});
  UncertaintyBalancer bal({"semantic", "depth"});
  auto named = model.named_parameters();
  for (auto& [n, t] : bal.named_parameters()) named.emplace_back("balancer." + n, t);
  AdamW opt(make_param_groups(named, 0.01));
  for (auto& [n, t] : named) t.set_grad(test::randn(t.shape()));
  opt.step(1e-3);
  TrainState st;
  st.epoch = 2, st.batch = 3, st.step = 17, st.batches_seen = 40, st.skipped_steps = 1;
  st.best = 0.123456789012345678, st.best_epoch = 2, st.bad_evals = 1;
  st.epoch_loss_sum = {{"semantic", 1.0 / 3.0}, {"depth", 2.5}};
  st.epoch_batches = 3;
  std::string path = (d / "last.safetensors").string();
  save_checkpoint(path, model, &opt, &bal, &st, {{"note", "x"}});
  Checkpoint c = load_checkpoint(path);
  REQUIRE(c.state.has_value());
  CHECK(state_to_json(*c.state) == state_to_json(st));
  CHECK(*c.state->best == *st.best);
  CHECK(c.metadata.at("note") == "x");
  auto sd = model.state_dict();
  REQUIRE(c.model.size() == sd.size());
  for (auto& [k, v] : sd) CHECK(c.model.at(k).to_f64_vector() == v.to_f64_vector());
  auto os = opt.state_dict();
  REQUIRE(c.optimizer.size() == os.size());
  for (auto& [k, v] : os) CHECK(c.optimizer.at(k).to_f64_vector() == v.to_f64_vector());
  CHECK(c.balancer.size() == bal.state_dict().size());
  CHECK_THROWS_WITH_AS(load_checkpoint((d / "none.safetensors").string()), doctest::Contains("cannot open"), Error);
}

TEST_CASE("an interrupted and resumed run reproduces the uninterrupted losses bit for bit") {
  test::TempDir tmp("trainer_resume");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.loss.balance = Balance::dwa;  // the balancer's epoch state must survive the interruption too
  run_training(c, quiet_opts(root / "straight"));
  std::vector<double> straight = train_losses(root / "straight");
  REQUIRE(straight.size() == 18);

  TrainOptions first = quiet_opts(root / "interrupted");
  first.stop_after_steps = 8;  // mid-way through the second epoch
  TrainSummary s1 = run_training(c, first);
  CHECK(s1.interrupted);
  CHECK(s1.steps == 8);
  TrainOptions again;
  again.resume_dir = (root / "interrupted").string();
  again.quiet = true;
  TrainSummary s2 = run_training(c, again);
  CHECK_FALSE(s2.interrupted);
  CHECK(s2.steps == 18);
  std::vector<double> resumed = train_losses(root / "interrupted");
  REQUIRE(resumed.size() == straight.size());
  for (size_t i = 0; i < straight.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(resumed[i] == straight[i]);  // exact
  }
  // A finished run resumed again does nothing.
  TrainSummary s3 = run_training(c, again);
  CHECK(s3.steps == 18);
  CHECK(train_losses(root / "interrupted").size() == 18);
}

TEST_CASE("bf16 mixed precision trains, keeps float32 checkpoints and resumes bit for bit") {
  test::TempDir tmp("trainer_bf16");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.runtime.precision = Precision::bf16;
  c.train.epochs = 6;  // as the float32 run above, which it must match in learning
  c.optim.lr = 5e-3;
  run_training(c, quiet_opts(root / "straight"));
  const std::vector<double> straight = train_losses(root / "straight");
  REQUIRE(straight.size() == 36);
  std::vector<double> val_loss;
  for (auto& r : read_jsonl(root / "straight/metrics.jsonl"))
    if (r["type"] == "eval") val_loss.push_back(r["loss"].get<double>());
  REQUIRE(val_loss.size() == 6);
  CHECK(val_loss.back() < 0.9 * val_loss.front());  // it learns
  // Not the float32 run: the bfloat16 arithmetic really ran.
  Config f32 = c;
  f32.runtime.precision = Precision::fp32;
  TrainOptions two = quiet_opts(root / "fp32");
  two.stop_after_steps = 2;
  run_training(f32, two);
  CHECK(train_losses(root / "fp32")[1] != straight[1]);
  // Master weights and optimiser state in float32, and the configuration says bf16.
  const Checkpoint last = load_checkpoint((root / "straight/checkpoints/last.safetensors").string());
  for (const auto& [name, t] : last.model) {
    INFO(name);
    if (is_floating(t.dtype())) CHECK(t.dtype() == DType::f32);
  }
  for (const auto& [name, t] : last.optimizer) {
    INFO(name);
    if (is_floating(t.dtype())) CHECK(t.dtype() == DType::f32);
  }
  CHECK(load_config((root / "straight/config.yaml").string()).runtime.precision == Precision::bf16);
  // Interrupted and resumed: the same losses, bit for bit.
  TrainOptions first = quiet_opts(root / "interrupted");
  first.stop_after_steps = 9;
  run_training(c, first);
  TrainOptions again;
  again.resume_dir = (root / "interrupted").string();
  again.quiet = true;
  run_training(c, again);
  const std::vector<double> resumed = train_losses(root / "interrupted");
  REQUIRE(resumed.size() == straight.size());
  for (size_t i = 0; i < straight.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(resumed[i] == straight[i]);
  }
}

TEST_CASE("validation every N steps besides the epoch ends") {
  test::TempDir tmp("trainer_valsteps");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.train.epochs = 2;
  c.train.val_every_steps = 4;  // steps 4 and 8 fall inside epochs; 6 and 12 end them
  run_training(c, quiet_opts(root / "r"));
  std::vector<int64_t> steps;
  for (auto& r : read_jsonl(root / "r" / "metrics.jsonl"))
    if (r["type"] == "eval") steps.push_back(r["step"].get<int64_t>());
  CHECK(steps == std::vector<int64_t>{4, 6, 8, 12});
  CHECK(fs::exists(root / "r" / "visuals" / "step0000004_0.png"));
}

TEST_CASE("bad data leaves no run folder behind") {
  test::TempDir tmp("trainer_baddata");
  Config c = tiny_config();
  c.data.root = (tmp.path / "nowhere").string();
  CHECK_THROWS_WITH_AS(run_training(c, quiet_opts(tmp.path / "r")), doctest::Contains("nowhere"), Error);
  CHECK_FALSE(fs::exists(tmp.path / "r"));
}

TEST_CASE("a run folder that already holds a run is not overwritten") {
  test::TempDir tmp("trainer_exists");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.train.epochs = 1;
  run_training(c, quiet_opts(root / "r"));
  CHECK_THROWS_WITH_AS(run_training(c, quiet_opts(root / "r")), doctest::Contains("--resume"), Error);
}

namespace {

// Makes a weight of the semantic head NaN after optimiser step `step` (every later loss is then
// non-finite), or one gradient element NaN in the backward pass of step `step` + 1 (its loss
// stays finite).
struct Poison : HookBase {
  bool grad = false, done = false;
  int64_t step = 1;
  static Tensor head(Trainer& t) {
    for (auto& [name, p] : t.parameters())
      if (name == "decoder.conv_out.weight") return p;
    FAIL("no decoder.conv_out.weight");
    return Tensor();
  }
  void after_step(Trainer& t) override {
    if (!grad && t.state().step == step) head(t).data<float>()[0] = NAN;
  }
  void after_backward(Trainer& t) override {
    if (grad && !done && t.state().step == step) head(t).grad().data<float>()[0] = NAN, done = true;
  }
};

TrainSummary train_with(const Config& c, const TrainOptions& o, std::unique_ptr<HookBase> extra) {
  Trainer t(c, o);
  for (auto& h : default_hooks(t)) t.register_hook(std::move(h));
  t.register_hook(std::move(extra));
  return t.train();
}

}  // namespace

TEST_CASE("the NaN guard names the step and the losses or skips the steps") {
  test::TempDir tmp("trainer_nan");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.train.epochs = 1;
  c.train.on_nonfinite = OnNonFinite::stop;
  try {
    train_with(c, quiet_opts(root / "fail"), std::make_unique<Poison>());
    FAIL("a NaN loss did not stop the run");
  } catch (const Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("non-finite loss at epoch 1 step 2") != std::string::npos);
    CHECK(m.find("semantic = ") != std::string::npos);
    CHECK(m.find("depth = ") != std::string::npos);
    CHECK(m.find("train.on_nonfinite: stop") != std::string::npos);
  }
  // stop saved the state it stopped in.
  CHECK(load_checkpoint((root / "fail" / "checkpoints" / "last.safetensors").string()).state->step == 1);
  c.train.on_nonfinite = OnNonFinite::skip;
  TrainSummary s = train_with(c, quiet_opts(root / "skip"), std::make_unique<Poison>());
  CHECK(s.steps == 1);  // one update, then five skipped batches
  std::string last = read_jsonl(root / "skip" / "metrics.jsonl").back().dump();
  CHECK(last.find("\"type\":\"eval\"") != std::string::npos);
}

TEST_CASE("a NaN gradient with finite losses is caught by the gradient norm") {
  test::TempDir tmp("trainer_nan_grad");
  Config c = tiny_config();
  c.train.epochs = 1;
  c.train.on_nonfinite = OnNonFinite::stop;
  auto poison = [] {
    auto p = std::make_unique<Poison>();
    p->grad = true;
    return p;
  };
  CHECK_THROWS_WITH_AS(train_with(c, quiet_opts(tmp.path / "stop"), poison()),
                       doctest::Contains("non-finite gradient norm at epoch 1 step 2"), Error);
  c.train.on_nonfinite = OnNonFinite::skip;
  const TrainSummary s = train_with(c, quiet_opts(tmp.path / "skip"), poison());
  CHECK(s.steps == 5);  // six batches, the second one's step skipped
  std::vector<nlohmann::json> lines = read_jsonl(tmp.path / "skip" / "metrics.jsonl");
  bool counted = false;
  for (const auto& r : lines)
    if (r["type"] == "train" && r.contains("skipped_steps")) counted = r["skipped_steps"] == 1;
  CHECK(counted);
}

TEST_CASE("SIGTERM finishes the step and saves a checkpoint that resumes") {
  test::TempDir tmp("trainer_sigterm");
  const fs::path& root = tmp.path;
  Config c = tiny_config();
  c.train.epochs = 50;
  std::thread killer([&] {
    // Wait for the first logged step, then send the signal to the process.
    for (int i = 0; i < 6000 && !(fs::exists(root / "r" / "metrics.jsonl") && fs::file_size(root / "r" / "metrics.jsonl") > 0); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::raise(SIGTERM);
  });
  TrainSummary s = run_training(c, quiet_opts(root / "r"));
  killer.join();
  CHECK(s.interrupted);
  CHECK(s.steps < 50 * 6);
  Checkpoint ck = load_checkpoint((root / "r" / "checkpoints" / "last.safetensors").string());
  REQUIRE(ck.state.has_value());
  CHECK(ck.state->step == s.steps);
}

TEST_CASE("the model summary lists top-level modules and the total") {
  Config c = tiny_config();
  std::string s = model_summary(c);
  CHECK(s.find("encoder_rgb: ") != std::string::npos);
  CHECK(s.find("depth_head: ") != std::string::npos);
  models::ModelConfig mc;
  mc.encoder = models::Encoder::resnet18, mc.block = models::Block::basic, mc.width = 0.0625;
  mc.depth_head = models::DepthHead::light;
  models::ESANet m(mc, {64, 64, 0});
  std::string last = s.substr(s.rfind("total parameters: "));
  CHECK(last == "total parameters: " + std::to_string(m.num_parameters()) + "\n");
}

TEST_CASE("mtl_train exit codes and one-line errors") {
  test::TempDir tmp("trainer_cli");
  const fs::path& d = tmp.path;
  auto run = [&](const std::string& args) {
    std::string cmd = std::string(MTL_TRAIN_EXE) + " " + args + " > " + (d / "out.txt").string() + " 2> " + (d / "err.txt").string();
    int rc = std::system(cmd.c_str());
    std::ifstream e(d / "err.txt");
    std::string err((std::istreambuf_iterator<char>(e)), {});
    return std::make_pair(WEXITSTATUS(rc), err);
  };
  auto [rc1, err1] = run((d / "missing.yaml").string());
  CHECK(rc1 == 2);
  CHECK(err1.find("mtl_train: error: ") == 0);
  CHECK(err1.find("missing.yaml") != std::string::npos);
  std::ofstream(d / "bad.yaml") << "optim:\n  lr: fast\n";
  auto [rc2, err2] = run((d / "bad.yaml").string());
  CHECK(rc2 == 2);
  CHECK(err2.find("optim.lr") != std::string::npos);
  auto [rc3, err3] = run("--create-default-config " + (d / "default.yaml").string());
  CHECK(rc3 == 0);
  CHECK(load_config((d / "default.yaml").string()) == Config{});
  auto [rc4, err4] = run((d / "default.yaml").string() + " --set data.root=" + (d / "nowhere").string());
  CHECK(rc4 == 1);
  CHECK(err4.find("nowhere") != std::string::npos);
  auto [rc5, err5] = run((d / "default.yaml").string() + " --summary");
  CHECK(rc5 == 0);
  std::ifstream o(d / "out.txt");
  std::string out((std::istreambuf_iterator<char>(o)), {});
  CHECK(out.find("total parameters: ") != std::string::npos);

  // --config FILE as well as the positional form, not both.
  auto [rc6, err6] = run("--config " + (d / "default.yaml").string() + " --summary");
  CHECK(rc6 == 0);
  auto [rc7, err7] = run((d / "default.yaml").string() + " --config " + (d / "default.yaml").string());
  CHECK(rc7 == 2);
  CHECK(err7.find("give the configuration once") != std::string::npos);
  // A JSON file is read whatever its name says, with a warning.
  std::ofstream(d / "as_json.yaml") << "{\"train\": {\"epochs\": 4},\n\t\"model\": {\"width\": 0.5}}";
  auto [rc8, err8] = run((d / "as_json.yaml").string() + " --summary");
  CHECK(rc8 == 0);
  CHECK(err8.find("warning: reading '") == 0);
  CHECK(err8.find("as JSON") != std::string::npos);
  // --create-default-config without a path writes config.yaml in the working folder, and never
  // overwrites a file.
  const std::string in_dir = "cd " + d.string() + " && ";
  CHECK(std::system((in_dir + MTL_TRAIN_EXE + " --create-default-config > /dev/null").c_str()) == 0);
  REQUIRE(fs::exists(d / "config.yaml"));
  CHECK(load_config((d / "config.yaml").string()) == Config{});
  auto [rc9, err9] = run("--create-default-config " + (d / "config.yaml").string());
  CHECK(rc9 == 2);
  CHECK(err9.find("exists; not overwriting it") != std::string::npos);
}
