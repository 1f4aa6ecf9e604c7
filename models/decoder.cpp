#include "models/decoder.h"

#include "ops/ops.h"

namespace mtl::models {

namespace {
std::shared_ptr<nn::Conv2d> make_conv(int64_t in, int64_t out, int64_t k, Generator& gen) {
  nn::Conv2dOptions o;
  o.in = in, o.out = out, o.kernel = {k, k}, o.padding = {k / 2, k / 2};
  return std::make_shared<nn::Conv2d>(o, gen);
}
constexpr int kBlocksPerModule = 3;
}  // namespace

DecoderModule::DecoderModule(const ModelConfig& cfg, int64_t in, int64_t out, int64_t side_classes, Generator& gen) {
  conv3x3 = register_module("conv3x3", std::make_shared<ConvBNAct>(in, out, 3, cfg.norm, gen));
  decoder_blocks = register_module("decoder_blocks", std::make_shared<nn::Sequential>());
  for (int b = 0; b < kBlocksPerModule; ++b)
    decoder_blocks->push_back(std::make_shared<NonBottleneck1D>(out, out, 1, cfg.norm, gen));
  upsample = register_module("upsample", std::make_shared<nn::Upsample>(cfg.upsampling, out, gen));
  if (side_classes > 0) side_output = register_module("side_output", make_conv(out, side_classes, 1, gen));
}

Tensor DecoderModule::forward(const Tensor& x, const Tensor& skip, Tensor* side) {
  Tensor out = decoder_blocks->forward(conv3x3->forward(x));
  if (side && side_output) *side = side_output->forward(out);
  out = upsample->forward(out);
  if (skip.defined()) {
    MTL_CHECK(skip.shape() == out.shape(), "decoder: skip ", skip.describe(), " does not match upsampled ",
              out.describe(), "; the input size must be a multiple of 32");
    out = ops::add(out, skip);
  }
  return out;
}

Decoder::Decoder(const ModelConfig& cfg, int64_t in, int64_t classes, bool side_outputs, Generator& gen) {
  const int64_t ch[3] = {cfg.ch(512), cfg.ch(256), cfg.ch(128)};
  int64_t c = in;
  for (int i = 0; i < 3; ++i) {
    module[i] = register_module("decoder_module_" + std::to_string(i + 1),
                                std::make_shared<DecoderModule>(cfg, c, ch[i], side_outputs ? classes : 0, gen));
    c = ch[i];
  }
  conv_out = register_module("conv_out", make_conv(c, classes, 3, gen));
  upsample1 = register_module("upsample1", std::make_shared<nn::Upsample>(cfg.upsampling, classes, gen));
  upsample2 = register_module("upsample2", std::make_shared<nn::Upsample>(cfg.upsampling, classes, gen));
}

DecoderOutput Decoder::forward(const Tensor& x, const std::vector<Tensor>& skips, bool want_side) {
  DecoderOutput r;
  Tensor side[3];
  Tensor out = x;
  for (int i = 0; i < 3; ++i) out = module[i]->forward(out, skips.at(i), want_side ? &side[i] : nullptr);
  r.features = out;
  r.out = upsample2->forward(upsample1->forward(conv_out->forward(out)));
  if (want_side) r.side = {side[2], side[1], side[0]};
  return r;
}

LightDepthHead::LightDepthHead(const ModelConfig& cfg, int64_t in, Generator& gen) {
  conv_out = register_module("conv_out", make_conv(in, 1, 3, gen));
  upsample1 = register_module("upsample1", std::make_shared<nn::Upsample>(cfg.upsampling, 1, gen));
  upsample2 = register_module("upsample2", std::make_shared<nn::Upsample>(cfg.upsampling, 1, gen));
}

Tensor LightDepthHead::forward(const Tensor& f) { return upsample2->forward(upsample1->forward(conv_out->forward(f))); }

}  // namespace mtl::models
