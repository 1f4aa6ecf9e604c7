#include "train/run/pretrained.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch_file.h"
#include "train/config/reader.h"
#include "train/run/checkpoint.h"

namespace mtl::train {

namespace {

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

std::string head(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  MTL_CHECK(f.good(), "cannot open '", path, "'");
  std::string b(n, '\0');
  f.read(b.data(), static_cast<std::streamsize>(n));
  b.resize(static_cast<size_t>(f.gcount()));
  return b;
}

// safetensors: an 8-byte header length, then the JSON header.
bool looks_like_safetensors(const std::string& h) { return h.size() >= 9 && h[8] == '{'; }

std::string first_names(const std::vector<std::string>& names, size_t n) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < n; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > n) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s.empty() ? "none" : s;
}

std::vector<std::string> keys(const std::map<std::string, Tensor>& m) {
  std::vector<std::string> k;
  for (const auto& [n, t] : m) k.push_back(n);
  return k;
}

// Block indices in a stage: "layer3.5.conv1.weight" counts layer3's block 5.
int blocks_in(const std::map<std::string, Tensor>& resnet, int stage) {
  std::set<int> idx;
  const std::string p = "layer" + std::to_string(stage) + ".";
  for (const auto& [n, t] : resnet) {
    if (!starts_with(n, p)) continue;
    const size_t dot = n.find('.', p.size());
    try {
      idx.insert(std::stoi(n.substr(p.size(), dot - p.size())));
    } catch (const std::exception&) {
    }
  }
  return static_cast<int>(idx.size());
}

EncoderLayout layout_of(const std::map<std::string, Tensor>& resnet, const std::string& source) {
  EncoderLayout l;
  const bool bottleneck = resnet.count("layer1.0.conv3.weight") > 0;
  if (bottleneck)
    l.block = models::Block::basic;
  else if (resnet.count("layer1.0.conv3x1_1.weight"))
    l.block = models::Block::nbt1d;
  else if (resnet.count("layer1.0.conv1.weight"))
    l.block = models::Block::basic;
  else
    throw Error(
        "'" + source +
        "': the ResNet in the file has no layer1.0 block mtl knows (BasicBlock, NonBottleneck1D or Bottleneck)");
  const int b[4] = {blocks_in(resnet, 1), blocks_in(resnet, 2), blocks_in(resnet, 3), blocks_in(resnet, 4)};
  const std::string counts = "[" + std::to_string(b[0]) + ", " + std::to_string(b[1]) + ", " + std::to_string(b[2]) +
                             ", " + std::to_string(b[3]) + "]";
  if (bottleneck && b[0] == 3 && b[1] == 4 && b[2] == 6 && b[3] == 3)
    l.encoder = models::Encoder::resnet50;
  else if (!bottleneck && b[0] == 2 && b[1] == 2 && b[2] == 2 && b[3] == 2)
    l.encoder = models::Encoder::resnet18;
  else if (!bottleneck && b[0] == 3 && b[1] == 4 && b[2] == 6 && b[3] == 3)
    l.encoder = models::Encoder::resnet34;
  else
    throw Error("'" + source + "': a ResNet with " + std::string(bottleneck ? "bottleneck" : "basic") + " blocks " +
                counts +
                " per stage; ESANet's encoders are ResNet-18 [2, 2, 2, 2], ResNet-34 [3, 4, 6, 3] and ResNet-50 "
                "(bottleneck, [3, 4, 6, 3])");
  auto c1 = resnet.find("conv1.weight");
  MTL_CHECK(c1 != resnet.end() && c1->second.dim() == 4, "'", source, "': the ResNet in the file has no conv1.weight");
  l.width = static_cast<double>(c1->second.size(0)) / 64.0;
  return l;
}

