// A CPU emulation of the part of CUDA that the kernels in csrc/ use, so that their device code runs in tests on
// machines without a GPU (tests/cuda_emu/emulated_extension.py compiles csrc/**/*.cu with g++ against this header).
//
// Every CUDA thread of a block is a fiber (ucontext) with its own stack; one OS thread runs the block's fibers in
// turn, each until it reaches a barrier (__syncthreads, a warp shuffle) or returns, and blocks run one after the
// other (odd blocks resume their threads in reverse order, so a missing barrier shows in one order or the other).
// __shared__ variables become function statics (one block at a time uses them); dynamic shared memory is a
// per-launch buffer filled with 0xFF bytes (NaN as floats) and followed by an inaccessible page, so reading what no
// thread wrote shows up as NaN and writing past the end faults. What real hardware would reject is an error here
// too: more than 1024 threads, an empty grid, dynamic shared memory over the function's limit (48 KiB unless raised
// with cudaFuncSetAttribute, at most the H100's 227 KiB), a shuffle naming a lane that has exited, a barrier some
// threads never reach.
//
// Not emulated: warps running in lockstep (a thread runs alone until its next barrier, as independent thread
// scheduling allows), memory-model races between blocks, timing.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static

// ------------------------------------------------------------------------------------------------ vector types
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
constexpr int warpSize = 32;

// ------------------------------------------------------------------------------------------------ half types
struct __half { std::uint16_t bits; };
struct __nv_bfloat16 { std::uint16_t bits; };

inline float __half2float(__half h) {
  _Float16 f;
  std::memcpy(&f, &h.bits, sizeof f);
  return static_cast<float>(f);
}
inline __half __float2half_rn(float v) {
  const _Float16 f = static_cast<_Float16>(v);  // round to nearest even
  __half h;
  std::memcpy(&h.bits, &f, sizeof h.bits);
  return h;
}
inline float __bfloat162float(__nv_bfloat16 b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fc0};
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<std::uint16_t>(u >> 16)};
}

// ------------------------------------------------------------------------------------------------ device functions
template <typename T> inline T __ldg(const T* p) { return *p; }
inline float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
inline int __float_as_int(float v) {
  int i;
  std::memcpy(&i, &v, sizeof i);
  return i;
}
inline double __longlong_as_double(long long v) {
  double d;
  std::memcpy(&d, &v, sizeof d);
  return d;
}
inline long long __double_as_longlong(double v) {
  long long i;
  std::memcpy(&i, &v, sizeof i);
  return i;
}
inline unsigned __double2uint_rn(double v) {  // saturating, NaN -> 0, as the hardware conversion
  if (!(v > 0)) return 0;
  if (v >= 4294967295.0) return 4294967295u;
  return static_cast<unsigned>(nearbyint(v));
}
// One OS thread runs every fiber, so a read-modify-write is atomic.
template <typename T> inline T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
template <typename A, typename B> inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B> inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// ------------------------------------------------------------------------------------------------ runtime API
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNotSupported = 801,
};
using cudaStream_t = struct CUstream_st*;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };

namespace emu {

constexpr std::size_t kDefaultDynamicSmem = 48 * 1024;  // without cudaFuncSetAttribute
constexpr std::size_t kMaxDynamicSmem = 227 * 1024;     // H100 opt-in limit per block
constexpr int kMaxThreads = 1024;
constexpr std::size_t kStackBytes = 256 * 1024;

struct Fiber {
  ucontext_t context;
  dim3 index;
  bool done = false;
  int waiting = 0;  // 0 runnable, 1 at __syncthreads, 2 at a warp barrier
};

struct Runtime {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  std::vector<char*> stacks;
  int current = 0;
  dim3 block_idx, block_dim, grid_dim;
  std::function<void()> body;
  std::exception_ptr error;
  std::vector<std::uint64_t> warp_slots;      // [warp][lane]: the value each lane offers to a shuffle
  std::vector<std::uint32_t> warp_arrived;    // [warp]: lanes waiting at the warp barrier
  std::vector<std::uint32_t> warp_mask;       // [warp]: the lanes the current warp barrier waits for
  unsigned char* shared = nullptr;            // dynamic shared memory of the running launch
  std::map<const void*, std::size_t> smem_limit;  // per kernel, from cudaFuncSetAttribute
  std::size_t static_shared = 0;                  // bytes of __shared__ arrays the first block declared
  bool first_block = false;
  cudaError_t last_error = cudaSuccess;

