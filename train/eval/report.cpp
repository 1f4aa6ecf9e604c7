#include "train/eval/report.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "train/log/records.h"

namespace mtl::train {

nlohmann::ordered_json eval_report_json(const EvalReport& r) {
  nlohmann::ordered_json j;
  if (r.checkpoints.size() == 1)
    j["checkpoint"] = r.checkpoints.front();
  else
    j["checkpoint"] = r.checkpoints;
  j["split"] = r.split;
  j["images"] = r.images;
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    MTL_CHECK(r.class_names.size() == s.iou.size(), "the report has ", r.class_names.size(), " class names for ",
              s.iou.size(), " classes");
    nlohmann::ordered_json sem;
    sem["miou"] = json_number(s.miou);
    sem["pixel_accuracy"] = json_number(s.pixel_accuracy);
    sem["mean_accuracy"] = json_number(s.mean_accuracy);
    sem["mean_f1"] = json_number(s.mean_f1);
    sem["per_class_iou"] = per_class_json(s.iou, r.class_names);
    sem["per_class_accuracy"] = per_class_json(s.accuracy, r.class_names);
    sem["per_class_f1"] = per_class_json(s.f1, r.class_names);
    j["semantic"] = sem;
  }
  if (r.depth) {
    nlohmann::ordered_json dj;
    for (const auto& [name, v] : ops::named_values(*r.depth)) dj[name] = json_number(v);
    j["depth"] = dj;
  }
  nlohmann::ordered_json sp;
  sp["device"] = r.speed.device;
  sp["precision"] = r.speed.precision;
  sp["batch"] = r.speed.batch;
  sp["latency_ms"] = json_number(r.speed.latency_ms);
  sp["images_per_s"] = json_number(r.speed.images_per_s);
  sp["ms_per_image"] = json_number(1000.0 / r.speed.images_per_s);  // at the throughput batch
  j["speed"] = sp;
  return j;
}

std::string format_eval_report(const EvalReport& r) {
  std::string out;
  char buf[512];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
    out += "\n";
  };
  for (const std::string& c : r.checkpoints) line("checkpoint  %s", c.c_str());
  std::string tta(to_string(r.tta));
  if (r.tta == Tta::multiscale || r.tta == Tta::multiscale_flip) {
    tta += " (scales";
    for (double x : r.scales) {
      std::snprintf(buf, sizeof buf, " %g", x);
      tta += buf;
    }
    tta += ")";
  }
  line("split %s: %lld images | tta %s | mode %s | %.1f s", r.split.c_str(), static_cast<long long>(r.images),
       tta.c_str(), std::string(to_string(r.mode)).c_str(), r.seconds);
  size_t wname = std::string("mean: mIoU, mAcc, mF1").size();
  for (const std::string& n : r.class_names) wname = std::max(wname, n.size());
  const std::string tp = "throughput (batch " + std::to_string(r.speed.batch) + ")";
  wname = std::max(wname, tp.size());
  const int w = static_cast<int>(wname);
  auto value = [](double x) {
    char b[32];
    if (std::isfinite(x))
      std::snprintf(b, sizeof b, "%.4f", x);
    else
      std::snprintf(b, sizeof b, "-");
    return std::string(b);
  };
  if (r.segmentation) {
    const ops::SegmentationMetrics& s = *r.segmentation;
    out += "\nsemantic segmentation (at the labels' original resolution, " + std::to_string(s.pixels) + " pixels)\n";
    auto cell = [&](const std::optional<double>& v) { return v ? value(*v) : std::string("absent"); };
    line("  %-*s  %-8s  %-8s  %s", w, "class", "IoU", "accuracy", "F1");
    for (size_t c = 0; c < s.iou.size(); ++c) {
      const std::string name = c < r.class_names.size() ? r.class_names[c] : std::to_string(c);
      line("  %-*s  %-8s  %-8s  %s", w, name.c_str(), cell(s.iou[c]).c_str(), cell(s.accuracy[c]).c_str(),
           cell(s.f1[c]).c_str());
    }
    line("  %-*s  %-8s  %-8s  %s", w, "mean: mIoU, mAcc, mF1", value(s.miou).c_str(),
         value(s.mean_accuracy).c_str(), value(s.mean_f1).c_str());
    line("  %-*s  %s", w, "pixel accuracy", value(s.pixel_accuracy).c_str());
  }
  if (r.depth) {
    const ops::DepthMetrics& d = *r.depth;
    out += "\ndepth (metres, at the depth maps' original resolution, " + std::to_string(d.pixels) + " valid pixels)\n";
    for (const auto& [k, v] : ops::named_values(d)) line("  %-*s  %s", w, k.c_str(), value(v).c_str());
  }
  out += "\nspeed on " + r.speed.device + " in " + r.speed.precision + " (forward passes only, no data loading)\n";
  line("  %-*s  %.2f ms/image", w, "latency (batch 1)", r.speed.latency_ms);
  line("  %-*s  %.1f images/s", w, tp.c_str(), r.speed.images_per_s);
  for (const std::string& v : r.visuals) line("panel       %s", v.c_str());
  return out;
}

}  // namespace mtl::train