// conv1 of the depth encoder: the RGB kernel summed over its input channels.
Tensor sum_input_channels(const Tensor& w) {
  const int64_t o = w.size(0), i = w.size(1), k = w.size(2) * w.size(3);
  const std::vector<double> v = w.to_f64_vector();
  std::vector<double> s(static_cast<size_t>(o * k), 0.0);
  for (int64_t a = 0; a < o; ++a)
    for (int64_t c = 0; c < i; ++c)
      for (int64_t j = 0; j < k; ++j) s[static_cast<size_t>(a * k + j)] += v[static_cast<size_t>((a * i + c) * k + j)];
  return from_vector(s, {o, 1, w.size(2), w.size(3)}, w.dtype());
}

// A classification ResNet's names into both encoders.
void map_resnet(PretrainedWeights& w, const std::map<std::string, Tensor>& resnet, const std::string& source) {
  w.layout = layout_of(resnet, source);
  for (const auto& [n, t] : resnet) {
    if (!(starts_with(n, "conv1.") || starts_with(n, "bn1.") || starts_with(n, "layer"))) {
      w.dropped.push_back(n);
      continue;
    }
    w.tensors["encoder_rgb." + n] = t;
    w.tensors["encoder_depth." + n] = n == "conv1.weight" && t.dim() == 4 ? sum_input_channels(t) : t;
  }
}

bool any_starts(const std::map<std::string, Tensor>& m, std::string_view p) {
  return std::any_of(m.begin(), m.end(), [&](const auto& kv) { return starts_with(kv.first, p); });
}

WeightFormat recognise(const std::map<std::string, Tensor>& t, bool safetensors, const std::string& source) {
  if (any_starts(t, "encoder_rgb.") || any_starts(t, "encoder_depth."))
    return safetensors ? WeightFormat::mtl : WeightFormat::esanet;
  if (std::any_of(t.begin(), t.end(),
                  [](const auto& kv) { return kv.first.find("encoder.layer1.") != std::string::npos; }))
    return WeightFormat::esanet_imagenet;
  if (t.count("conv1.weight") && any_starts(t, "layer1.")) return WeightFormat::torchvision;
  throw Error("'" + source + "': cannot tell what the file holds (its first names: " + first_names(keys(t), 6) +
              "); expected torchvision ResNet names (conv1.weight, layer1.0...), ESANet's ImageNet encoder "
              "(encoder.conv1.weight, ...) or a whole ESANet (encoder_rgb..., decoder...); pass --format");
}

}  // namespace

std::string EncoderLayout::str() const {
  std::string s = encoder == models::Encoder::resnet18   ? "ResNet-18"
                  : encoder == models::Encoder::resnet34 ? "ResNet-34"
                                                         : "ResNet-50";
  if (encoder != models::Encoder::resnet50) s += block == models::Block::basic ? " (BasicBlock)" : " (NonBottleneck1D)";
  if (width != 1.0) {
    std::ostringstream os;
    os << " at width " << width;
    s += os.str();
  }
  return s;
}

std::string PretrainedWeights::describe() const {
  switch (format) {
    case WeightFormat::torchvision:
      return "torchvision " + (layout ? layout->str() : std::string("ResNet"));
    case WeightFormat::esanet_imagenet:
      return "ESANet ImageNet encoder " + (layout ? layout->str() : std::string());
    case WeightFormat::esanet:
      return "whole ESANet";
    case WeightFormat::mtl:
      return "mtl weights";
    case WeightFormat::auto_:
      break;
  }
  return "weights";
}

