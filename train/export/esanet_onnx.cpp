#include "train/export/esanet_onnx.h"

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "kernels/pool.h"
#include "kernels/resize.h"

namespace mtl::train {

namespace {

using onnx::Attribute;
using onnx::DataType;

// A value of the graph: an NCHW tensor of c x h x w per image (the batch is the graph's).
struct Value {
  std::string name;
  int64_t c = 0, h = 0, w = 0;
};

std::string raw_float32(const std::vector<double>& v) {
  std::string raw(v.size() * sizeof(float), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const float f = static_cast<float>(v[i]);
    std::memcpy(raw.data() + i * sizeof(float), &f, sizeof f);  // little-endian hosts only, as safetensors
  }
  return raw;
}

std::string raw_int64(const std::vector<int64_t>& v) {
  std::string raw(v.size() * sizeof(int64_t), '\0');
  std::memcpy(raw.data(), v.data(), raw.size());
  return raw;
}

// The graph under construction, one method per kind of layer or block. Each takes the module, its
// state-dict name and its input, appends the nodes, and returns the output with its shape.
class Writer {
 public:
  Writer(onnx::Model& m, const OnnxGraphOptions& o) : m_(m), o_(o) {}

  // ---- graph plumbing ----

  std::string node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                   std::vector<Attribute> attrs = {}) {
    claim(name);
    m_.nodes.push_back({op, name, std::move(inputs), {name}, std::move(attrs)});
    return name;
  }

  std::string constant(const std::string& name, std::vector<int64_t> dims, const std::vector<double>& v) {
    claim(name);
    m_.initializers.push_back({name, DataType::float32, std::move(dims), raw_float32(v)});
    return name;
  }

  // Small integer constants (shapes, indices), shared by every node that needs the same values.
  std::string constant_i64(const std::string& kind, const std::vector<int64_t>& v) {
    std::string name = "const." + kind;
    for (int64_t x : v) name.append(x < 0 ? "_m" : "_").append(std::to_string(x < 0 ? -x : x));
    if (names_.count(name)) return name;
    claim(name);
    m_.initializers.push_back({name, DataType::int64, {static_cast<int64_t>(v.size())}, raw_int64(v)});
    return name;
  }

  // Every name in one namespace (values, nodes, initializers): a clash is a bug in this file.
  void claim(const std::string& name) { MTL_ASSERT(names_.insert(name).second, "ONNX name '", name, "' used twice"); }

  // Renames a value (the graph outputs get their public names).
  void rename(const std::string& from, const std::string& to) {
    claim(to);
    for (onnx::Node& n : m_.nodes) {
      for (std::string& i : n.inputs)
        if (i == from) i = to;
      for (std::string& out : n.outputs)
        if (out == from) out = to;
    }
  }

  // ---- layers ----

  // Conv2d, optionally followed by its norm (BatchNorm folded into the weights and bias; GroupNorm
  // kept as a subgraph) and a ReLU.
  Value conv(const nn::Conv2d& c, const std::string& name, const nn::Module* norm, const std::string& norm_name,
             const Value& x, bool relu) {
    const nn::Conv2dOptions& co = c.options();
    MTL_ASSERT(x.c == co.in, "ONNX export: ", name, " expects ", co.in, " channels, got ", x.c);
    std::vector<double> w = c.weight.to_f64_vector();
    std::vector<double> b = c.bias.defined() ? c.bias.to_f64_vector() : std::vector<double>();
    const auto* bn = dynamic_cast<const nn::BatchNorm2d*>(norm);
    if (bn) {
      // y = (conv(x) + b - mean) * gamma / sqrt(var + eps) + beta, in double, rounded once.
      const std::vector<double> mean = bn->running_mean.to_f64_vector(), var = bn->running_var.to_f64_vector();
      const std::vector<double> gamma = bn->weight.to_f64_vector(), beta = bn->bias.to_f64_vector();
      if (b.empty()) b.assign(static_cast<size_t>(co.out), 0.0);
      const size_t per = w.size() / static_cast<size_t>(co.out);
      for (size_t oc = 0; oc < static_cast<size_t>(co.out); ++oc) {
        const double s = gamma[oc] / std::sqrt(var[oc] + bn->eps);
        for (size_t k = 0; k < per; ++k) w[oc * per + k] *= s;
        b[oc] = (b[oc] - mean[oc]) * s + beta[oc];
      }
    }
    std::vector<std::string> inputs{x.name, constant(name + ".weight", c.weight.shape(), w)};
    if (!b.empty()) inputs.push_back(constant(name + ".bias", {co.out}, b));
    const auto [kh, kw] = co.kernel;
    const auto [sh, sw] = co.stride;
    const auto [ph, pw] = co.padding;
    const auto [dh, dw] = co.dilation;
    Value y{node("Conv", name, inputs,
                 {Attribute::of("kernel_shape", std::vector<int64_t>{kh, kw}),
                  Attribute::of("strides", std::vector<int64_t>{sh, sw}),
                  Attribute::of("pads", std::vector<int64_t>{ph, pw, ph, pw}),
                  Attribute::of("dilations", std::vector<int64_t>{dh, dw}), Attribute::of("group", co.groups)}),
            co.out, (x.h + 2 * ph - dh * (kh - 1) - 1) / sh + 1, (x.w + 2 * pw - dw * (kw - 1) - 1) / sw + 1};
    if (norm && !bn) {
      const auto* gn = dynamic_cast<const nn::GroupNorm*>(norm);
      MTL_ASSERT(gn, "ONNX export: ", norm_name, " is neither BatchNorm2d nor GroupNorm");
      y = group_norm(*gn, norm_name, y);
    }
    return relu ? this->relu(y, (norm ? norm_name : name) + "/relu") : y;
  }

