// The trainer's hooks end to end on tiny runs: the test split evaluated after training equals
// mtl_eval's, the train_epoch records, the loss parts, top-k and periodic checkpoints, and the
// test after an interruption.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training.h"
#include "train/engine/hooks.h"
#include "train/engine/train_job.h"
#include "train/eval/eval_job.h"
#include "train/run/checkpoint.h"

using namespace mtl;
using namespace mtl::train;
namespace fs = std::filesystem;

namespace {

// Trains the tiny configuration for `epochs` epochs into `run`, after `edit` changes it.
TrainSummary train_tiny(const fs::path& run, int epochs, void (*edit)(Config&) = nullptr) {
  Config c = test::tiny_train_config();
  c.train.epochs = epochs;
  if (edit) edit(c);
  return run_training(c, test::quiet_options(run));
}

}  // namespace

TEST_CASE("after training the best checkpoint is tested as mtl_eval tests it") {
  test::TempDir tmp("hooks_test");
  const fs::path run = tmp.path / "r";
  const TrainSummary s = train_tiny(run, 2);
  REQUIRE(fs::exists(run / "test_metrics.json"));
  CHECK(fs::exists(run / "eval_test/panel_000000.png"));
  const nlohmann::json from_training = nlohmann::json::parse(read_file((run / "test_metrics.json").string()));

  EvalToolOptions o;
  o.run_dir = run.string();
  o.split = "test";
  o.json_path = (tmp.path / "again.json").string();
  o.speed.min_seconds = 0;
  run_evaluation(o);
  const nlohmann::json again = nlohmann::json::parse(read_file(o.json_path));
  CHECK(from_training["checkpoint"] == s.best_checkpoint);
  CHECK(from_training["images"] == 4);
  CHECK(from_training["checkpoint"] == again["checkpoint"]);
  CHECK(from_training["semantic"] == again["semantic"]);  // every number, bit for bit
  CHECK(from_training["depth"] == again["depth"]);
  CHECK(from_training["speed"]["ms_per_image"].get<double>() > 0);
}

TEST_CASE("every epoch writes a train_epoch record from all its batches") {
  test::TempDir tmp("hooks_epoch");
  const fs::path run = tmp.path / "r";
  train_tiny(run, 2);
  const std::vector<nlohmann::json> epochs = test::records_of(run, "train_epoch");
  REQUIRE(epochs.size() == 2);
  const std::vector<nlohmann::json> steps = test::records_of(run, "train");
  for (int e = 0; e < 2; ++e) {
    const nlohmann::json& r = epochs[static_cast<size_t>(e)];
    CHECK(r["epoch"] == e + 1);
    CHECK(r["step"] == 6 * (e + 1));
    CHECK(r["images"] == 24);  // 6 batches of 4
    CHECK(r["time_s"].get<double>() > 0);
    const double miou = r["miou"].get<double>(), acc = r["pixel_accuracy"].get<double>();
    CHECK((miou >= 0 && miou <= 1));
    CHECK((acc >= 0 && acc <= 1));
    // The epoch's mean loss is the mean of its six logged steps (log.every 1).
    for (const char* task : {"semantic", "depth"}) {
      double sum = 0;
      for (const auto& st : steps)
        if (st["epoch"] == e + 1) sum += st[std::string("loss/") + task].get<double>();
      CHECK(r[std::string("loss/") + task].get<double>() == doctest::Approx(sum / 6).epsilon(1e-12));
    }
  }
}

TEST_CASE("the deep-supervision parts sum to the semantic loss; loss_unweighted sums the tasks") {
  test::TempDir tmp("hooks_parts");
  const fs::path run = tmp.path / "r";
  train_tiny(run, 1);
  const std::vector<nlohmann::json> steps = test::records_of(run, "train");
  REQUIRE(steps.size() == 6);
  for (const auto& r : steps) {
    const double main = r["loss/semantic/main"].get<double>();
    const double sides =
        r["loss/semantic/side_8"].get<double>() + r["loss/semantic/side_16"].get<double>() +
        r["loss/semantic/side_32"].get<double>();
    // The objective adds in float32, one part after another.
    CHECK(main + sides == doctest::Approx(r["loss/semantic"].get<double>()).epsilon(1e-6));
    CHECK(r["loss_unweighted"].get<double>() ==
          doctest::Approx(r["loss/semantic"].get<double>() + r["loss/depth"].get<double>()).epsilon(1e-12));
    CHECK(r["loss"].get<double>() != doctest::Approx(r["loss_unweighted"].get<double>()));  // balanced
  }
}

TEST_CASE("keep_top_k keeps exactly the k best validations; every_epochs writes full snapshots") {
  test::TempDir tmp("hooks_topk");
  const fs::path run = tmp.path / "r";
  train_tiny(run, 5, [](Config& c) {
    c.checkpoint.keep_top_k = 2;
    c.checkpoint.every_epochs = 2;
    c.train.monitor = Monitor::loss;  // lower is better
  });
  std::vector<std::pair<double, std::string>> evals;
  for (const auto& r : test::records_of(run, "eval"))
    evals.emplace_back(r["loss"].get<double>(), r["epoch"].dump());
  REQUIRE(evals.size() == 5);
  std::sort(evals.begin(), evals.end());
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(run / "checkpoints/top")) kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  REQUIRE(kept.size() == 2);
  std::vector<std::string> expected;
  for (int i = 0; i < 2; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "epoch%03d_step%07d.safetensors", std::stoi(evals[static_cast<size_t>(i)].second),
                  6 * std::stoi(evals[static_cast<size_t>(i)].second));
    expected.push_back(name);
  }
  std::sort(expected.begin(), expected.end());
  CHECK(kept == expected);
  // A kept file holds the weights with its value, and the loop state remembers the list.
  const Checkpoint top = load_checkpoint((run / "checkpoints/top" / expected.front()).string());
  CHECK_FALSE(top.state.has_value());
  CHECK(top.metadata.at("monitor") == "loss");
  const Checkpoint last = load_checkpoint((run / "checkpoints/last.safetensors").string());
  REQUIRE(last.state->top_k.size() == 2);
  CHECK(last.state->top_k.front().first == doctest::Approx(evals.front().first).epsilon(1e-9));
  // Snapshots at epochs 2 and 4, each a full training state.
  for (const char* f : {"epoch002.safetensors", "epoch004.safetensors"}) {
    REQUIRE(fs::exists(run / "checkpoints" / f));
    const Checkpoint snap = load_checkpoint((run / "checkpoints" / f).string());
    REQUIRE(snap.state.has_value());
    CHECK_FALSE(snap.optimizer.empty());
  }
  CHECK(load_checkpoint((run / "checkpoints/epoch004.safetensors").string()).state->epoch == 4);
  CHECK_FALSE(fs::exists(run / "checkpoints/epoch003.safetensors"));
}

TEST_CASE("an interrupted run is tested only with train.test_on_interrupt") {
  test::TempDir tmp("hooks_interrupt");
  Config c = test::tiny_train_config();
  c.train.epochs = 3;
  TrainOptions o = test::quiet_options(tmp.path / "plain");
  o.stop_after_steps = 8;
  CHECK(run_training(c, o).interrupted);
  CHECK_FALSE(fs::exists(tmp.path / "plain/test_metrics.json"));
  c.train.test_on_interrupt = true;
  o.output_dir = (tmp.path / "tested").string();
  CHECK(run_training(c, o).interrupted);
  CHECK(fs::exists(tmp.path / "tested/test_metrics.json"));
}
