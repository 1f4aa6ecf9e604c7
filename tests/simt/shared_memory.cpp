#include "tests/simt/shared_memory.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/simt/symbols.h"

namespace mtl::simt {

namespace {

struct Region {
  unsigned char* data;
  size_t size;
  std::string name;
};

struct SharedLayout {
  std::vector<Region> vars;
  unsigned char* dynamic = nullptr;
};

const SharedLayout& layout() {
  static const SharedLayout l = [] {
    SharedLayout out;
    const Symbols& s = symbols();
    for (size_t i = 0; i < s.shared.size(); ++i) {
      const Symbol& v = s.shared[i];
      const uintptr_t end = v.address + v.size;
      const uintptr_t next = i + 1 < s.shared.size() ? s.shared[i + 1].address : s.shared_end;
      if (next < end + kGuardBytes) {
        std::fprintf(stderr,
                     "simt: the __shared__ variable %s (%zu bytes) has no %zu-byte guard zone after it: it is larger "
                     "than MTL_SIMT_SHARED_SLOT allows, or tests/simt/shared.ld was not linked\n",
                     v.name.c_str(), v.size, kGuardBytes);
        std::abort();
      }
      out.vars.push_back({reinterpret_cast<unsigned char*>(v.address), v.size, v.name});
      std::memset(reinterpret_cast<unsigned char*>(end), kPoison, kGuardBytes);
    }
    out.dynamic = static_cast<unsigned char*>(std::aligned_alloc(128, kMaxDynamicShared + kGuardBytes));
    return out;
  }();
  return l;
}

bool intact(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != kPoison) return false;
  return true;
}

}  // namespace

void poison_shared(size_t dynamic_bytes) {
  const SharedLayout& l = layout();
  for (const Region& r : l.vars) std::memset(r.data, kPoison, r.size);
  std::memset(l.dynamic, kPoison, dynamic_bytes + kGuardBytes);
}

std::string check_shared_guards(size_t dynamic_bytes) {
  const SharedLayout& l = layout();
  for (const Region& r : l.vars)
    if (!intact(r.data + r.size, kGuardBytes)) {
      std::memset(r.data + r.size, kPoison, kGuardBytes);
      return "a write past the end of the __shared__ variable " + r.name + " (" + std::to_string(r.size) + " bytes)";
    }
  if (!intact(l.dynamic + dynamic_bytes, kGuardBytes))
    return "a write past the end of the dynamic shared memory (" + std::to_string(dynamic_bytes) + " bytes)";
  return "";
}

unsigned char* dynamic_shared_area() { return layout().dynamic; }

}  // namespace mtl::simt
