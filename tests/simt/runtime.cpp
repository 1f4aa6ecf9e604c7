// The CUDA runtime API on the host, for the functions core/, the launchers and the tests call:
// device memory is host memory, every stream feeds one queue that runs when the host waits for it
// (as a GPU works behind the host's back), and the device looks like an H100.
#include "tests/simt/runtime.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/simt/block.h"
#include "tests/simt/launch.h"
#include "tests/simt/shared_memory.h"
#include "tests/simt/symbols.h"
#include "tests/support/schedule.h"

namespace mtl::simt {

namespace {

constexpr size_t kDefaultShared = 48 * 1024;
constexpr size_t kDeviceMemory = size_t{80} << 30;  // what the device reports
constexpr size_t kMemoryCap = size_t{8} << 30;      // what the host lends it

struct Event {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};

struct Runtime {
  std::recursive_mutex mu;
  std::map<uintptr_t, size_t> device;  // cudaMalloc blocks: start -> size
  std::set<void*> pinned;
  size_t device_bytes = 0;
  std::set<cudaStream_t> streams;
  std::set<Event*> events;
  std::map<const void*, int> max_dynamic_shared;  // cudaFuncSetAttribute
  std::deque<std::function<void()>> queue;
  std::string failure;  // sticky
  uint64_t launches = 0;
  const Launch* running = nullptr;
};

Runtime& rt() {
  static Runtime* r = new Runtime;  // leaked: frees during static destruction stay valid
  return *r;
}

thread_local cudaError_t t_last_error = cudaSuccess;

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

// The error every call returns once a kernel has failed.
bool failed() { return !rt().failure.empty(); }

void flush() {
  Runtime& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  while (!r.queue.empty()) {
    std::function<void()> op = std::move(r.queue.front());
    r.queue.pop_front();
    if (!failed()) op();
  }
}

cudaError_t flush_status() {
  flush();
  return failed() ? set_error(cudaErrorLaunchFailure) : cudaSuccess;
}

void enqueue(std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  rt().queue.push_back(std::move(op));
}

bool valid_stream(cudaStream_t s) { return s == nullptr || rt().streams.count(s) > 0; }

// Whether [p, p + n) lies in one cudaMalloc block.
bool on_device(const void* p, size_t n) {
  const auto& d = rt().device;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = d.upper_bound(a);
  if (it == d.begin()) return false;
  --it;
  return a + n <= it->first + it->second;
}

struct ErrorText {
  cudaError_t code;
  const char *name, *text;
};

// The errors this runtime returns, with CUDA's names and strings.
ErrorText error_text(cudaError_t e) {
  static const ErrorText known[] = {
      {cudaSuccess, "cudaSuccess", "no error"},
      {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
      {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
      {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
      {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
      {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
      {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
      {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
  };
  for (const ErrorText& k : known)
    if (k.code == e) return k;
  return {e, "cudaErrorUnknown", "unknown error"};
}

bool is_pinned(const void* p) { return rt().pinned.count(const_cast<void*>(p)) > 0; }

Schedule schedule_now() {
  static const char* fixed = std::getenv("MTL_SIMT_SCHEDULE");
  if (fixed) {
    const std::string s = fixed;
    if (s == "forward") return {Schedule::forward, 0};
    if (s == "reverse") return {Schedule::reverse, 0};
    if (s.rfind("shuffle:", 0) == 0) return {Schedule::shuffle, std::stoull(s.substr(8))};
    std::fprintf(stderr, "simt: MTL_SIMT_SCHEDULE=%s is not forward, reverse or shuffle:SEED\n", fixed);
    std::abort();
  }
  return Schedule::for_epoch(test::g_schedule_epoch.load());
}

std::string dims(const dim3& d) {
  return "(" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + ")";
}

void run_grid(const Launch& l, Schedule schedule, uint64_t index) {
  Runtime& r = rt();
  r.running = &l;
  const uint64_t gx = l.grid.x, gy = l.grid.y, blocks = gx * gy * l.grid.z;
  for (uint64_t b : schedule.block_order(blocks, index)) {
    poison_shared(l.shared_bytes);
    const dim3 idx(static_cast<unsigned>(b % gx), static_cast<unsigned>(b / gx % gy),
                   static_cast<unsigned>(b / (gx * gy)));
    std::string fault = run_block({l.grid, l.block, idx, l.thread_body, schedule, index});
    if (fault.empty()) fault = check_shared_guards(l.shared_bytes);
    if (!fault.empty()) {
      r.failure = std::string("kernel ") + l.site.kernel + " (launched at " + l.site.file + ":" +
                  std::to_string(l.site.line) + "), block " + dims(idx) + " of grid " + dims(l.grid) + ", threads " +
                  dims(l.block) + ", schedule " + schedule.describe() + ": " + fault;
      std::fprintf(stderr, "simt: %s\n", r.failure.c_str());
      break;
    }
  }
  r.running = nullptr;
}

}  // namespace

void enqueue_launch(Launch l, cudaStream_t stream) {
  Runtime& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (failed()) {
    set_error(cudaErrorLaunchFailure);
    return;
  }
  const uint64_t threads = uint64_t{l.block.x} * l.block.y * l.block.z;
  if (threads == 0 || threads > 1024 || l.block.x > 1024 || l.block.y > 1024 || l.block.z > 64 || l.grid.x == 0 ||
      l.grid.y == 0 || l.grid.z == 0 || l.grid.x > 0x7fffffffu || l.grid.y > 65535 || l.grid.z > 65535) {
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (l.shared_bytes > kMaxDynamicShared || !valid_stream(stream)) {
    set_error(cudaErrorInvalidValue);
    return;
  }
  const Schedule schedule = schedule_now();
  const uint64_t index = r.launches++;
  auto shared = std::make_shared<Launch>(std::move(l));
  enqueue([shared, schedule, index] { run_grid(*shared, schedule, index); });
}

std::string take_failure() {
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  flush();
  std::string f = std::move(rt().failure);
  rt().failure.clear();
  t_last_error = cudaSuccess;
  return f;
}

}  // namespace mtl::simt

using mtl::simt::rt;

void* mtl_simt_dynamic_shared() {
  // dynamic_shared<T>() is inlined into the kernel: the caller's address names the kernel, whose
  // cudaFuncSetAttribute must allow launches above the default 48 KiB, as on a GPU.
  const mtl::simt::Launch* l = rt().running;
  if (l && l->shared_bytes > mtl::simt::kDefaultShared) {
    const auto pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
    const mtl::simt::Symbol* f = mtl::simt::symbols().function_at(pc);
    auto it =
        f ? rt().max_dynamic_shared.find(reinterpret_cast<const void*>(f->address)) : rt().max_dynamic_shared.end();
    if (it == rt().max_dynamic_shared.end() || static_cast<size_t>(it->second) < l->shared_bytes)
      mtl::simt::fail_running_block(
          "launched with " + std::to_string(l->shared_bytes) +
          " bytes of dynamic shared memory, more than the default 49152, but cudaFuncSetAttribute("
          "cudaFuncAttributeMaxDynamicSharedMemorySize) allows " +
          (it == rt().max_dynamic_shared.end() ? std::string("no more") : std::to_string(it->second)) +
          (f ? " for " + mtl::simt::demangle(f->name.c_str()) : std::string()));
  }
  return mtl::simt::dynamic_shared_area();
}

// ---- the runtime API -------------------------------------------------------------------------------

extern "C" {

cudaError_t cudaGetLastError() {
  if (mtl::simt::failed()) return cudaErrorLaunchFailure;
  const cudaError_t e = mtl::simt::t_last_error;
  mtl::simt::t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return mtl::simt::failed() ? cudaErrorLaunchFailure : mtl::simt::t_last_error; }

const char* cudaGetErrorName(cudaError_t e) { return mtl::simt::error_text(e).name; }

const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaErrorLaunchFailure) return mtl::simt::error_text(e).text;
  // The message of the kernel that failed, as long as the failure stands.
  static thread_local std::string text;
  text = std::string(mtl::simt::error_text(e).text) + ": " + rt().failure;
  return text.c_str();
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : mtl::simt::set_error(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return mtl::simt::set_error(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof(p->name), "mtl simt: the CPU execution layer (H100-like)");
  p->totalGlobalMem = mtl::simt::kDeviceMemory;
  p->sharedMemPerBlock = mtl::simt::kDefaultShared;
  p->sharedMemPerBlockOptin = mtl::simt::kMaxDynamicShared;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->reservedSharedMemPerBlock = 1024;
  p->regsPerBlock = p->regsPerMultiprocessor = 65536;
  p->warpSize = 32;
  p->memPitch = 0x7fffffff;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->totalConstMem = 65536;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->maxBlocksPerMultiProcessor = 32;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->memoryBusWidth = 5120;
  p->concurrentKernels = 1;
  p->asyncEngineCount = 2;
  p->unifiedAddressing = 1;
  p->canMapHostMemory = 1;
  p->cooperativeLaunch = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return mtl::simt::set_error(cudaErrorInvalidDevice);
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(p.sharedMemPerBlockOptin);
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(p.sharedMemPerBlock);
      break;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = p.maxThreadsPerBlock;
      break;
    case cudaDevAttrWarpSize:
      *value = p.warpSize;
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = p.multiProcessorCount;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = p.major;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = p.minor;
      break;
    case cudaDevAttrL2CacheSize:
      *value = p.l2CacheSize;
      break;
    default:
      return mtl::simt::set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;  // the rest are hints
  if (value < 0 || static_cast<size_t>(value) > mtl::simt::kMaxDynamicShared)
    return mtl::simt::set_error(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  rt().max_dynamic_shared[func] = value;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t size) {
  auto& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (mtl::simt::failed()) return cudaErrorLaunchFailure;
  const size_t n = (std::max<size_t>(size, 1) + 255) / 256 * 256;  // CUDA's 256-byte alignment
  if (r.device_bytes + n > mtl::simt::kMemoryCap) return mtl::simt::set_error(cudaErrorMemoryAllocation);
  void* block = std::aligned_alloc(256, n);
  if (!block) return mtl::simt::set_error(cudaErrorMemoryAllocation);
  std::memset(block, 0xff, n);  // fresh device memory holds garbage
  r.device[reinterpret_cast<uintptr_t>(block)] = n;
  r.device_bytes += n;
  *p = block;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  mtl::simt::flush();  // cudaFree waits for the device
  auto it = r.device.find(reinterpret_cast<uintptr_t>(p));
  if (it == r.device.end()) return mtl::simt::set_error(cudaErrorInvalidValue);
  r.device_bytes -= it->second;
  r.device.erase(it);
  std::free(p);
  return mtl::simt::failed() ? cudaErrorLaunchFailure : cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t size, unsigned int) {
  *p = std::aligned_alloc(4096, (std::max<size_t>(size, 1) + 4095) / 4096 * 4096);
  if (!*p) return mtl::simt::set_error(cudaErrorMemoryAllocation);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  rt().pinned.insert(*p);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t size) { return cudaHostAlloc(p, size, 0); }

cudaError_t cudaFreeHost(void* p) {
  auto& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  mtl::simt::flush();
  if (!r.pinned.erase(p)) return mtl::simt::set_error(cudaErrorInvalidValue);
  std::free(p);
  return cudaSuccess;
}

// Pageable host memory is read when the call is made and written before it returns, as CUDA's
// staging does; device memory and pinned host memory are touched when the queue reaches the copy.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  using namespace mtl::simt;
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (failed()) return cudaErrorLaunchFailure;
  if (n == 0) return cudaSuccess;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  if (kind == cudaMemcpyDefault)
    kind = on_device(src, n) ? (on_device(dst, n) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                             : (on_device(dst, n) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if ((src_dev && !on_device(src, n)) || (dst_dev && !on_device(dst, n))) return set_error(cudaErrorInvalidValue);
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + n);
    enqueue([dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    return cudaSuccess;
  }
  if ((kind == cudaMemcpyDeviceToHost && !is_pinned(dst)) || kind == cudaMemcpyHostToHost) {
    if (flush_status() != cudaSuccess) return cudaErrorLaunchFailure;
    std::memcpy(dst, src, n);
    return cudaSuccess;
  }
  enqueue([dst, src, n] { std::memcpy(dst, src, n); });
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, nullptr);
  return e != cudaSuccess ? e : mtl::simt::flush_status();
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t stream) {
  using namespace mtl::simt;
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (failed()) return cudaErrorLaunchFailure;
  if (n == 0) return cudaSuccess;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  if (!on_device(p, n)) return set_error(cudaErrorInvalidValue);
  enqueue([p, value, n] { std::memset(p, value, n); });
  return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t n) {
  const cudaError_t e = cudaMemsetAsync(p, value, n, nullptr);
  return e != cudaSuccess ? e : mtl::simt::flush_status();
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = reinterpret_cast<cudaStream_t>(new char);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  rt().streams.insert(*s);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (!rt().streams.erase(s)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  mtl::simt::flush();
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!mtl::simt::valid_stream(s)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  return mtl::simt::flush_status();
}

cudaError_t cudaStreamQuery(cudaStream_t s) {
  if (!mtl::simt::valid_stream(s)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  return rt().queue.empty() ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* data) {
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (mtl::simt::failed()) return cudaErrorLaunchFailure;
  if (!mtl::simt::valid_stream(s)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  mtl::simt::enqueue([fn, data] { fn(data); });
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return mtl::simt::flush_status(); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) {
  auto* ev = new mtl::simt::Event;
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  rt().events.insert(ev);
  *e = reinterpret_cast<cudaEvent_t>(ev);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  auto* ev = reinterpret_cast<mtl::simt::Event*>(e);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (!rt().events.erase(ev)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  mtl::simt::flush();
  delete ev;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  auto* ev = reinterpret_cast<mtl::simt::Event*>(e);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (!rt().events.count(ev) || !mtl::simt::valid_stream(s))
    return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  ev->recorded = false;
  mtl::simt::enqueue([ev] {
    ev->recorded = true;
    ev->at = std::chrono::steady_clock::now();
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!rt().events.count(reinterpret_cast<mtl::simt::Event*>(e)))
    return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  return mtl::simt::flush_status();
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
  auto* ev = reinterpret_cast<mtl::simt::Event*>(e);
  std::lock_guard<std::recursive_mutex> lock(rt().mu);
  if (!rt().events.count(ev)) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  return ev->recorded ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  auto* a = reinterpret_cast<mtl::simt::Event*>(start);
  auto* b = reinterpret_cast<mtl::simt::Event*>(stop);
  if (!a->recorded || !b->recorded) return mtl::simt::set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}

}  // extern "C"
