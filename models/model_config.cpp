#include "models/model_config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace mtl::models {

bool ModelConfig::has_task(Task t) const { return std::find(tasks.begin(), tasks.end(), t) != tasks.end(); }

int64_t ModelConfig::ch(int64_t c) const {
  return std::max<int64_t>(1, static_cast<int64_t>(std::lround(static_cast<double>(c) * width)));
}

std::vector<ModelConfig::Problem> ModelConfig::problems() const {
  std::vector<Problem> out;
  auto say = [&](std::string key, auto&&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    out.push_back({std::move(key), os.str()});
  };
  if (tasks.empty()) say("model.tasks", "at least one of semantic and depth is needed");
  for (size_t i = 0; i < tasks.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (tasks[i] == tasks[j]) say("model.tasks", "task '", to_string(tasks[i]), "' is listed twice");
  if (has_task(Task::depth) && !has_task(Task::semantic) && depth_head == DepthHead::light)
    say("model.depth_head",
        "light puts the depth head on the semantic decoder, which model.tasks [depth] does not build; use decoder");
  if (num_classes < 1 || num_classes > kMaxClasses)
    say("model.num_classes", num_classes, " (expected 1..", kMaxClasses, ")");
  if (pretrained_classes != 0) {
    if (pretrained_classes < 1 || pretrained_classes > kMaxClasses)
      say("model.pretrained_classes", pretrained_classes, " (expected 0 for none, or 1..", kMaxClasses, ")");
    else if (pretrained_classes == num_classes)
      say("model.pretrained_classes", pretrained_classes,
          " equals model.num_classes, so there is nothing to adapt; leave it at 0 to load the head as it is");
    if (!has_task(Task::semantic))
      say("model.pretrained_classes", "needs the semantic task, which model.tasks does not include");
  }
  if (!(init_min_fraction >= 0 && init_min_fraction <= 1))
    say("model.init_min_fraction", init_min_fraction, " (expected a fraction in [0, 1])");
  if (!(width > 0 && width <= kMaxWidth)) say("model.width", width, " (expected a multiplier in (0, ", kMaxWidth, "])");
  return out;
}

void ModelConfig::validate() const {
  const std::vector<Problem> p = problems();
  if (p.empty()) return;
  std::string msg;
  for (const Problem& q : p) msg += (msg.empty() ? "" : "\n") + q.key + ": " + q.message;
  throw Error(msg);
}

}  // namespace mtl::models
