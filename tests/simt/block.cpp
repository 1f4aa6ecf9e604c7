#include "tests/simt/block.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <source_location>
#include <sstream>
#include <vector>

#include "tests/simt/runtime.h"
#include "tests/simt/thread.h"

namespace mtl::simt {

namespace ctx = boost::context;

namespace {

// Fiber stacks are reused from block to block: mapping fresh ones for every CUDA thread would cost
// more than running the kernels. Each has an inaccessible page below it, so an overflow faults.
class StackPool {
 public:
  static constexpr size_t kSize = 128 * 1024;
  ctx::stack_context get() {
    if (free_.empty()) {
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      void* base = mmap(nullptr, kSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) {
        std::fprintf(stderr, "simt: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(base, page, PROT_NONE);
      ctx::stack_context sc;
      sc.size = kSize;
      sc.sp = static_cast<char*>(base) + page + kSize;
      return sc;
    }
    ctx::stack_context sc = free_.back();
    free_.pop_back();
    return sc;
  }
  void put(ctx::stack_context sc) { free_.push_back(sc); }

 private:
  std::vector<ctx::stack_context> free_;
};

struct PooledStack {
  StackPool* pool;
  ctx::stack_context allocate() { return pool->get(); }
  void deallocate(ctx::stack_context& sc) { pool->put(sc); }
};

enum class State { ready, at_barrier, at_warp, exited };

struct Arrival {
  WarpOp op;
  unsigned mask;
  uint64_t value;
  int arg, width;
  std::source_location where;
};

struct Thread {
  ThreadContext ctx;
  int tid = 0, warp = 0, lane = 0;
  State state = State::ready;
  ctx::fiber fiber, scheduler;
  Arrival arrival{};
  uint64_t result = 0;
  std::source_location barrier_at;
};

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl_idx:
      return "__shfl_sync";
    case WarpOp::shfl_up:
      return "__shfl_up_sync";
    case WarpOp::shfl_down:
      return "__shfl_down_sync";
    case WarpOp::shfl_xor:
      return "__shfl_xor_sync";
    case WarpOp::ballot:
      return "__ballot_sync";
    case WarpOp::match_any:
      return "__match_any_sync";
    case WarpOp::any:
      return "__any_sync";
    case WarpOp::all:
      return "__all_sync";
    case WarpOp::sync:
      return "__syncwarp";
    case WarpOp::active:
      return "__activemask";
  }
  return "?";
}

std::string at(const std::source_location& w) {
  std::string file = w.file_name();
  const size_t slash = file.rfind('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  return file + ":" + std::to_string(w.line());
}

std::string hex(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", m);
  return buf;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Block {
 public:
  explicit Block(const BlockJob& job);
  std::string run();

  Thread& running() { return *running_; }
  void yield() {
    Thread& t = *running_;
    t.scheduler = std::move(t.scheduler).resume();
  }
  void fail(const std::string& what) {
    if (fault_.empty()) fault_ = what;
  }
  std::string who(const Thread& t) const;

 private:
  void resume(Thread& t);
  std::vector<int> order(int phase) const;
  void arrive(const Thread& t);
  void exited(const Thread& t);
  bool settle_active();
  void complete(int warp, size_t group);
  std::string describe_wait(const Thread& t) const;
  std::string deadlock() const;

  const BlockJob& job_;
  int nthreads_ = 0;
  std::vector<Thread> threads_;
  // Collectives waiting for lanes, per warp.
  struct Group {
    WarpOp op;
    unsigned mask, arrived;
    int first_lane;
  };
  struct Warp {
    unsigned exited = 0;  // lanes that ended, and lanes past the block's last thread
    std::vector<Group> groups;
  };
  std::vector<Warp> warps_;
  Thread* running_ = nullptr;
  std::string fault_;
};

thread_local Block* t_block = nullptr;
StackPool& stacks() {
  static thread_local StackPool pool;
  return pool;
}

Block::Block(const BlockJob& job) : job_(job) {
  nthreads_ = static_cast<int>(job.block.x * job.block.y * job.block.z);
  threads_.resize(static_cast<size_t>(nthreads_));
  warps_.resize(static_cast<size_t>((nthreads_ + 31) / 32));
  if (nthreads_ % 32) warps_.back().exited = ~0u << (nthreads_ % 32);
  for (int tid = 0; tid < nthreads_; ++tid) {
    Thread& t = threads_[static_cast<size_t>(tid)];
    t.tid = tid;
    t.warp = tid / 32;
    t.lane = tid % 32;
    const unsigned x = static_cast<unsigned>(tid) % job.block.x;
    const unsigned y = static_cast<unsigned>(tid) / job.block.x % job.block.y;
    const unsigned z = static_cast<unsigned>(tid) / (job.block.x * job.block.y);
    t.ctx = {{x, y, z}, {job.block_idx.x, job.block_idx.y, job.block_idx.z}, job.block, job.grid};
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{&stacks()}, [this, &t](ctx::fiber&& scheduler) {
      t.scheduler = std::move(scheduler);
      job_.thread_body();
      t.state = State::exited;
      return std::move(t.scheduler);
    });
  }
}

std::string Block::who(const Thread& t) const {
  std::ostringstream os;
  os << "thread (" << t.ctx.thread_idx.x << ", " << t.ctx.thread_idx.y << ", " << t.ctx.thread_idx.z << ") (warp "
     << t.warp << ", lane " << t.lane << ")";
  return os.str();
}

void Block::resume(Thread& t) {
  running_ = &t;
  t.fiber = std::move(t.fiber).resume();
  running_ = nullptr;
}

std::vector<int> Block::order(int phase) const {
  std::vector<int> o(static_cast<size_t>(nthreads_));
  std::iota(o.begin(), o.end(), 0);
  if (job_.schedule.kind == Schedule::reverse) {
    std::reverse(o.begin(), o.end());
  } else if (job_.schedule.kind == Schedule::shuffle) {
    const dim3& b = job_.block_idx;
    uint64_t s = splitmix(job_.schedule.seed);
    for (uint64_t v : {job_.launch_index, (uint64_t{b.z} << 42) ^ (uint64_t{b.y} << 21) ^ b.x, uint64_t(phase)})
      s = splitmix(s ^ v);
    for (size_t i = o.size(); i > 1; --i) {
      s = splitmix(s);
      std::swap(o[i - 1], o[static_cast<size_t>(s % i)]);
    }
  }
  return o;
}

// A lane arrived in a collective: its mask must name it, and a collective already waiting whose
// mask overlaps must be the same one with the same mask. The collective completes once every lane
// of its mask has arrived or exited.
void Block::arrive(const Thread& t) {
  const Arrival& a = t.arrival;
  const unsigned bit = 1u << t.lane;
  if (!(a.mask & bit)) {
    fail(who(t) + " calls " + op_name(a.op) + " at " + at(a.where) + " with mask " + hex(a.mask) +
         ", which does not include its own lane");
    return;
  }
  Warp& w = warps_[static_cast<size_t>(t.warp)];
  for (size_t g = 0; g < w.groups.size(); ++g) {
    Group& grp = w.groups[g];
    if (!(grp.mask & a.mask)) continue;
    if (grp.mask != a.mask || grp.op != a.op) {
      const Thread& o = threads_[static_cast<size_t>(t.warp * 32 + grp.first_lane)];
      fail("lanes " + std::to_string(t.lane) + " and " + std::to_string(grp.first_lane) + " of warp " +
           std::to_string(t.warp) + " meet in different warp collectives: " + op_name(a.op) + " with mask " +
           hex(a.mask) + " at " + at(a.where) + " and " + op_name(o.arrival.op) + " with mask " + hex(o.arrival.mask) +
           " at " + at(o.arrival.where));
      return;
    }
    grp.arrived |= bit;
    if (((grp.arrived | w.exited) & grp.mask) == grp.mask) complete(t.warp, g);
    return;
  }
  w.groups.push_back({a.op, a.mask, bit, t.lane});
  if (((bit | w.exited) & a.mask) == a.mask) complete(t.warp, w.groups.size() - 1);
}

// A lane exited: collectives of its warp that waited for it may be complete now.
void Block::exited(const Thread& t) {
  Warp& w = warps_[static_cast<size_t>(t.warp)];
  w.exited |= 1u << t.lane;
  for (size_t g = w.groups.size(); g-- > 0;) {
    const Group& grp = w.groups[g];
    if (((grp.arrived | w.exited) & grp.mask) == grp.mask) complete(t.warp, g);
    if (!fault_.empty()) return;
  }
}

void Block::complete(int warp, size_t group) {
  std::vector<Group>& groups = warps_[static_cast<size_t>(warp)].groups;
  const unsigned mask = groups[group].mask, present = groups[group].arrived;
  groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(group));
  const int first = warp * 32, count = std::min(32, nthreads_ - first);
  auto lane = [&](int k) -> Thread& { return threads_[static_cast<size_t>(first + k)]; };
  for (int l = 0; l < count; ++l) {
    if (!(present >> l & 1u)) continue;
    Thread& t = lane(l);
    const Arrival& a = t.arrival;
    const int w = a.width, seg = l / w * w;
    int src = l;
    switch (a.op) {
      case WarpOp::shfl_idx:
        src = seg + (a.arg & (w - 1));
        break;
      case WarpOp::shfl_up:
        src = l - a.arg >= seg ? l - a.arg : l;
        break;
      case WarpOp::shfl_down:
        src = l + a.arg < seg + w ? l + a.arg : l;
        break;
      case WarpOp::shfl_xor:
        src = (l ^ a.arg) < seg + w ? (l ^ a.arg) : l;
        break;
      default:
        break;
    }
    switch (a.op) {
      case WarpOp::shfl_idx:
      case WarpOp::shfl_up:
      case WarpOp::shfl_down:
      case WarpOp::shfl_xor:
        if (src < 0 || src >= count || !(present >> src & 1u)) {
          fail(who(t) + " reads lane " + std::to_string(src) + " through " + op_name(a.op) + " at " + at(a.where) +
               " with mask " + hex(mask) + ", but that lane does not take part");
          return;
        }
        t.result = lane(src).arrival.value;
        break;
      case WarpOp::ballot:
      case WarpOp::any:
      case WarpOp::all: {
        unsigned votes = 0;
        for (int k = 0; k < count; ++k)
          if ((present >> k & 1u) && lane(k).arrival.value) votes |= 1u << k;
        t.result = a.op == WarpOp::ballot ? votes : a.op == WarpOp::any ? votes != 0 : votes == present;
        break;
      }
      case WarpOp::match_any: {
        unsigned same = 0;
        for (int k = 0; k < count; ++k)
          if ((present >> k & 1u) && lane(k).arrival.value == a.value) same |= 1u << k;
        t.result = same;
        break;
      }
      case WarpOp::sync:
      case WarpOp::active:
        break;
    }
  }
  for (int l = 0; l < count; ++l)
    if (present >> l & 1u) lane(l).state = State::ready;
}

// Called when no thread can run: every warp whose lanes wait in __activemask() gets, in each of
// them, the mask of those lanes.
bool Block::settle_active() {
  bool any = false;
  for (int warp = 0; warp * 32 < nthreads_; ++warp) {
    unsigned waiting = 0;
    for (int l = 0; l < 32 && warp * 32 + l < nthreads_; ++l) {
      const Thread& t = threads_[static_cast<size_t>(warp * 32 + l)];
      if (t.state == State::at_warp && t.arrival.op == WarpOp::active) waiting |= 1u << l;
    }
    for (int l = 0; l < 32; ++l)
      if (waiting >> l & 1u) {
        Thread& t = threads_[static_cast<size_t>(warp * 32 + l)];
        t.result = waiting;
        t.state = State::ready;
      }
    any = any || waiting;
  }
  return any;
}

std::string Block::describe_wait(const Thread& t) const {
  switch (t.state) {
    case State::at_barrier:
      return "waits at __syncthreads() at " + at(t.barrier_at);
    case State::at_warp:
      return std::string("waits in ") + op_name(t.arrival.op) + " with mask " + hex(t.arrival.mask) + " at " +
             at(t.arrival.where);
    case State::exited:
      return "has exited";
    case State::ready:
      return "is running";
  }
  return "?";
}

// No thread can run: some collective waits for lanes that are elsewhere.
std::string Block::deadlock() const {
  for (const Thread& t : threads_) {
    if (t.state != State::at_warp) continue;
    const int first = t.warp * 32;
    for (int k = 0; k < 32 && first + k < nthreads_; ++k) {
      const Thread& o = threads_[static_cast<size_t>(first + k)];
      if ((t.arrival.mask >> k & 1u) && o.state != State::at_warp && o.state != State::exited)
        return who(t) + " " + describe_wait(t) + ", but lane " + std::to_string(k) +
               ", in the mask, never arrives: " + who(o) + " " + describe_wait(o);
    }
  }
  return "the block's threads wait for one another";
}

std::string Block::run() {
  Block* outer = t_block;
  t_block = this;
  struct Restore {
    Block*& slot;
    Block* value;
    ~Restore() { slot = value; }
  } restore{t_block, outer};

  for (int phase = 0;; ++phase) {
    // Warps take turns in the order their first thread has in the schedule, and each runs as far
    // as it can (to a barrier or its end) before the next starts, as a warp may run ahead on a GPU;
    // within a warp the lanes run in the schedule's order between collectives.
    const std::vector<int> sweep = order(phase);
    std::vector<std::vector<int>> lanes(warps_.size());
    std::vector<int> warp_order;
    for (int tid : sweep) {
      if (lanes[static_cast<size_t>(tid / 32)].empty()) warp_order.push_back(tid / 32);
      lanes[static_cast<size_t>(tid / 32)].push_back(tid);
    }
    do {
      for (int w : warp_order)
        for (bool progressed = true; progressed;) {
          progressed = false;
          for (int tid : lanes[static_cast<size_t>(w)]) {
            Thread& t = threads_[static_cast<size_t>(tid)];
            if (t.state != State::ready) continue;
            resume(t);
            progressed = true;
            if (t.state == State::at_warp && t.arrival.op != WarpOp::active)
              arrive(t);
            else if (t.state == State::exited)
              exited(t);
            if (!fault_.empty()) return fault_;
          }
        }
    } while (settle_active());
    const Thread* barrier = nullptr;
    bool any_alive = false;
    for (const Thread& t : threads_) {
      if (t.state == State::exited) continue;
      any_alive = true;
      if (t.state == State::at_warp) return deadlock();
      if (!barrier) {
        barrier = &t;
      } else if (t.barrier_at.line() != barrier->barrier_at.line() ||
                 std::string_view(t.barrier_at.file_name()) != barrier->barrier_at.file_name()) {
        return "threads of the block reach different __syncthreads(): " + who(*barrier) + " at " +
               at(barrier->barrier_at) + ", " + who(t) + " at " + at(t.barrier_at);
      }
    }
    if (!any_alive) return "";
    for (Thread& t : threads_)
      if (t.state == State::at_barrier) t.state = State::ready;
  }
}

Block& block() {
  if (!t_block) {
    std::fprintf(stderr, "simt: a device function was called outside a kernel\n");
    std::abort();
  }
  return *t_block;
}

}  // namespace

Schedule Schedule::for_epoch(uint64_t epoch) {
  if (epoch == 0) return {forward, 0};
  if (epoch == 1) return {reverse, 0};
  return {shuffle, splitmix(epoch)};
}

std::vector<uint64_t> Schedule::block_order(uint64_t blocks, uint64_t launch_index) const {
  std::vector<uint64_t> o(blocks);
  std::iota(o.begin(), o.end(), uint64_t{0});
  if (kind == reverse) {
    std::reverse(o.begin(), o.end());
  } else if (kind == shuffle) {
    uint64_t s = splitmix(splitmix(seed) ^ launch_index);
    for (size_t i = o.size(); i > 1; --i) {
      s = splitmix(s);
      std::swap(o[i - 1], o[static_cast<size_t>(s % i)]);
    }
  }
  return o;
}

std::string Schedule::describe() const {
  switch (kind) {
    case forward:
      return "forward";
    case reverse:
      return "reverse";
    case shuffle:
      return "shuffle:" + std::to_string(seed);
  }
  return "?";
}

std::string run_block(const BlockJob& job) {
  Block b(job);
  return b.run();
}

const ThreadContext& current() { return block().running().ctx; }

void fail_running_block(const std::string& what) { block().fail(block().who(block().running()) + " " + what); }

void sync_threads(std::source_location where) {
  Block& b = block();
  Thread& t = b.running();
  t.state = State::at_barrier;
  t.barrier_at = where;
  b.yield();
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, std::source_location where) {
  Block& b = block();
  Thread& t = b.running();
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    b.fail(b.who(t) + " calls " + op_name(op) + " at " + at(where) + " with width " + std::to_string(width) +
           ", not a power of two up to 32");
  t.arrival = {op, mask, value, arg, width, where};
  t.state = State::at_warp;
  b.yield();
  return t.result;
}

}  // namespace mtl::simt