  ~Runtime() {
    for (char* s : stacks) delete[] s;
  }
};

inline Runtime& rt() {
  thread_local Runtime runtime;
  return runtime;
}

inline Fiber& self() { return rt().fibers[rt().current]; }

[[noreturn]] inline void fail(const std::string& message) { throw std::runtime_error("cuda emulation: " + message); }

// Called after each __shared__ declaration (emulated_extension.translate adds the call): thread 0 of the first block
// sums the sizes, which the launch then checks against the kernel's shared-memory limit.
inline void note_static_shared(std::size_t bytes) {
  if (rt().first_block && rt().current == 0) rt().static_shared += bytes;
}

// Called at the top of a kernel declared with __launch_bounds__ (emulated_extension.translate adds the call): a GPU
// refuses a larger block.
inline void note_launch_bounds(long max_threads, long = 0) {
  const dim3& b = rt().block_dim;
  const long threads = static_cast<long>(b.x) * b.y * b.z;
  if (threads > max_threads) {
    fail("a block of " + std::to_string(threads) + " threads exceeds the kernel's __launch_bounds__(" +
         std::to_string(max_threads) + ") (a GPU refuses the launch)");
  }
}

inline void yield_to_scheduler() { swapcontext(&self().context, &rt().scheduler); }

inline void sync_block() {
  self().waiting = 1;
  yield_to_scheduler();
}

inline void sync_warp(unsigned mask) {
  Runtime& r = rt();
  const int id = r.current, warp = id / 32, lane = id % 32;
  if (!(mask >> lane & 1u)) fail("a lane calls a warp operation whose mask leaves it out");
  if (r.warp_arrived[warp] == 0) r.warp_mask[warp] = mask;
  if (r.warp_mask[warp] != mask) fail("lanes of one warp meet at a warp operation with different masks");
  r.warp_arrived[warp] |= 1u << lane;
  r.fibers[id].waiting = 2;
  yield_to_scheduler();
}

template <typename T> inline T shuffle(unsigned mask, T value, int source_lane_in_warp) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t), "shuffle of a type wider than 64 bits");
  Runtime& r = rt();
  const int id = r.current, warp = id / 32;
  std::memcpy(&r.warp_slots[id], &value, sizeof(T));
  sync_warp(mask);
  if (!(mask >> source_lane_in_warp & 1u)) fail("a shuffle reads a lane outside its mask");
  T result;
  std::memcpy(&result, &r.warp_slots[warp * 32 + source_lane_in_warp], sizeof(T));
  sync_warp(mask);  // nobody overwrites its slot before every lane has read
  return result;
}

inline void fiber_entry() {
  Runtime& r = rt();
  try {
    r.body();
  } catch (...) {
    if (!r.error) r.error = std::current_exception();
  }
  r.fibers[r.current].done = true;
}  // returns to uc_link: the scheduler

// Releases the barriers every live thread (block) or every live lane of a mask (warp) has reached.
inline bool release_barriers() {
  Runtime& r = rt();
  const int n = static_cast<int>(r.fibers.size());
  bool released = false;
  int live = 0, at_block = 0;
  for (const Fiber& f : r.fibers) {
    live += !f.done;
    at_block += !f.done && f.waiting == 1;
  }
  if (live > 0 && at_block == live) {
    for (Fiber& f : r.fibers) f.waiting = 0;
    released = true;
  }
  for (int w = 0; w * 32 < n; ++w) {
    if (r.warp_arrived[w] == 0) continue;
    std::uint32_t needed = 0;
    for (int lane = 0; lane < 32 && w * 32 + lane < n; ++lane) {
      if (r.warp_mask[w] >> lane & 1u) {
        if (r.fibers[w * 32 + lane].done) fail("a warp operation waits for a lane that has exited");
        needed |= 1u << lane;
      }
    }
    if ((r.warp_arrived[w] & needed) == needed) {
      for (int lane = 0; lane < 32 && w * 32 + lane < n; ++lane) {
        if (needed >> lane & 1u) r.fibers[w * 32 + lane].waiting = 0;
      }
      r.warp_arrived[w] = 0;
      released = true;
    }
  }
  return released;
}

// Runs one block to completion. `reverse`: resume the threads from the last to the first, so that a read of shared
// memory that another thread writes without a barrier in between sees the old value in every other block.
inline void run_block(bool reverse) {
  Runtime& r = rt();
  const int n = static_cast<int>(r.fibers.size());
  for (int i = 0; i < n; ++i) {
    Fiber& f = r.fibers[i];
    f.index = dim3(i % r.block_dim.x, i / r.block_dim.x % r.block_dim.y, i / (r.block_dim.x * r.block_dim.y));
    f.done = false;
    f.waiting = 0;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = r.stacks[i];
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &r.scheduler;
    makecontext(&f.context, fiber_entry, 0);
  }
  std::fill(r.warp_arrived.begin(), r.warp_arrived.end(), 0u);
  for (;;) {
    bool ran = false;
    for (int j = 0; j < n; ++j) {
      const int i = reverse ? n - 1 - j : j;
      if (r.fibers[i].done || r.fibers[i].waiting) continue;
      r.current = i;
      swapcontext(&r.scheduler, &r.fibers[i].context);
      ran = true;
      if (r.error) std::rethrow_exception(r.error);
    }
    bool all_done = true;
    for (const Fiber& f : r.fibers) all_done = all_done && f.done;
    if (all_done) return;
    if (!release_barriers() && !ran) fail("deadlock: some threads wait at a barrier that others never reach");
  }
}