PretrainedWeights read_pretrained(const std::string& path, WeightFormat format) {
  const std::string h = head(path, 16);
  std::map<std::string, Tensor> raw;
  PretrainedWeights w;
  const bool safetensors = !looks_like_torch_file(h) && looks_like_safetensors(h);
  if (safetensors) {
    raw = load_checkpoint(path).model;  // an mtl checkpoint's optimizer state is not weights
    w.container = "safetensors";
  } else {
    TorchFile tf = load_torch_file(path);
    raw = std::move(tf.tensors);
    w.container = "torch " + tf.format + ", " + tf.location;
    for (const std::string& p : tf.removed_prefixes) w.container += ", prefix '" + p + "' removed";
  }
  w.format = format == WeightFormat::auto_ ? recognise(raw, safetensors, path) : format;
  switch (w.format) {
    case WeightFormat::torchvision:
      map_resnet(w, raw, path);
      break;
    case WeightFormat::esanet_imagenet: {
      // imagenet_pretraining.py's classifier: the encoder under "encoder.", then fc.
      std::map<std::string, Tensor> enc;
      for (const auto& [n, t] : raw) {
        const size_t p = n.rfind("encoder.");
        if (p == std::string::npos)
          w.dropped.push_back(n);
        else
          enc[n.substr(p + 8)] = t;
      }
      MTL_CHECK(!enc.empty(), "'", path,
                "': no encoder.* tensors, so this is not ESANet's ImageNet encoder checkpoint");
      map_resnet(w, enc, path);
      break;
    }
    case WeightFormat::esanet:
    case WeightFormat::mtl:
      w.tensors = std::move(raw);
      break;
    case WeightFormat::auto_:
      break;
  }
  return w;
}

namespace {

// A single-modality network has one encoder, "encoder": it takes the file's encoder of its input
// (the RGB one, or the depth one with its summed first convolution) and none of the other.
PretrainedWeights for_one_modality(const PretrainedWeights& w, models::Modality modality) {
  const std::string own = modality == models::Modality::rgb ? "encoder_rgb." : "encoder_depth.";
  const std::string other = modality == models::Modality::rgb ? "encoder_depth." : "encoder_rgb.";
  PretrainedWeights out = w;
  out.tensors.clear();
  for (const auto& [n, t] : w.tensors) {
    if (starts_with(n, own))
      out.tensors["encoder." + n.substr(own.size())] = t;
    else if (!starts_with(n, other))
      out.tensors[n] = t;
  }
  return out;
}

}  // namespace

InitReport load_pretrained(models::ESANet& model, const PretrainedWeights& given, double min_fraction,
                           const std::string& source) {
  const models::ModelConfig& cfg = model.config();
  const PretrainedWeights w =
      cfg.modality == models::Modality::rgbd ? given : for_one_modality(given, cfg.modality);
  const std::string what = "'" + source + "' (" + w.describe() + ")";
  if (w.layout) {
    const EncoderLayout& l = *w.layout;
    MTL_CHECK(l.encoder == cfg.encoder, what, " holds a ", l.str(), " but model.encoder is ", to_string(cfg.encoder),
              "; set model.encoder: ", to_string(l.encoder));
    MTL_CHECK(l.encoder == models::Encoder::resnet50 || l.block == cfg.block, what, " has ",
              l.block == models::Block::basic ? "BasicBlock" : "NonBottleneck1D", " layers but model.block is ",
              to_string(cfg.block), "; set model.block: ", to_string(l.block));
  }
  // What matches, before anything is changed.
  const std::map<std::string, Tensor> sd = model.state_dict();
  std::vector<std::string> missing, unused;
  InitReport r;
  int64_t enc_total = 0, enc_loaded = 0;
  for (const auto& [n, t] : sd) {
    const bool enc = starts_with(n, "encoder_rgb.") || starts_with(n, "encoder_depth.") || starts_with(n, "encoder.");
    enc_total += enc;
    auto it = w.tensors.find(n);
    if (it == w.tensors.end()) {
      missing.push_back(n);
    } else if (it->second.shape() != t.shape()) {
      r.wrong_shapes.push_back(n + ": file has " + dtype_name(it->second.dtype()) + shape_str(it->second.shape()) +
                               ", model has " + dtype_name(t.dtype()) + shape_str(t.shape()));
    } else {
      ++r.loaded;
      enc_loaded += enc;
    }
  }
  for (const auto& [n, t] : w.tensors)
    if (!sd.count(n)) unused.push_back(n);
  r.left = static_cast<int64_t>(missing.size() + r.wrong_shapes.size());
  r.unused = static_cast<int64_t>(unused.size());
  r.wrong_shape = static_cast<int64_t>(r.wrong_shapes.size());
  const double fraction = enc_total ? static_cast<double>(enc_loaded) / static_cast<double>(enc_total) : 1.0;
  if (r.loaded == 0 || fraction < min_fraction) {
    std::ostringstream os;
    os << what << " matches " << r.loaded << " tensors of the model, " << enc_loaded << " of its " << enc_total
       << " encoder tensors (" << std::lround(100 * fraction) << "%), below model.init_min_fraction " << min_fraction
       << "; nothing was loaded.\n  in the model, not in the file: " << first_names(missing, 5)
       << "\n  in the file, not in the model: " << first_names(unused, 5);
    if (!r.wrong_shapes.empty()) os << "\n  wrong shape: " << first_names(r.wrong_shapes, 3);
    std::string pairs;
    for (size_t i = 0; i < unused.size() && i < 3; ++i) {
      size_t best = std::string::npos;
      const std::string* match = nullptr;
      for (const std::string& m : missing)
        if (size_t d = schema::edit_distance(unused[i], m); d < best) best = d, match = &m;
      if (match) pairs += (pairs.empty() ? "" : ", ") + unused[i] + " ~ " + *match;
    }
    if (!pairs.empty()) os << "\n  closest matches (file ~ model): " << pairs;
    throw Error(os.str());
  }
  model.load_state_dict(w.tensors, false, "'" + source + "'");
  std::ostringstream os;
  os << "initialised from '" << source << "' (" << w.describe();
  if (!w.dropped.empty()) os << "; dropped " << first_names(w.dropped, 3);
  os << "): " << r.loaded << " loaded, " << r.left << " left at initialisation, " << r.unused << " unused, "
     << r.wrong_shape << " wrong shape";
  for (const std::string& s : r.wrong_shapes) os << "\n  wrong shape, left at initialisation: " << s;
  r.summary = os.str();
  return r;
}

