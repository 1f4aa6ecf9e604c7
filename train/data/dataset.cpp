#include "train/data/dataset.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"

namespace mtl::train {

namespace fs = std::filesystem;

namespace {

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// stem -> paths of the files with an accepted extension in `dir`; `rejected` gets files whose
// extension is a known image type that this folder may not hold (a JPEG depth map, say).
std::map<std::string, std::vector<std::string>> list_folder(const fs::path& dir,
                                                           const std::vector<std::string>& accepted,
                                                           const std::vector<std::string>& rejected_exts,
                                                           std::vector<std::string>& rejected) {
  std::map<std::string, std::vector<std::string>> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename().string().rfind('.', 0) == 0) continue;  // hidden files
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    const std::string e = lower_ext(p);
    if (std::find(accepted.begin(), accepted.end(), e) != accepted.end())
      out[p.stem().string()].push_back(p.string());
    else if (std::find(rejected_exts.begin(), rejected_exts.end(), e) != rejected_exts.end())
      rejected.push_back(p.string());
  }
  for (auto& [stem, files] : out) std::sort(files.begin(), files.end());
  return out;
}

std::string size_str(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

}  // namespace

DatasetIndex list_split(const DataConfig& data, const std::string& split, bool need_masks,
                        std::vector<Problem>& problems, std::vector<std::string>& left_out) {
  DatasetIndex idx;
  idx.split = split;
  idx.sources = data.resolved_sources();
  idx.has_masks = need_masks;
  const std::vector<std::string> image_exts{".png", ".jpg", ".jpeg"}, png{".png"}, lossy{".jpg", ".jpeg"};
  for (size_t s = 0; s < idx.sources.size(); ++s) {
    const fs::path base = fs::path(idx.sources[s].root) / split;
    const fs::path img_dir = base / "images", mask_dir = base / "masks", depth_dir = base / "depth";
    bool folders_ok = true;
    for (const fs::path& d : {img_dir, depth_dir, mask_dir}) {
      if (d == mask_dir && !need_masks) continue;
      std::error_code ec;
      if (!fs::is_directory(d, ec)) {
        problems.push_back({d.string(), "folder missing (expected " + base.string() +
                                            "/{images,masks,depth}/, see docs/dataset_format.md)"});
        folders_ok = false;
      }
    }
    if (!folders_ok) continue;
    std::vector<std::string> rejected;
    auto images = list_folder(img_dir, image_exts, {}, rejected);
    auto depths = list_folder(depth_dir, png, lossy, rejected);
    std::map<std::string, std::vector<std::string>> masks;
    if (need_masks) masks = list_folder(mask_dir, png, lossy, rejected);
    for (const std::string& r : rejected)
      problems.push_back({r, "masks and depth maps must be PNG (JPEG is lossy and changes the values)"});
    for (const auto& [stem, files] : images) {
      bool ok = true;
      if (files.size() > 1) {
        problems.push_back({files[0], "several images share the stem '" + stem + "' (" + files[1] + ")"});
        ok = false;
      }
      auto d = depths.find(stem);
      if (d == depths.end()) {
        problems.push_back({(depth_dir / (stem + ".png")).string(), "missing (no depth map for " + files[0] + ")"});
        ok = false;
      }
      std::string mask;
      if (need_masks) {
        auto m = masks.find(stem);
        if (m == masks.end()) {
          problems.push_back({(mask_dir / (stem + ".png")).string(), "missing (no mask for " + files[0] + ")"});
          ok = false;
        } else {
          mask = m->second[0];
        }
      }
      if (ok) idx.samples.push_back({static_cast<int>(s), stem, files[0], mask, d->second[0]});
      else left_out.push_back(files[0]);
    }
    for (const auto& [stem, files] : depths)
      if (!images.count(stem)) problems.push_back({files[0], "depth map without an image in " + img_dir.string()});
    for (const auto& [stem, files] : masks)
      if (!images.count(stem)) problems.push_back({files[0], "mask without an image in " + img_dir.string()});
  }
  return idx;
}

Dataset::Dataset(DataConfig data, DatasetIndex index) : data_(std::move(data)), index_(std::move(index)) {
  const int ncls = num_classes();
  lut_.assign(65536, kInvalidLabel);
  for (int v = 0; v < 65536; ++v) {
    auto m = data_.label_map.find(v);
    int to = m == data_.label_map.end() ? v : m->second;
    if ((to >= 0 && to < ncls) || to == data_.ignore_index) lut_[v] = to;
  }
}