  // GroupNorm: the groups as InstanceNormalization's channels ([N, G, C/G*H*W], unit scale, no
  // bias), then the per-channel affine transform. (GroupNormalization needs opset 18 and changed
  // meaning in 21.)
  Value group_norm(const nn::GroupNorm& gn, const std::string& name, const Value& x) {
    const std::vector<double> ones(static_cast<size_t>(gn.groups), 1.0), zeros(ones.size(), 0.0);
    const std::string grouped = node("Reshape", name + "/group", {x.name, constant_i64("shape", {0, gn.groups, -1})});
    const std::string normed = node(
        "InstanceNormalization", name + "/normalize",
        {grouped, constant(name + ".unit_scale", {gn.groups}, ones), constant(name + ".zero_bias", {gn.groups}, zeros)},
        {Attribute::of("epsilon", static_cast<float>(gn.eps))});
    const std::string back = node("Reshape", name + "/ungroup", {normed, constant_i64("shape", {0, x.c, x.h, x.w})});
    const std::string scaled =
        node("Mul", name + "/scale", {back, constant(name + ".weight", {x.c, 1, 1}, gn.weight.to_f64_vector())});
    return {node("Add", name, {scaled, constant(name + ".bias", {x.c, 1, 1}, gn.bias.to_f64_vector())}), x.c, x.h, x.w};
  }

  Value relu(const Value& x, const std::string& name) { return {node("Relu", name, {x.name}), x.c, x.h, x.w}; }

  Value add(const Value& a, const Value& b, const std::string& name) {
    MTL_ASSERT(a.c == b.c && a.h == b.h && a.w == b.w, "ONNX export: ", name, " adds ", a.name, " and ", b.name,
               " of different shapes");
    return {node("Add", name, {a.name, b.name}), a.c, a.h, a.w};
  }

  // max_pool2d(3, stride 2, padding 1) of the encoders' stems.
  Value max_pool(const Value& x, const std::string& name) {
    return {node("MaxPool", name, {x.name},
                 {Attribute::of("kernel_shape", std::vector<int64_t>{3, 3}),
                  Attribute::of("strides", std::vector<int64_t>{2, 2}),
                  Attribute::of("pads", std::vector<int64_t>{1, 1, 1, 1})}),
            x.c, (x.h - 1) / 2 + 1, (x.w - 1) / 2 + 1};
  }

  // adaptive_avg_pool2d to oh x ow with sizes fixed for this input: AveragePool with kernel =
  // stride when the output divides the input (as ESANet does for TensorRT), else adaptive
  // pooling written out as constant matrices, rows (P [oh, h] @ x) then columns (x @ Q [w, ow]).
  Value adaptive_pool(const Value& x, int64_t oh, int64_t ow, const std::string& name) {
    if (oh == x.h && ow == x.w) return x;
    if (x.h % oh == 0 && x.w % ow == 0) {
      const std::vector<int64_t> k{x.h / oh, x.w / ow};
      return {node("AveragePool", name, {x.name}, {Attribute::of("kernel_shape", k), Attribute::of("strides", k)}), x.c,
              oh, ow};
    }
    Value y = x;
    if (oh != x.h) {
      y = {node("MatMul", name + "/rows", {constant(name + ".rows", {oh, x.h}, pool_matrix(x.h, oh, false)), y.name}),
           x.c, oh, x.w};
    }
    if (ow != x.w) {
      y = {node("MatMul", name + "/cols", {y.name, constant(name + ".cols", {x.w, ow}, pool_matrix(x.w, ow, true))}),
           x.c, y.h, ow};
    }
    return y;
  }

