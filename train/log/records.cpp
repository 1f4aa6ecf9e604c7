#include "train/log/records.h"

#include <cmath>

#include "core/error.h"

namespace mtl::train {

namespace {

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

nlohmann::ordered_json json_number(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json per_class_json(const std::vector<std::optional<double>>& values,
                                      const std::vector<std::string>& names) {
  MTL_CHECK(names.empty() || names.size() == values.size(), "per-class metrics: ", names.size(), " class names for ",
            values.size(), " classes");
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (size_t c = 0; c < values.size(); ++c)
    out[names.empty() ? std::to_string(c) : names[c]] =
        values[c] ? json_number(*values[c]) : nlohmann::ordered_json(nullptr);
  return out;
}

nlohmann::ordered_json train_record(const TrainRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "train";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["lr"] = json_number(r.lr);
  j["loss"] = json_number(r.loss);
  j["loss_unweighted"] = json_number(r.loss_unweighted);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = json_number(v);
  for (const auto& [part, v] : r.loss_parts) j["loss/" + part] = json_number(v);
  for (const auto& [task, v] : r.task_weights) j["weight/" + task] = json_number(v);
  for (const auto& [key, v] : r.extra) j[key] = json_number(v);
  j["data_time"] = json_number(r.data_time);
  j["step_time"] = json_number(r.step_time);
  j["images_per_s"] = json_number(r.images_per_s);
  j["memory_mb"] = r.memory_mb ? json_number(*r.memory_mb) : nlohmann::ordered_json(nullptr);
  return j;
}

nlohmann::ordered_json epoch_record(const EpochRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "train_epoch";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = json_number(v);
  if (r.segmentation) {
    j["miou"] = json_number(r.segmentation->miou);
    j["pixel_accuracy"] = json_number(r.segmentation->pixel_accuracy);
  }
  j["images"] = r.images;
  j["time_s"] = json_number(r.time_s);
  return j;
}

nlohmann::ordered_json eval_record(const EvalRecord& r) {
  nlohmann::ordered_json j;
  j["type"] = "eval";
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  if (r.loss) j["loss"] = json_number(*r.loss);
  for (const auto& [task, v] : r.task_losses) j["loss/" + task] = json_number(v);
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    MTL_CHECK(r.class_names.empty() || r.class_names.size() == s.iou.size(), "eval record: ",
              r.class_names.size(), " class names for ", s.iou.size(), " classes");
    j["miou"] = json_number(s.miou);
    j["pixel_accuracy"] = json_number(s.pixel_accuracy);
    j["mean_accuracy"] = json_number(s.mean_accuracy);
    j["mean_f1"] = json_number(s.mean_f1);
    j["per_class_iou"] = per_class_json(s.iou, r.class_names);
    j["per_class_accuracy"] = per_class_json(s.accuracy, r.class_names);
    j["per_class_f1"] = per_class_json(s.f1, r.class_names);
  }
  if (r.depth) {
    for (const auto& [name, v] : ops::named_values(*r.depth)) j["depth_" + name] = json_number(v);
    j["depth_pixels"] = r.depth->pixels;
  }
  if (r.ms_per_image) j["ms_per_image"] = json_number(*r.ms_per_image);
  if (r.images_per_s) j["images_per_s"] = json_number(*r.images_per_s);
  j["time_s"] = json_number(r.time_s);
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