void Dataset::load_into(size_t i, Sample& s) const {
  MTL_CHECK(i < size(), "sample index ", i, " out of range for the ", index_.split, " split of ", size(), " samples");
  const SampleRef& r = index_.samples[i];
  s.index = static_cast<int64_t>(i);
  s.source = r.source;
  s.stem = r.stem;
  s.rgb = read_rgb(r.rgb);
  ImageU16 d = read_gray(r.depth, "depth map");
  MTL_CHECK(d.width == s.rgb.width && d.height == s.rgb.height, "size mismatch: ", r.rgb, " is ",
            size_str(s.rgb.width, s.rgb.height), " but ", r.depth, " is ", size_str(d.width, d.height));
  s.depth = ImageF(d.width, d.height, 1);
  const float scale = static_cast<float>(data_.depth_scale);
  for (size_t k = 0; k < d.data.size(); ++k) s.depth.data[k] = static_cast<float>(d.data[k]) * scale;
  s.labels = ImageI32();
  if (index_.has_masks) {
    ImageU16 m = read_gray(r.mask, "mask");
    MTL_CHECK(m.width == s.rgb.width && m.height == s.rgb.height, "size mismatch: ", r.rgb, " is ",
              size_str(s.rgb.width, s.rgb.height), " but ", r.mask, " is ", size_str(m.width, m.height));
    s.labels = ImageI32(m.width, m.height, 1);
    std::map<uint32_t, int64_t> bad;
    for (size_t k = 0; k < m.data.size(); ++k) {
      int32_t l = lut_[m.data[k]];
      if (l == kInvalidLabel) ++bad[m.data[k]];
      s.labels.data[k] = l;
    }
    if (!bad.empty()) {
      std::string vals;
      int shown = 0;
      for (auto [v, n] : bad) {
        if (shown++ == 8) {
          vals += ", ...";
          break;
        }
        vals += (vals.empty() ? "" : ", ") + std::to_string(v) + " (" + std::to_string(n) + " px)";
      }
      throw Error(r.mask + ": label values " + vals + " are neither classes 0.." + std::to_string(num_classes() - 1) +
                  " nor data.ignore_index (" + std::to_string(data_.ignore_index) +
                  "); remap them with data.label_map");
    }
  }
}

Sample Dataset::load(size_t i) const {
  Sample s;
  load_into(i, s);
  return s;
}

std::vector<Problem> Dataset::check(size_t i, SampleStats* stats) const {
  Sample s;
  try {
    load_into(i, s);
  } catch (const std::exception& e) {
    // Messages name the file ("'path' ..." or "path: ..."); keep the whole message. Nothing may
    // escape: this runs inside OpenMP loops.
    return {{"", e.what()}};
  }
  if (stats) {
    SampleStats st;
    st.pixels = static_cast<int64_t>(s.depth.data.size());
    for (float v : s.depth.data) {
      if (v <= 0) continue;
      ++st.depth_valid;
      double delta = v - st.depth_mean;
      st.depth_mean += delta / static_cast<double>(st.depth_valid);
      st.depth_m2 += delta * (v - st.depth_mean);
    }
    st.class_pixels.assign(num_classes(), 0);
    for (int32_t l : s.labels.data) {
      if (l == data_.ignore_index) continue;
      ++st.class_pixels[l];
      ++st.labelled_pixels;
    }
    *stats = std::move(st);
  }
  return {};
}

std::string sample_name(const DatasetIndex& index, size_t i) {
  const SampleRef& r = index.samples[i];
  return index.sources.size() > 1 ? index.sources[r.source].name + "/" + r.stem : r.stem;
}

ScanResult scan_split(const DataConfig& data, const std::string& split, bool need_masks) {
  std::vector<Problem> problems;
  std::vector<std::string> dropped;
  DatasetIndex listed = list_split(data, split, need_masks, problems, dropped);
  Dataset all(data, listed);
  const int64_t n = static_cast<int64_t>(all.size());
  std::vector<std::vector<Problem>> per(n);
  std::vector<SampleStats> stats(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) per[i] = all.check(static_cast<size_t>(i), &stats[i]);

  DatasetIndex kept = listed;
  kept.samples.clear();
  std::vector<SampleStats> kept_stats;
  for (int64_t i = 0; i < n; ++i) {
    if (per[i].empty()) {
      kept.samples.push_back(listed.samples[i]);
      kept_stats.push_back(std::move(stats[i]));
    } else {
      dropped.push_back(listed.samples[i].rgb);
      problems.insert(problems.end(), per[i].begin(), per[i].end());
    }
  }
  std::string where;
  for (const DataSource& s : listed.sources) where += (where.empty() ? "" : ", ") + s.root + "/" + split;
  auto listing = [&] {
    std::string m;
    for (const Problem& p : problems) m += "\n  " + (p.file.empty() ? p.what : p.file + ": " + p.what);
    return m;
  };
  if (!problems.empty() && data.on_error == OnError::fail)
    throw Error("data set check of " + where + " found " + std::to_string(problems.size()) + " problem" +
                (problems.size() == 1 ? "" : "s") + ":" + listing() +
                "\nFix or remove these files, or set data.on_error: skip to leave the samples out.");
  if (!problems.empty()) {
    std::fprintf(stderr, "warning: data set check of %s: %zu problem%s, %zu sample%s left out (data.on_error: skip):%s\n",
                 where.c_str(), problems.size(), problems.size() == 1 ? "" : "s", dropped.size(),
                 dropped.size() == 1 ? "" : "s", listing().c_str());
  }
  MTL_CHECK(!kept.samples.empty(), "data set check of ", where, ": no usable samples",
            problems.empty() ? " (the folders are empty)" : "; problems:" + listing());
  return ScanResult{Dataset(data, std::move(kept)), std::move(problems), std::move(dropped), std::move(kept_stats)};
}

}  // namespace mtl::train