  // Resizing to oh x ow as ops::interpolate_nearest / interpolate_bilinear (align_corners=False)
  // compute it. Nearest: Resize (asymmetric, floor) where the factor is a whole number and mtl's
  // source indices (the kernels' own arithmetic) are exactly floor(dst / factor), else Gather
  // with those indices along each axis that changes. Bilinear: Resize (linear, half_pixel).
  Value resize(const Value& x, int64_t oh, int64_t ow, bool bilinear, const std::string& name) {
    if (oh == x.h && ow == x.w) return x;
    const bool whole = oh % x.h == 0 && ow % x.w == 0;
    if (bilinear) return resize_node(x, oh, ow, whole, "linear", name);
    const std::vector<int64_t> rows = nearest_indices(x.h, oh), cols = nearest_indices(x.w, ow);
    if (whole && floors(rows, oh / x.h) && floors(cols, ow / x.w)) return resize_node(x, oh, ow, true, "nearest", name);
    Value y = x;
    if (oh != x.h) {
      y = {node("Gather", name + "/rows", {y.name, constant_i64("rows", rows)}, {Attribute::of("axis", int64_t{2})}),
           x.c, oh, x.w};
    }
    if (ow != x.w) {
      y = {node("Gather", name + "/cols", {y.name, constant_i64("cols", cols)}, {Attribute::of("axis", int64_t{3})}),
           x.c, y.h, ow};
    }
    return y;
  }

  // The x2 upsampling of the decoders and heads: Resize, and for `learned` the depthwise 3x3
  // Conv after it.
  Value upsample(const nn::Upsample& u, const Value& x, const std::string& name) {
    switch (u.mode()) {
      case nn::UpsampleMode::learned: {
        const Value up = resize(x, 2 * x.h, 2 * x.w, false, name + "/nearest");
        return conv(*u.conv, name + ".conv", nullptr, "", up, false);
      }
      case nn::UpsampleMode::nearest:
        return resize(x, 2 * x.h, 2 * x.w, false, name);
      case nn::UpsampleMode::bilinear:
        return resize(x, 2 * x.h, 2 * x.w, true, name);
    }
    MTL_ASSERT(false, "ONNX export: unknown upsampling mode of ", name);
    return x;
  }

  // ---- blocks ----

  Value conv_bn_act(const models::ConvBNAct& c, const Value& x, const std::string& name) {
    return conv(*c.conv, name + ".conv", c.bn.get(), name + ".bn", x, c.has_act());
  }

  // The downsample shortcut: children "0" (conv) and "1" (norm).
  Value shortcut(const nn::Sequential* down, const Value& x, const std::string& name) {
    if (!down) return x;
    const auto& ch = down->children();
    const auto* c = dynamic_cast<const nn::Conv2d*>(ch.at(0).second.get());
    MTL_ASSERT(c, "ONNX export: ", name, ".0 is not a Conv2d");
    return conv(*c, name + ".0", ch.at(1).second.get(), name + ".1", x, false);
  }

  Value residual(const Value& out, const Value& identity, const std::string& name) {
    return relu(add(out, identity, name + "/add"), name + "/relu");
  }

  Value block(const nn::Module& m, const Value& x, const std::string& p) {
    if (const auto* b = dynamic_cast<const models::BasicBlock*>(&m)) {
      Value y = conv(*b->conv1, p + ".conv1", b->bn1.get(), p + ".bn1", x, true);
      y = conv(*b->conv2, p + ".conv2", b->bn2.get(), p + ".bn2", y, false);
      return residual(y, shortcut(b->downsample.get(), x, p + ".downsample"), p);
    }
    if (const auto* b = dynamic_cast<const models::NonBottleneck1D*>(&m)) {
      Value y = conv(*b->conv3x1_1, p + ".conv3x1_1", nullptr, "", x, true);
      y = conv(*b->conv1x3_1, p + ".conv1x3_1", b->bn1.get(), p + ".bn1", y, true);
      y = conv(*b->conv3x1_2, p + ".conv3x1_2", nullptr, "", y, true);
      y = conv(*b->conv1x3_2, p + ".conv1x3_2", b->bn2.get(), p + ".bn2", y, false);
      return residual(y, shortcut(b->downsample.get(), x, p + ".downsample"), p);
    }
    if (const auto* b = dynamic_cast<const models::Bottleneck*>(&m)) {
      Value y = conv(*b->conv1, p + ".conv1", b->bn1.get(), p + ".bn1", x, true);
      y = conv(*b->conv2, p + ".conv2", b->bn2.get(), p + ".bn2", y, true);
      y = conv(*b->conv3, p + ".conv3", b->bn3.get(), p + ".bn3", y, false);
      return residual(y, shortcut(b->downsample.get(), x, p + ".downsample"), p);
    }
    MTL_ASSERT(false, "ONNX export: ", p, " is not a BasicBlock, NonBottleneck1D or Bottleneck");
    return x;
  }

