#pragma once
// Helpers shared by the loss and metric kernels (block sums are in reduce.cuh): the bad-label
// slot, vector loads over pixels, and launcher scratch memory.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/allocator.h"
#include "kernels/cuda/packed.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/labels.h"

namespace mtl::kernels::cuda {

// Keeps the smallest offending flat pixel index, so the label reported does not depend on thread
// scheduling. The slot starts as kNoBadLabel (all ones), larger than any index when unsigned.
__device__ __forceinline__ void record_bad(int64_t* bad, int64_t i) {
  atomicMin(reinterpret_cast<unsigned long long*>(bad), static_cast<unsigned long long>(i));
}

// V consecutive floats into or out of an array: one 16-byte access for V = 4 (the caller
// guarantees alignment).
template <int V>
__device__ __forceinline__ void load_vec(float (&v)[V], const float* p) {
  const Packed<V> q = load_packed<V>(p);
  for (int i = 0; i < V; ++i) v[i] = q.v[i];
}

template <int V>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[V]) {
  Packed<V> q;
  for (int i = 0; i < V; ++i) q.v[i] = v[i];
  store_packed<V>(p, q);
}

// Device memory for partial sums, from the caching allocator, for one launcher call. Everything
// runs on the one mtl stream, so the block can be handed back as soon as the kernels that use it
// are enqueued: whoever gets it next runs after them.
class Scratch {
 public:
  explicit Scratch(size_t nbytes) : p_(nbytes ? mtl::cuda::allocate(nbytes) : nullptr) {}
  ~Scratch() {
    if (p_) mtl::cuda::deallocate(p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_;
};

}  // namespace mtl::kernels::cuda
