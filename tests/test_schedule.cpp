// Learning-rate schedules: warm-up start and end, the cosine and linear decay at known points,
// the end of the run and after it, min_lr, constant, and the config conversion with its errors.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/optim/schedule.h"

using namespace mtl;
using train::LrSchedule;
using train::SchedulePolicy;

namespace {
LrSchedule make(SchedulePolicy p, double base, double min_lr, int64_t warmup, int64_t total) {
  LrSchedule s;
  s.policy = p;
  s.base_lr = base;
  s.min_lr = min_lr;
  s.warmup_steps = warmup;
  s.total_steps = total;
  s.validate();
  return s;
}
}  // namespace

TEST_CASE("schedule: cosine with warm-up at its landmarks") {
  // 10 warm-up steps, then 100 decay steps.
  const LrSchedule s = make(SchedulePolicy::cosine, 0.01, 1e-4, 10, 110);
  CHECK(s.lr(0) == doctest::Approx(0.001).epsilon(1e-12));  // base * 1/10
  CHECK(s.lr(4) == doctest::Approx(0.005).epsilon(1e-12));
  CHECK(s.lr(9) == doctest::Approx(0.01).epsilon(1e-12));   // warm-up ends at base
  CHECK(s.lr(10) == doctest::Approx(0.01).epsilon(1e-12));  // decay starts at base
  CHECK(s.lr(60) == doctest::Approx(1e-4 + 0.5 * (0.01 - 1e-4)).epsilon(1e-12));  // half way
  const double quarter = 1e-4 + 0.5 * (0.01 - 1e-4) * (1 + std::cos(std::numbers::pi * 0.25));
  CHECK(s.lr(35) == doctest::Approx(quarter).epsilon(1e-12));
  const double last = 1e-4 + 0.5 * (0.01 - 1e-4) * (1 + std::cos(std::numbers::pi * 0.99));
  CHECK(s.lr(109) == doctest::Approx(last).epsilon(1e-12));  // the last step is still above min_lr
  CHECK(s.lr(109) > 1e-4);
  CHECK(s.lr(110) == 1e-4);  // the end
  CHECK(s.lr(5000) == 1e-4);  // clamped after it
  for (int64_t i = 10; i < 120; ++i) CHECK(s.lr(i + 1) <= s.lr(i));
}

TEST_CASE("schedule: cosine without warm-up and with min_lr zero") {
  const LrSchedule s = make(SchedulePolicy::cosine, 0.5, 0.0, 0, 4);
  CHECK(s.lr(0) == 0.5);
  CHECK(s.lr(1) == doctest::Approx(0.25 * (1 + std::cos(std::numbers::pi / 4))).epsilon(1e-12));
  CHECK(s.lr(2) == doctest::Approx(0.25).epsilon(1e-12));
  CHECK(s.lr(4) == 0.0);
}

TEST_CASE("schedule: linear decay and constant") {
  const LrSchedule lin = make(SchedulePolicy::linear, 1.0, 0.2, 2, 12);
  CHECK(lin.lr(0) == doctest::Approx(0.5));
  CHECK(lin.lr(2) == doctest::Approx(1.0));
  CHECK(lin.lr(7) == doctest::Approx(0.6));
  CHECK(lin.lr(12) == doctest::Approx(0.2));
  CHECK(lin.lr(20) == doctest::Approx(0.2));
  const LrSchedule c = make(SchedulePolicy::constant, 0.3, 0.0, 3, 10);
  CHECK(c.lr(0) == doctest::Approx(0.1));
  CHECK(c.lr(2) == doctest::Approx(0.3));
  CHECK(c.lr(3) == 0.3);
  CHECK(c.lr(9) == 0.3);
  CHECK(c.lr(100) == 0.3);
}

TEST_CASE("schedule: a run that is all warm-up ends at min_lr") {
  const LrSchedule s = make(SchedulePolicy::cosine, 0.1, 0.01, 5, 5);
  CHECK(s.lr(4) == doctest::Approx(0.1));
  CHECK(s.lr(5) == 0.01);
}

TEST_CASE("schedule: from the config") {
  train::ScheduleConfig cfg;
  cfg.policy = SchedulePolicy::cosine;
  cfg.warmup_steps = 0;
  cfg.warmup_epochs = 0.5;
  cfg.min_lr = 1e-6;
  LrSchedule s = train::make_schedule(cfg, 1e-3, 10, 4);
  CHECK(s.warmup_steps == 5);
  CHECK(s.total_steps == 40);
  CHECK(s.base_lr == 1e-3);
  CHECK(s.min_lr == 1e-6);
  CHECK(s.lr(0) == doctest::Approx(2e-4));
  cfg.warmup_steps = 7;
  cfg.warmup_epochs = 0;
  CHECK(train::make_schedule(cfg, 1e-3, 10, 4).warmup_steps == 7);

  cfg.warmup_steps = 0;
  cfg.warmup_epochs = 5;
  CHECK_THROWS_WITH_AS(train::make_schedule(cfg, 1e-3, 10, 4), doctest::Contains("longer than the run (40 steps"),
                       Error);
  cfg.warmup_epochs = 1;
  cfg.min_lr = 0.1;
  CHECK_THROWS_WITH_AS(train::make_schedule(cfg, 1e-3, 10, 4), doctest::Contains("schedule.min_lr"), Error);
  cfg.min_lr = 0;
  CHECK_THROWS_WITH_AS(train::make_schedule(cfg, 1e-3, 0, 4), doctest::Contains("smaller than one batch"), Error);
  CHECK_THROWS_WITH_AS(make(SchedulePolicy::cosine, -1.0, 0.0, 0, 1), doctest::Contains("base learning rate"), Error);
  CHECK_THROWS_WITH_AS(make(SchedulePolicy::cosine, 1.0, 0.0, 0, 1).lr(-1), doctest::Contains("negative step"),
                       Error);
}
