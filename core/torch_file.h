#pragma once
// PyTorch's torch.save files, read without Python: the zip format (torch >= 1.6: `data.pkl` plus
// one `data/N` entry per storage) and the legacy format (a sequence of pickles followed by the raw
// storages). The pickle is read by core/pickle.h with an allow-list of exactly the globals a state
// dict needs (OrderedDict, torch's tensor and parameter rebuild functions, the storage types), so
// nothing in the file is ever executed. Tensors come out as contiguous CPU tensors: strides and
// storage offsets are applied and bounds-checked against their storage; float16 becomes float32
// (mtl has no float16), the other storage types keep their dtype.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mtl {

struct TorchFile {
  std::map<std::string, Tensor> tensors;  // the state dict, names as in the file less any wrapper prefix
  std::string format;                     // "zip" or "legacy"
  // How the state dict was found: "top level", "under 'state_dict'", ... and any prefix removed.
  std::string location;
  std::vector<std::string> removed_prefixes;  // "module." (DataParallel), "model." (Lightning)
};

// The first bytes of a torch.save file (either format).
bool looks_like_torch_file(std::string_view head);

// Reads the file and finds its state dict: the top level when it is a dict of tensors, otherwise
// the first dict of tensors under "state_dict", "model_state_dict", "model", "net", "network",
// "module" or "weights" (nested checkpoints, Lightning's). A prefix that every name carries,
// "module." or "model.", is removed (repeatedly). Every problem is an mtl::Error naming the file.
TorchFile load_torch_file(const std::string& path);
// The same from bytes already in memory; `source` names them in messages.
TorchFile parse_torch_file(std::string_view bytes, const std::string& source);

}  // namespace mtl
