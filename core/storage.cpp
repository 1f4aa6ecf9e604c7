#include "core/storage.h"

#include "core/allocator.h"

namespace mtl {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = device.is_cuda() ? cuda::allocate(nbytes) : cpu_allocate(nbytes);
}

Storage::~Storage() {
  if (device_.is_cuda())
    cuda::deallocate(data_);
  else
    cpu_deallocate(data_);
}

}  // namespace mtl
