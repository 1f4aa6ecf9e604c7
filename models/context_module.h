#pragma once
// The pyramid pooling context module (ESANET.md §3), bins (1, 5): each branch pools the encoder
// output, projects it to C_in/len(bins) channels and upsamples it back; the branches and the input
// are concatenated and projected to the decoder width. `appm` keeps the pooling window fixed when
// the input size differs from the training size by scaling the bins.
#include <utility>
#include <vector>

#include "models/conv_bn_act.h"
#include "models/model_config.h"

namespace mtl::models {

class ContextModule : public nn::Module {
 public:
  ContextModule(const ModelConfig& cfg, const BuildOptions& build, int64_t in, int64_t out, Generator& gen);
  Tensor forward(const Tensor& x) override;
  // The size branch i pools an input of h x w to: its bin for ppm; for appm the bin times the
  // input's size relative to the training size, so that the pooling window stays the same.
  std::pair<int64_t, int64_t> pool_size(size_t i, int64_t h, int64_t w) const;
  // Whether the branches are upsampled bilinearly (else nearest).
  bool upsamples_bilinear() const { return bilinear_; }
  std::vector<nn::ModulePtr> features;                   // ppm: Sequential(pool, ConvBNAct); appm: ConvBNAct
  std::vector<std::shared_ptr<ConvBNAct>> branch_convs;  // each branch's ConvBNAct (inside features)
  std::shared_ptr<ConvBNAct> final_conv;

 private:
  bool adaptive_;
  std::vector<int64_t> bins_;
  int64_t train_h_, train_w_;  // encoder output size at the training resolution
  bool bilinear_;
};

}  // namespace mtl::models