void freeze_modules(nn::Module& model, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    bool found = false;
    model.visit([&](const std::string& path, nn::Module& m) {
      if (!found && path == p) {
        m.freeze();
        found = true;
      }
    });
    if (found) continue;
    std::string top;
    for (const auto& [n, c] : model.children()) top += (top.empty() ? "" : ", ") + n;
    throw Error("train.freeze: '" + p + "' names no module of the model (its modules: " + top + ")");
  }
}

std::string convert_weights(const ConvertOptions& o) {
  PretrainedWeights w = read_pretrained(o.src, o.format);
  std::ostringstream os;
  os << o.src << ": " << w.describe() << " (" << w.container << ")\n";
  if (w.layout) {
    const EncoderLayout& l = *w.layout;
    MTL_CHECK(!o.encoder || *o.encoder == l.encoder, "--encoder ", to_string(*o.encoder), ": '", o.src, "' holds a ",
              l.str());
    MTL_CHECK(!o.block || l.encoder == models::Encoder::resnet50 || *o.block == l.block, "--block ",
              to_string(*o.block), ": '", o.src, "' holds a ", l.str());
    // Checked against the encoders of an ESANet of the file's layout, the way --init-from loads it.
    models::ModelConfig mc;
    mc.encoder = l.encoder;
    mc.block = l.block;
    mc.width = l.width;
    models::ESANet model(mc, {64, 64, 0});
    InitReport r = load_pretrained(model, w, mc.init_min_fraction, o.src);
    os << "mapped " << r.loaded << " tensors into encoder_rgb.* and encoder_depth.* (model.encoder "
       << to_string(l.encoder) << ", model.block " << to_string(l.block) << ", model.width " << l.width
       << "); the depth encoder's conv1 is the RGB one summed over its 3 input channels";
    if (!w.dropped.empty()) os << "; dropped " << first_names(w.dropped, 4);
    os << "\n";
  } else {
    os << "kept " << w.tensors.size() << " tensors under their names\n";
  }
  save_safetensors(o.out, w.tensors,
                   {{"format", "pt"}, {"source", o.src}, {"mtl_mapped_from", std::string(to_string(w.format))}});
  os << "wrote " << o.out << ": " << w.tensors.size() << " tensors";
  return os.str();
}

}  // namespace mtl::train
