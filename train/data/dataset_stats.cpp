#include "train/data/dataset_stats.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "train/config/reader.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "mtl-dataset-stats";
constexpr int kVersion = 1;

struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);  // keeps "ab"+"c" apart from "a"+"bc"
  }
  void add(int64_t v) { add(&v, sizeof v); }
};

void add_file(Fnv& f, const std::string& path) {
  f.add(path);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  f.add(ec ? int64_t{-1} : static_cast<int64_t>(size));
  const auto t = fs::last_write_time(path, ec);
  f.add(ec ? int64_t{-1} : static_cast<int64_t>(t.time_since_epoch().count()));
}

}  // namespace

DatasetStats merge_stats(const std::vector<SampleStats>& per_sample, int num_classes) {
  DatasetStats out;
  out.class_pixels.assign(num_classes, 0);
  out.class_image_pixels.assign(num_classes, 0);
  double mean = 0, m2 = 0;
  int64_t n = 0;
  for (const SampleStats& s : per_sample) {
    ++out.samples;
    out.pixels += s.pixels;
    if (s.depth_valid > 0) {  // Chan et al.'s pairwise update of mean and squared deviations
      const int64_t nn = n + s.depth_valid;
      const double delta = s.depth_mean - mean;
      mean += delta * static_cast<double>(s.depth_valid) / static_cast<double>(nn);
      m2 += s.depth_m2 + delta * delta * static_cast<double>(n) * static_cast<double>(s.depth_valid) /
                             static_cast<double>(nn);
      n = nn;
    }
    MTL_CHECK(s.class_pixels.empty() || static_cast<int>(s.class_pixels.size()) == num_classes,
              "merge_stats: a sample has ", s.class_pixels.size(), " class counts, expected ", num_classes);
    for (size_t c = 0; c < s.class_pixels.size(); ++c) {
      out.class_pixels[c] += s.class_pixels[c];
      if (s.class_pixels[c] > 0) out.class_image_pixels[c] += s.labelled_pixels;
    }
  }
  out.depth_valid = n;
  out.depth_mean = mean;
  const double var = n > 0 ? m2 / static_cast<double>(n) : 0.0;
  out.depth_std = var > 1e-12 ? std::sqrt(var) : 1.0;
  return out;
}

DatasetStats compute_stats(const Dataset& ds) {
  const int64_t n = static_cast<int64_t>(ds.size());
  std::vector<SampleStats> per(n);
  std::vector<std::vector<Problem>> problems(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) problems[i] = ds.check(static_cast<size_t>(i), &per[i]);
  for (int64_t i = 0; i < n; ++i)
    MTL_CHECK(problems[i].empty(), "computing data set statistics: ", problems[i][0].file,
              problems[i][0].file.empty() ? "" : ": ", problems[i][0].what);
  DatasetStats s = merge_stats(per, ds.num_classes());
  s.fingerprint = dataset_fingerprint(ds);
  return s;
}

std::string dataset_fingerprint(const Dataset& ds) {
  Fnv f;
  f.add(std::string(kFormat) + " v" + std::to_string(kVersion));
  const DataConfig& d = ds.data();
  f.add(schema::render_double(d.depth_scale));
  f.add(static_cast<int64_t>(d.ignore_index));
  f.add(static_cast<int64_t>(d.classes.size()));
  for (auto [from, to] : d.label_map) f.add(int64_t{from} * 65536 + to);
  f.add(static_cast<int64_t>(ds.index().has_masks));
  for (const SampleRef& r : ds.index().samples) {
    add_file(f, r.rgb);
    add_file(f, r.depth);
    if (!r.mask.empty()) add_file(f, r.mask);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

void save_stats(const std::string& path, const DatasetStats& s, const Dataset& ds) {
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["fingerprint"] = s.fingerprint;
  j["split"] = ds.index().split;
  j["samples"] = s.samples;
  j["pixels"] = s.pixels;
  j["depth"] = {{"units", "metres"}, {"mean", s.depth_mean}, {"std", s.depth_std}, {"valid_pixels", s.depth_valid}};
  nlohmann::json classes = nlohmann::json::array();
  for (size_t c = 0; c < s.class_pixels.size(); ++c)
    classes.push_back({{"name", c < ds.data().classes.size() ? ds.data().classes[c].name : std::to_string(c)},
                       {"pixels", s.class_pixels[c]},
                       {"image_pixels", s.class_image_pixels[c]}});
  j["classes"] = classes;
  write_file_atomic(path, j.dump(2) + "\n");
}

DatasetStats load_stats(const std::string& path) {
  std::string text;
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    MTL_CHECK(f != nullptr, "cannot open data set statistics '", path, "'");
    char buf[4096];
    size_t k;
    while ((k = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, k);
    std::fclose(f);
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    MTL_CHECK(j.at("format") == kFormat && j.at("version") == kVersion, "'", path,
              "' is not an mtl data set statistics file of version ", kVersion);
    DatasetStats s;
    s.fingerprint = j.at("fingerprint").get<std::string>();
    s.samples = j.at("samples").get<int64_t>();
    s.pixels = j.at("pixels").get<int64_t>();
    s.depth_mean = j.at("depth").at("mean").get<double>();
    s.depth_std = j.at("depth").at("std").get<double>();
    s.depth_valid = j.at("depth").at("valid_pixels").get<int64_t>();
    for (const auto& c : j.at("classes")) {
      s.class_pixels.push_back(c.at("pixels").get<int64_t>());
      s.class_image_pixels.push_back(c.at("image_pixels").get<int64_t>());
    }
    MTL_CHECK(std::isfinite(s.depth_mean) && std::isfinite(s.depth_std) && s.depth_std > 0, "'", path,
              "' holds an invalid depth mean/std");
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "' is not a valid data set statistics file: " + e.what());
  }
}

DatasetStats load_or_compute_stats(const Dataset& train, const std::string& cache_path,
                                   const std::vector<SampleStats>* scanned) {
  const std::string fp = dataset_fingerprint(train);
  std::error_code ec;
  if (!cache_path.empty() && fs::exists(cache_path, ec)) {
    try {
      DatasetStats s = load_stats(cache_path);
      if (s.fingerprint == fp && static_cast<int>(s.class_pixels.size()) == train.num_classes()) return s;
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: ignoring the statistics cache: %s\n", e.what());
    }
  }
  DatasetStats s;
  if (scanned) {
    MTL_CHECK(scanned->size() == train.size(), "load_or_compute_stats: ", scanned->size(),
              " scanned samples for a data set of ", train.size());
    s = merge_stats(*scanned, train.num_classes());
    s.fingerprint = fp;
  } else {
    s = compute_stats(train);
  }
  if (!cache_path.empty()) {
    try {
      save_stats(cache_path, s, train);
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: cannot cache the data set statistics (%s); they will be computed again next time\n",
                   e.what());
    }
  }
  return s;
}

std::string default_stats_cache(const DataConfig& data) {
  return (fs::path(data.resolved_sources().front().root) / "mtl_stats.json").string();
}

}  // namespace mtl::train
