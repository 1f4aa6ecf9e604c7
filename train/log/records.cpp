#include "train/log/records.h"

#include <cmath>

#include "core/error.h"

namespace mtl::train {

namespace {

// JSON has no NaN or infinity; null says "no value" to every reader.
nlohmann::ordered_json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

void flatten(const std::string& prefix, const nlohmann::ordered_json& j, NamedValues& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string tag = prefix + "/" + it.key();
    if (it->is_object()) {
      flatten(tag, *it, out);
    } else if (it->is_number()) {
      out.emplace_back(tag, it->get<double>());
    }
  }
}

}  // namespace

nlohmann::ordered_json train_record(const TrainRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "train";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["lr"] = number_or_null(r.lr);
  j["loss"] = number_or_null(r.loss);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = number_or_null(v);
  for (const auto& [task, v] : r.task_weights) j["weight/" + task] = number_or_null(v);
  for (const auto& [key, v] : r.extra) j[key] = number_or_null(v);
  j["data_time"] = number_or_null(r.data_time);
  j["step_time"] = number_or_null(r.step_time);
  j["images_per_s"] = number_or_null(r.images_per_s);
  j["memory_mb"] = r.memory_mb ? number_or_null(*r.memory_mb) : nlohmann::ordered_json(nullptr);
  return j;
}

nlohmann::ordered_json eval_record(const EvalRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "eval";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  if (r.loss) j["loss"] = number_or_null(*r.loss);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = number_or_null(v);
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    MTL_CHECK(r.class_names.empty() || r.class_names.size() == s.iou.size(), "eval record: ",
              r.class_names.size(), " class names for ", s.iou.size(), " classes");
    j["miou"] = number_or_null(s.miou);
    j["pixel_accuracy"] = number_or_null(s.pixel_accuracy);
    nlohmann::ordered_json per_class = nlohmann::ordered_json::object();
    for (size_t c = 0; c < s.iou.size(); ++c) {
      const std::string name = r.class_names.empty() ? std::to_string(c) : r.class_names[c];
      per_class[name] = s.iou[c] ? number_or_null(*s.iou[c]) : nlohmann::ordered_json(nullptr);
    }
    j["per_class_iou"] = std::move(per_class);
  }
  if (r.depth) {
    for (const auto& [name, v] : ops::named_values(*r.depth)) j["depth_" + name] = number_or_null(v);
    j["depth_pixels"] = r.depth->pixels;
  }
  j["time_s"] = number_or_null(r.time_s);
  return j;
}

NamedValues record_scalars(const nlohmann::ordered_json& record) {
  const std::string type = record.contains("type") && record["type"].is_string()
                               ? record["type"].get<std::string>()
                               : std::string("record");
  NamedValues out;
  nlohmann::ordered_json rest = record;
  rest.erase("type");
  rest.erase("epoch");
  rest.erase("step");
  flatten(type, rest, out);
  return out;
}

}  // namespace mtl::train
