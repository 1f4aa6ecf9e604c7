#pragma once
// Integer label maps as the loss and metric kernels read them: a pointer and its element type, so
// that uint8 (on disk), int32 (the framework's) and int64 (PyTorch's) labels are read in place
// rather than converted first. Converting int64 to int32 would also wrap a huge bad label into a
// valid class; reading it as int64 keeps it invalid and reported.
#include <cstdint>

#include "kernels/layout.h"

namespace mtl::kernels {

enum class LabelType : uint8_t { u8, i32, i64 };

struct Labels {
  const void* data = nullptr;
  LabelType type = LabelType::i32;

  // The switch is uniform across a warp (one type per launch), so it costs no divergence.
  MTL_HD int64_t operator[](int64_t i) const {
    switch (type) {
      case LabelType::u8: return static_cast<const uint8_t*>(data)[i];
      case LabelType::i32: return static_cast<const int32_t*>(data)[i];
      default: return static_cast<const int64_t*>(data)[i];
    }
  }
};

// Sentinel written to a kernel's `bad` slot when every label was a class or ignore_index.
constexpr int64_t kNoBadLabel = -1;

}  // namespace mtl::kernels