// A launch's dynamic shared memory, followed by an inaccessible page (a write past the end faults); unmapped, and
// the runtime's pointers to it and to the kernel cleared, when the launch ends, normally or not.
class SharedMemory {
 public:
  explicit SharedMemory(std::size_t bytes) : bytes_(bytes) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t usable = (bytes + page - 1) / page * page;
    mapped_bytes_ = usable + page;
    mapped_ = mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped_ == MAP_FAILED) fail("cannot map shared memory");
    mprotect(static_cast<char*>(mapped_) + usable, page, PROT_NONE);
    rt().shared = static_cast<unsigned char*>(mapped_) + (usable - bytes) / 16 * 16;
  }
  ~SharedMemory() {
    munmap(mapped_, mapped_bytes_);
    rt().shared = nullptr;
    rt().body = nullptr;
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  void poison() { std::memset(rt().shared, 0xFF, bytes_); }  // unwritten values read as NaN

 private:
  std::size_t bytes_, mapped_bytes_;
  void* mapped_;
};

template <typename... P> struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  std::size_t smem;

  template <typename... A> void operator()(A&&... args) const {
    Runtime& r = rt();
    const long threads = static_cast<long>(block.x) * block.y * block.z;
    if (threads < 1 || threads > kMaxThreads || block.z > 64 || grid.x < 1 || grid.y < 1 || grid.z < 1 ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) {
      r.last_error = cudaErrorInvalidConfiguration;
      return;
    }
    // Without cudaFuncSetAttribute a block has 48 KiB of shared memory, static and dynamic together; with it, the
    // dynamic part may reach the set value, and static + set value may reach the card's opt-in limit.
    const auto raised = r.smem_limit.find(reinterpret_cast<const void*>(kernel));
    const bool has_raised = raised != r.smem_limit.end();
    if (smem > (has_raised ? raised->second : kDefaultDynamicSmem)) {
      r.last_error = cudaErrorInvalidValue;
      return;
    }
    r.fibers.assign(threads, Fiber{});
    while (r.stacks.size() < static_cast<std::size_t>(threads)) r.stacks.push_back(new char[kStackBytes]);
    r.warp_slots.assign((threads + 31) / 32 * 32, 0);
    r.warp_arrived.assign((threads + 31) / 32, 0);
    r.warp_mask.assign((threads + 31) / 32, 0);
    SharedMemory shared(smem);
    r.grid_dim = grid;
    r.block_dim = block;
    r.error = nullptr;
    r.body = [&]() { kernel(static_cast<P>(args)...); };
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          r.block_idx = dim3(x, y, z);
          r.first_block = x == 0 && y == 0 && z == 0;
          if (r.first_block) r.static_shared = 0;
          shared.poison();
          run_block((x + y + z) % 2 == 1);
          if (r.first_block && (has_raised ? r.static_shared + raised->second > kMaxDynamicSmem
                                           : r.static_shared + smem > kDefaultDynamicSmem)) {
            throw std::runtime_error("cuda emulation: the launch needs " + std::to_string(r.static_shared) +
                                     " bytes of static and " + std::to_string(smem) +
                                     " bytes of dynamic shared memory, over the block's limit (a GPU refuses "
                                     "the launch: cudaErrorInvalidValue)");
          }
        }
  }
};

template <typename... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem = 0, cudaStream_t = nullptr) {
  return Launch<P...>{kernel, grid, block, smem};
}

inline void* dynamic_shared() { return rt().shared; }

}  // namespace emu

#define threadIdx (::emu::self().index)
#define blockIdx (::emu::rt().block_idx)
#define blockDim (::emu::rt().block_dim)
#define gridDim (::emu::rt().grid_dim)

inline void __syncthreads() { ::emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::sync_warp(mask); }

template <typename T> inline T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  const int lane = ::emu::rt().current % 32;
  return ::emu::shuffle(mask, value, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  const int lane = ::emu::rt().current % 32;
  const int source = lane ^ lane_mask;
  return ::emu::shuffle(mask, value, source >= ((lane / width) + 1) * width ? lane : source);
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  const int lane = ::emu::rt().current % 32;
  const int source = lane + static_cast<int>(delta);
  return ::emu::shuffle(mask, value, source >= ((lane / width) + 1) * width ? lane : source);
}

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = ::emu::rt().last_error;
  ::emu::rt().last_error = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    default: return "cudaErrorNotSupported";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 0;  // emulation
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(::emu::kMaxDynamicSmem); break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    default: return cudaErrorNotSupported;
  }
  return cudaSuccess;
}
template <typename... P> inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<std::size_t>(value) > ::emu::kMaxDynamicSmem)
    return cudaErrorInvalidValue;
  ::emu::rt().smem_limit[reinterpret_cast<const void*>(kernel)] = static_cast<std::size_t>(value);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t = nullptr) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
