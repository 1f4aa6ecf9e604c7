#include "models/esanet.h"

#include "core/autograd.h"
#include "core/generator.h"
#include "ops/ops.h"

namespace mtl::models {

ESANet::ESANet(const ModelConfig& cfg, const BuildOptions& build) : cfg_(cfg) {
  cfg.validate();
  MTL_CHECK(build.input_height > 0 && build.input_width > 0 && build.input_height % 32 == 0 &&
                build.input_width % 32 == 0,
            "train.input_size: ", build.input_width, "x", build.input_height,
            " must be a multiple of 32 in both dimensions (the encoder downsamples by 32)");
  Generator gen(build.seed);
  const nn::NormKind norm = cfg.norm;
  if (cfg.modality == Modality::rgbd) {
    encoder_rgb = register_module("encoder_rgb", std::make_shared<ResNetEncoder>(cfg, 3, gen));
    encoder_depth = register_module("encoder_depth", std::make_shared<ResNetEncoder>(cfg, 1, gen));
    for (int i = 0; i < 5; ++i)
      se_layer[i] =
          register_module("se_layer" + std::to_string(i), std::make_shared<SEFusion>(encoder_rgb->channels(i), gen));
  } else {
    const int64_t in = cfg.modality == Modality::rgb ? 3 : 1;
    encoder = register_module("encoder", std::make_shared<ResNetEncoder>(cfg, in, gen));
  }
  const ResNetEncoder& enc = encoder ? *encoder : *encoder_rgb;
  // Skip projections: fused encoder stage i -> decoder width at that resolution (ConvBNAct 1x1).
  const int64_t dec[4] = {0, cfg.ch(128), cfg.ch(256), cfg.ch(512)};
  for (int i = 1; i <= 3; ++i) {
    skip_layer[i] = register_module("skip_layer" + std::to_string(i), std::make_shared<nn::Sequential>());
    if (enc.channels(i) != dec[i])
      skip_layer[i]->push_back(std::make_shared<ConvBNAct>(enc.channels(i), dec[i], 1, norm, gen));
  }
  int64_t dec_in = enc.channels(4);
  if (cfg.context != Context::none) {
    context_module =
        register_module("context_module", std::make_shared<ContextModule>(cfg, build, dec_in, cfg.ch(512), gen));
    dec_in = cfg.ch(512);
  }
  const int head_classes = cfg.pretrained_classes > 0 ? cfg.pretrained_classes : cfg.num_classes;
  if (cfg.has_task(Task::semantic))
    decoder = register_module("decoder", std::make_shared<Decoder>(cfg, dec_in, head_classes, true, gen));
  if (cfg.pretrained_classes > 0) {
    nn::Conv2dOptions o;
    o.in = cfg.pretrained_classes, o.out = cfg.num_classes;
    class_adapter = register_module("class_adapter", std::make_shared<nn::Conv2d>(o, gen));
  }
  if (cfg.has_task(Task::depth)) {
    if (cfg.depth_head == DepthHead::light)
      depth_head = register_module("depth_head", std::make_shared<LightDepthHead>(cfg, cfg.ch(128), gen));
    else
      depth_decoder = register_module("depth_decoder", std::make_shared<Decoder>(cfg, dec_in, 1, false, gen));
  }
}

void ESANet::set_compute_dtype(DType d) {
  MTL_CHECK(d == DType::f32 || d == DType::bf16, "ESANet: compute dtype must be F32 or BF16, got ", dtype_name(d));
  compute_dtype_ = d;
}

ESANetOutput ESANet::forward(const Tensor& rgb_in, const Tensor& depth_in) {
  // Mixed precision starts at the inputs and ends at the outputs; the layers follow their input's
  // dtype. In full precision the model computes in its inputs' dtype (float64 in the reference tests).
  const bool mixed = compute_dtype_ == DType::bf16;
  auto compute = [&](const Tensor& t) { return mixed && t.defined() ? ops::to(t, DType::bf16) : t; };
  const Tensor rgb = compute(rgb_in), depth = compute(depth_in);
  auto f32 = [&](const Tensor& t) { return mixed ? ops::to(t, DType::f32) : t; };
  const bool use_rgb = cfg_.modality != Modality::depth, use_depth = cfg_.modality != Modality::rgb;
  if (use_rgb)
    MTL_CHECK(rgb.defined() && rgb.dim() == 4 && rgb.size(1) == 3, "ESANet: rgb input ",
              rgb.defined() ? rgb.describe() : std::string("undefined"), " is not [N, 3, H, W]");
  if (use_depth)
    MTL_CHECK(depth.defined() && depth.dim() == 4 && depth.size(1) == 1, "ESANet: depth input ",
              depth.defined() ? depth.describe() : std::string("undefined"), " is not [N, 1, H, W]");
  if (use_rgb && use_depth)
    MTL_CHECK(rgb.size(0) == depth.size(0) && rgb.size(2) == depth.size(2) && rgb.size(3) == depth.size(3),
              "ESANet: rgb ", rgb.describe(), " and depth ", depth.describe(), " differ in batch or size");
  const Tensor& x = use_rgb ? rgb : depth;
  MTL_CHECK(x.size(2) % 32 == 0 && x.size(3) % 32 == 0, "ESANet: input ", x.size(3), "x", x.size(2),
            " is not a multiple of 32 in both dimensions");
  Tensor skips[4];
  Tensor fuse;
  if (encoder) {
    fuse = ops::max_pool2d(encoder->forward_first_conv(x), {3, 3}, {2, 2}, {1, 1});
    for (int i = 1; i <= 4; ++i) {
      fuse = encoder->forward_layer(i, fuse);
      if (i <= 3) skips[i] = skip_layer[i]->forward(fuse);
    }
  } else {
    Tensor r = encoder_rgb->forward_first_conv(rgb);
    Tensor d = encoder_depth->forward_first_conv(depth);
    fuse = se_layer[0]->forward(r, d);
    r = ops::max_pool2d(fuse, {3, 3}, {2, 2}, {1, 1});
    d = ops::max_pool2d(d, {3, 3}, {2, 2}, {1, 1});
    for (int i = 1; i <= 4; ++i) {
      r = encoder_rgb->forward_layer(i, i == 1 ? r : fuse);
      d = encoder_depth->forward_layer(i, d);
      fuse = se_layer[i]->forward(r, d);
      if (i <= 3) skips[i] = skip_layer[i]->forward(fuse);
    }
  }
  Tensor ctx = context_module ? context_module->forward(fuse) : fuse;
  const std::vector<Tensor> dec_skips = {skips[3], skips[2], skips[1]};
  ESANetOutput out;
  DecoderOutput sem;
  if (decoder) {
    sem = decoder->forward(ctx, dec_skips, is_training());
    out.semantic = f32(class_adapter ? class_adapter->forward(sem.out) : sem.out);
    for (Tensor& s : sem.side) out.side.push_back(f32(class_adapter ? class_adapter->forward(s) : s));
  }
  if (depth_decoder) out.depth = ops::sigmoid(f32(depth_decoder->forward(ctx, dec_skips, false).out));
  if (depth_head) out.depth = ops::sigmoid(f32(depth_head->forward(sem.features)));
  return out;
}

void ESANet::init_class_adapter(const std::map<int, std::vector<int>>& map) {
  MTL_CHECK(class_adapter, "a class map needs model.pretrained_classes (the model has no class adapter)");
  const int64_t out = class_adapter->weight.size(0), in = class_adapter->weight.size(1);
  autograd::NoGradGuard ng;
  Tensor w = class_adapter->weight.detach().to(Device::cpu()).clone(), b = class_adapter->bias.detach().to(Device::cpu()).clone();
  for (const auto& [n, sources] : map) {
    MTL_CHECK(n >= 0 && n < out, "class map: class ", n, " is not in [0, ", out, ") (model.num_classes)");
    for (int64_t p = 0; p < in; ++p) w.set({n, p, 0, 0}, 0.0);
    for (int p : sources) {
      MTL_CHECK(p >= 0 && p < in, "class map: class ", n, " draws on pretrained class ", p, ", not in [0, ", in,
                ") (model.pretrained_classes)");
      w.set({n, p, 0, 0}, 1.0);
    }
    b.set({n}, 0.0);
  }
  ops::copy_(class_adapter->weight, ops::to(w, class_adapter->weight.device()));
  ops::copy_(class_adapter->bias, ops::to(b, class_adapter->bias.device()));
}

std::vector<std::pair<std::string, int64_t>> ESANet::summary() const {
  std::vector<std::pair<std::string, int64_t>> s;
  for (auto& [name, m] : children()) s.emplace_back(name, m->num_parameters());
  return s;
}

}  // namespace mtl::models
