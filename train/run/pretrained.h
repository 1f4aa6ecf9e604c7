#pragma once
// Pretrained weights onto ESANet, for `mtl_train --init-from` and `mtl_convert`: a PyTorch file
// (torch.save, read natively by core/torch_file.h) or a safetensors file is read, its layout is
// recognised and its names are mapped to mtl's (docs/pretrained.md):
//   torchvision      ResNet-18/34 (BasicBlock) or ResNet-50 classification weights: into both
//                    encoders, the depth encoder's conv1 summed over the three RGB channels
//                    (ESANet's rule); fc.* is dropped.
//   esanet-imagenet  ESANet's ImageNet-pretrained encoders (imagenet_pretraining.py's classifier:
//                    encoder.* and fc.*): the encoder as torchvision's, fc.* dropped.
//   esanet           a whole ESANet state dict (the reference's trained models): names as they are.
//   mtl              mtl's own weights or checkpoints (safetensors): names as they are.
// The load checks what it got: nothing mapped, or less than model.init_min_fraction of the
// encoders' tensors, is an error naming the first unmatched names on both sides and the closest
// pairs; otherwise it reports one summary line and the tensors left at their initialisation
// because their shape differs (a class head of another class count).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "models/esanet.h"

namespace mtl::train {

enum class WeightFormat { auto_, torchvision, esanet_imagenet, esanet, mtl };
MTL_ENUM_NAMES(WeightFormat, "auto", "torchvision", "esanet-imagenet", "esanet", "mtl")

// The ResNet a file's encoder is, read off its names and shapes.
struct EncoderLayout {
  models::Encoder encoder = models::Encoder::resnet18;
  models::Block block = models::Block::basic;  // resnet50: bottleneck blocks, block is not used
  double width = 1.0;                          // conv1's output channels / 64
  std::string str() const;                     // "ResNet-34 (BasicBlock)"
};

struct PretrainedWeights {
  std::map<std::string, Tensor> tensors;      // in mtl's state-dict names
  WeightFormat format = WeightFormat::auto_;  // as recognised (never auto)
  std::optional<EncoderLayout> layout;        // torchvision and esanet-imagenet
  std::vector<std::string> dropped;           // names in the file that map to nothing (fc.*)
  std::string container;                      // "torch zip, under 'state_dict', prefix 'model.' removed"
  // "torchvision ResNet-34 (BasicBlock)", "whole ESANet", for messages.
  std::string describe() const;
};

// Reads a torch.save file (.pth, .pt, .tar, .ckpt; zip or legacy) or a .safetensors file, told
// apart by their bytes, and maps it as `format` says (auto: recognised by the names).
PretrainedWeights read_pretrained(const std::string& path, WeightFormat format = WeightFormat::auto_);

struct InitReport {
  int64_t loaded = 0, left = 0, unused = 0, wrong_shape = 0;
  std::vector<std::string> wrong_shapes;  // "name: file has F32[40, 8, 3, 3], model has F32[7, 8, 3, 3]"
  std::string summary;                    // the one line, then one line per wrong shape
};

// Loads `w` into `model` (non-strict) after the checks above; throws mtl::Error, changing
// nothing, when they fail. `source` names the file in messages.
InitReport load_pretrained(models::ESANet& model, const PretrainedWeights& w, double min_fraction,
                           const std::string& source);

// train.freeze: freezes (nn::Module::freeze) every module whose path lies under a prefix; an
// mtl::Error when a prefix names no module.
void freeze_modules(nn::Module& model, const std::vector<std::string>& prefixes);

// mtl_convert: maps `src` and writes the mapped tensors to `out` (safetensors, atomically);
// returns what it did, for the console. `encoder` and `block`, when given, must agree with the
// file's encoder; the mapping is checked against the encoders of an ESANet of that layout.
struct ConvertOptions {
  std::string src, out;
  WeightFormat format = WeightFormat::auto_;
  std::optional<models::Encoder> encoder;
  std::optional<models::Block> block;
};
std::string convert_weights(const ConvertOptions& o);

}  // namespace mtl::train