  Value blocks(const nn::Sequential& s, const Value& x, const std::string& p) {
    Value y = x;
    for (const auto& [child, m] : s.children()) y = block(*m, y, p + "." + child);
    return y;
  }

  Value stem(const models::ResNetEncoder& e, const Value& x, const std::string& p) {
    return conv(*e.conv1, p + ".conv1", e.bn1.get(), p + ".bn1", x, true);
  }

  Value squeeze_excitation(const models::SqueezeAndExcitation& se, const Value& x, const std::string& p) {
    const auto& fc = se.fc->children();  // 0: conv, 1: relu, 2: conv, 3: sigmoid
    const auto* c0 = dynamic_cast<const nn::Conv2d*>(fc.at(0).second.get());
    const auto* c2 = dynamic_cast<const nn::Conv2d*>(fc.at(2).second.get());
    MTL_ASSERT(c0 && c2, "ONNX export: ", p, ".fc is not conv, relu, conv, sigmoid");
    const Value pooled{node("GlobalAveragePool", p + "/pool", {x.name}), x.c, 1, 1};
    const Value hidden = conv(*c0, p + ".fc.0", nullptr, "", pooled, true);
    const Value logits = conv(*c2, p + ".fc.2", nullptr, "", hidden, false);
    const std::string weights = node("Sigmoid", p + ".fc.3", {logits.name});
    return {node("Mul", p + "/scale", {x.name, weights}), x.c, x.h, x.w};
  }

  Value se_fusion(const models::SEFusion& f, const Value& rgb, const Value& depth, const std::string& p) {
    return add(squeeze_excitation(*f.se_rgb, rgb, p + ".se_rgb"),
               squeeze_excitation(*f.se_depth, depth, p + ".se_depth"), p);
  }

  Value skip(const nn::Sequential& s, const Value& x, const std::string& p) {
    if (s.empty()) return x;
    const auto* c = dynamic_cast<const models::ConvBNAct*>(s.children().at(0).second.get());
    MTL_ASSERT(c, "ONNX export: ", p, ".0 is not a ConvBNAct");
    return conv_bn_act(*c, x, p + ".0");
  }

  Value context(const models::ContextModule& cm, const Value& x, const std::string& p) {
    std::vector<std::string> parts{x.name};
    int64_t channels = x.c;
    for (size_t i = 0; i < cm.branch_convs.size(); ++i) {
      const std::string branch = p + ".features." + std::to_string(i);
      // ppm's branch is Sequential(pool, ConvBNAct), appm's the ConvBNAct itself.
      const bool own = cm.features[i].get() == cm.branch_convs[i].get();
      const auto [ph, pw] = cm.pool_size(i, x.h, x.w);
      const Value pooled = adaptive_pool(x, ph, pw, branch + "/pool");
      const Value y = conv_bn_act(*cm.branch_convs[i], pooled, own ? branch : branch + ".1");
      const Value up = resize(y, x.h, x.w, cm.upsamples_bilinear(), branch + "/upsample");
      parts.push_back(up.name);
      channels += up.c;
    }
    const Value cat{node("Concat", p + "/concat", parts, {Attribute::of("axis", int64_t{1})}), channels, x.h, x.w};
    return conv_bn_act(*cm.final_conv, cat, p + ".final_conv");
  }

