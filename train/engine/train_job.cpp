#include "train/engine/train_job.h"

#include <sstream>

#include "models/esanet.h"
#include "train/engine/hooks.h"

namespace mtl::train {

TrainSummary run_training(Config cfg, const TrainOptions& opts) {
  Trainer trainer(std::move(cfg), opts);
  for (auto& h : default_hooks(trainer)) trainer.register_hook(std::move(h));
  return trainer.train();
}

std::string model_summary(const Config& cfg) {
  models::ESANet m(cfg.model, model_build_options(cfg));
  std::ostringstream os;
  int64_t total = 0;
  for (auto& [name, n] : m.summary()) {
    os << name << ": " << n << "\n";
    total += n;
  }
  os << "total parameters: " << total << "\n";
  return os.str();
}

}  // namespace mtl::train
