#pragma once
// mtl_export's job (docs/deploy.md): a trained run's network as model.onnx, with everything a
// runtime needs to feed it in the model's metadata_props (the input normalisation, the depth
// statistics, max_depth, the class names), and optionally one validation batch with mtl's own
// outputs for it (sample.safetensors) so that any runtime can be checked against mtl. Every input
// is checked before anything is written; both files are written atomically, and a failure leaves
// neither.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/config/config.h"

namespace mtl::train {

struct ExportOptions {
  std::string run_dir;
  std::string out;                  // model.onnx; its folder must exist
  std::string checkpoint;           // as given or in RUN_DIR/checkpoints/; empty: best, else last
  std::optional<Size2> input_size;  // default: the run's train.input_size
  std::optional<int> batch = 1;     // nullopt: a symbolic batch dimension (--batch dynamic)
  int opset = 17;
  std::string sample_out;  // empty: no sample file
};

struct ExportSummary {
  std::string out, sample_out, checkpoint;
  Size2 input_size;
  int64_t nodes = 0, initializers = 0, parameters = 0, bytes = 0;
  std::vector<std::pair<std::string, int>> op_counts;  // op type, nodes of it; by op type
  std::vector<std::string> sample_names;               // the validation samples in the sample file
  std::vector<std::string> notes;
};

// The metadata_props of an exported run: the keys docs/deploy.md lists.
std::vector<std::pair<std::string, std::string>> export_metadata(const Config& cfg, double depth_mean, double depth_std,
                                                                 Size2 input_size, const std::string& checkpoint);

// The checks that need no network: the output paths (their folders must exist), the run folder
// and its configuration, the input size (multiples of 32), the batch and the opset. Throws
// mtl::Error naming the option, folder or file at fault.
void check_export_options(const ExportOptions& o);

// check_export_options, then the export. Throws mtl::Error naming the option, folder or file at
// fault (also a missing checkpoint, or a validation split too small for the sample batch);
// nothing is written then.
ExportSummary run_export(const ExportOptions& o);

}  // namespace mtl::train