  struct DecoderValues {
    Value out, features;
  };
  // skips: at 1/16, 1/8 and 1/4, as Decoder::forward takes them.
  DecoderValues decoder(const models::Decoder& d, const Value& x, const std::vector<Value>& skips,
                        const std::string& p) {
    Value y = x;
    for (int i = 0; i < 3; ++i) {
      const models::DecoderModule& dm = *d.module[i];
      const std::string mp = p + ".decoder_module_" + std::to_string(i + 1);
      y = conv_bn_act(*dm.conv3x3, y, mp + ".conv3x3");
      y = blocks(*dm.decoder_blocks, y, mp + ".decoder_blocks");
      y = upsample(*dm.upsample, y, mp + ".upsample");
      MTL_CHECK(y.h == skips[i].h && y.w == skips[i].w, "ONNX export: the decoder's ", mp, " gives ", y.w, "x", y.h,
                " but its skip is ", skips[i].w, "x", skips[i].h, "; the input size must be a multiple of 32");
      y = add(y, skips[i], mp + "/skip");
    }
    Value out = conv(*d.conv_out, p + ".conv_out", nullptr, "", y, false);
    out = upsample(*d.upsample1, out, p + ".upsample1");
    out = upsample(*d.upsample2, out, p + ".upsample2");
    return {out, y};
  }

  Value light_head(const models::LightDepthHead& h, const Value& features, const std::string& p) {
    Value y = conv(*h.conv_out, p + ".conv_out", nullptr, "", features, false);
    y = upsample(*h.upsample1, y, p + ".upsample1");
    return upsample(*h.upsample2, y, p + ".upsample2");
  }

  // ---- graph inputs and outputs ----

  onnx::ValueInfo info(const std::string& name, int64_t c) const {
    onnx::ValueInfo v{name, DataType::float32, {o_.batch.value_or(-1), c, o_.height, o_.width}, {}};
    if (!o_.batch) v.params = {"N", "", "", ""};
    return v;
  }

  Value input(const std::string& name, int64_t c) {
    claim(name);
    m_.inputs.push_back(info(name, c));
    return {name, c, o_.height, o_.width};
  }

  void output(const Value& v, const std::string& name) {
    MTL_ASSERT(v.h == o_.height && v.w == o_.width, "ONNX export: output ", name, " is ", v.w, "x", v.h);
    rename(v.name, name);
    m_.outputs.push_back(info(name, v.c));
  }

 private:
  // Adaptive average pooling along one axis as a matrix: row o averages [start, end) (the
  // kernels' own bin arithmetic); `transposed` gives [in, out] for the right-hand side.
  static std::vector<double> pool_matrix(int64_t in, int64_t out, bool transposed) {
    std::vector<double> m(static_cast<size_t>(in * out), 0.0);
    for (int64_t o = 0; o < out; ++o) {
      const int64_t s = kernels::pool_detail::adaptive_start(o, in, out),
                    e = kernels::pool_detail::adaptive_end(o, in, out);
      for (int64_t i = s; i < e; ++i)
        m[static_cast<size_t>(transposed ? i * out + o : o * in + i)] = 1.0 / static_cast<double>(e - s);
    }
    return m;
  }

  static std::vector<int64_t> nearest_indices(int64_t in, int64_t out) {
    const float scale = kernels::resize_detail::scale_of<float>(in, out);
    std::vector<int64_t> idx(static_cast<size_t>(out));
    for (int64_t d = 0; d < out; ++d) idx[static_cast<size_t>(d)] = kernels::resize_detail::nearest_src(d, scale, in);
    return idx;
  }

  static bool floors(const std::vector<int64_t>& idx, int64_t factor) {
    for (size_t d = 0; d < idx.size(); ++d)
      if (idx[d] != static_cast<int64_t>(d) / factor) return false;
    return true;
  }

  // Resize to oh x ow: by scales when the factors are whole numbers (the output size is then
  // exact), else by sizes, which need the batch: a constant for a fixed batch, the input's own
  // leading dimensions (Shape, Concat) for a symbolic one.
  Value resize_node(const Value& x, int64_t oh, int64_t ow, bool whole, const std::string& mode,
                    const std::string& name) {
    std::vector<Attribute> attrs{Attribute::of("mode", mode)};
    if (mode == "nearest") {
      attrs.push_back(Attribute::of("coordinate_transformation_mode", std::string("asymmetric")));
      attrs.push_back(Attribute::of("nearest_mode", std::string("floor")));
    } else {
      attrs.push_back(Attribute::of("coordinate_transformation_mode", std::string("half_pixel")));
    }
    if (whole) {
      const std::string scales =
          constant(name + ".scales", {4}, {1.0, 1.0, static_cast<double>(oh / x.h), static_cast<double>(ow / x.w)});
      return {node("Resize", name, {x.name, "", scales}, attrs), x.c, oh, ow};
    }
    std::string sizes;
    if (o_.batch) {
      sizes = constant_i64("sizes", {*o_.batch, x.c, oh, ow});
    } else {
      const std::string nc = node("Shape", name + "/batch_channels", {x.name},
                                  {Attribute::of("start", int64_t{0}), Attribute::of("end", int64_t{2})});
      sizes = node("Concat", name + "/sizes", {nc, constant_i64("hw", {oh, ow})}, {Attribute::of("axis", int64_t{0})});
    }
    return {node("Resize", name, {x.name, "", "", sizes}, attrs), x.c, oh, ow};
  }

