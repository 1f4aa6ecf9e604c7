#include "train/engine/train_job.h"

#include <sstream>

#include "models/esanet.h"
#include "train/dist/launch.h"
#include "train/engine/hooks.h"
#include "train/run/runtime.h"

namespace mtl::train {

TrainSummary run_training(Config cfg, const TrainOptions& opts) {
  TrainOptions o = opts;
  if (!o.comm) {
    // Before anything touches CUDA: each rank of a data-parallel launch takes its own GPU.
    const Launch launch = detect_launch();
    if (launch.distributed())
      o.comm = init_process_group(launch, o.device ? *o.device : resolve_device(cfg.runtime.device),
                                  cfg.runtime.dist_timeout);
  }
  Trainer trainer(std::move(cfg), o);
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
