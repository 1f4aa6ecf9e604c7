// mtl_convert: maps pretrained weights (a torchvision ResNet, ESANet's ImageNet encoders, a whole
// ESANet; torch.save files read natively) to mtl's names and writes them as safetensors
// (docs/pretrained.md). mtl_train --init-from does the same mapping on the fly; this tool makes
// the mapped file once and shows what was mapped.
// Exit status: 0 success, 2 usage errors (bad options), 1 anything else (unreadable, refused or
// unrecognised file, a mapping that does not fit). Errors are one line: "mtl_convert: error: <message>".
#include <CLI/CLI.hpp>
#include <iostream>

#include "core/error.h"
#include "train/run/pretrained.h"

using namespace mtl;

int main(int argc, char** argv) {
  CLI::App app{"mtl_convert: map pretrained PyTorch weights to mtl's names (safetensors)"};
  train::ConvertOptions opts;
  std::string format = "auto", encoder, block;
  app.add_option("src", opts.src, "a .pth/.pt/.tar/.ckpt (torch.save) or .safetensors file")->required();
  app.add_option("--out", opts.out, "the safetensors file to write")->required();
  app.add_option("--format", format, "auto (default), torchvision, esanet-imagenet, esanet or mtl")
      ->check(CLI::IsMember(enum_name_list<train::WeightFormat>()));
  app.add_option("--encoder", encoder, "resnet18, resnet34 or resnet50: check the file's encoder is this one")
      ->check(CLI::IsMember(enum_name_list<models::Encoder>()));
  app.add_option("--block", block, "basic or nbt1d: check the file's encoder blocks are these")
      ->check(CLI::IsMember(enum_name_list<models::Block>()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  opts.format = *parse_enum<train::WeightFormat>(format);
  if (!encoder.empty()) opts.encoder = *parse_enum<models::Encoder>(encoder);
  if (!block.empty()) opts.block = *parse_enum<models::Block>(block);
  try {
    std::cout << train::convert_weights(opts) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mtl_convert: error: " << e.what() << "\n";
    return 1;
  }
}