  onnx::Model& m_;
  const OnnxGraphOptions& o_;
  std::set<std::string> names_;
};

}  // namespace

onnx::Model esanet_onnx_graph(const models::ESANet& model, const OnnxGraphOptions& o) {
  MTL_CHECK(o.height > 0 && o.width > 0 && o.height % 32 == 0 && o.width % 32 == 0, "--input-size ", o.width, "x",
            o.height, ": both sides must be positive multiples of 32 (the encoder downsamples by 32)");
  MTL_CHECK(!o.batch || *o.batch >= 1, "--batch ", o.batch.value_or(0),
            ": expected a positive batch size or 'dynamic'");
  MTL_CHECK(std::isfinite(o.max_depth) && o.max_depth > 0, "data.max_depth ", o.max_depth, " must be positive");
  onnx::Model m;
  onnx::ir_version_for_opset(o.opset);  // checks the opset before any work
  m.opset = o.opset;
  m.graph_name = "esanet";
  Writer w(m, o);
  const models::ModelConfig& cfg = model.config();

  Value skips[4], fuse;
  if (model.encoder) {
    const bool rgb = cfg.modality == models::Modality::rgb;
    const Value x = w.input(rgb ? "rgb" : "depth", rgb ? 3 : 1);
    fuse = w.max_pool(w.stem(*model.encoder, x, "encoder"), "encoder/maxpool");
    for (int i = 1; i <= 4; ++i) {
      fuse = w.blocks(*model.encoder->layer[i], fuse, "encoder.layer" + std::to_string(i));
      if (i <= 3) skips[i] = w.skip(*model.skip_layer[i], fuse, "skip_layer" + std::to_string(i));
    }
  } else {
    const Value rgb = w.input("rgb", 3), depth = w.input("depth", 1);
    Value r = w.stem(*model.encoder_rgb, rgb, "encoder_rgb");
    Value d = w.stem(*model.encoder_depth, depth, "encoder_depth");
    fuse = w.se_fusion(*model.se_layer[0], r, d, "se_layer0");
    r = w.max_pool(fuse, "encoder_rgb/maxpool");
    d = w.max_pool(d, "encoder_depth/maxpool");
    for (int i = 1; i <= 4; ++i) {
      const std::string layer = ".layer" + std::to_string(i);
      r = w.blocks(*model.encoder_rgb->layer[i], i == 1 ? r : fuse, "encoder_rgb" + layer);
      d = w.blocks(*model.encoder_depth->layer[i], d, "encoder_depth" + layer);
      fuse = w.se_fusion(*model.se_layer[i], r, d, "se_layer" + std::to_string(i));
      if (i <= 3) skips[i] = w.skip(*model.skip_layer[i], fuse, "skip_layer" + std::to_string(i));
    }
  }
  const Value ctx = model.context_module ? w.context(*model.context_module, fuse, "context_module") : fuse;
  const std::vector<Value> dec_skips{skips[3], skips[2], skips[1]};
  Value features;
  if (model.decoder) {
    const auto sem = w.decoder(*model.decoder, ctx, dec_skips, "decoder");
    features = sem.features;
    const Value logits =
        model.class_adapter ? w.conv(*model.class_adapter, "class_adapter", nullptr, "", sem.out, false) : sem.out;
    w.output(logits, "semantic");
  }
  if (model.depth_decoder || model.depth_head) {
    const Value raw = model.depth_decoder ? w.decoder(*model.depth_decoder, ctx, dec_skips, "depth_decoder").out
                                          : w.light_head(*model.depth_head, features, "depth_head");
    const std::string unit = w.node("Sigmoid", "depth/sigmoid", {raw.name});
    const std::string metres = w.node("Mul", "depth/metres", {unit, w.constant("data.max_depth", {}, {o.max_depth})});
    w.output({metres, raw.c, raw.h, raw.w}, "depth_metres");
  }
  return m;
}

}  // namespace mtl::train
