// Small kernels that show what the CUDA emulation (include/cuda_emu.h) does with correct code and with the mistakes
// it claims to catch; tests/cuda_emu/test_emulator.py calls them. Written as ordinary CUDA: nvcc would compile it.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(cudaError_t status) {
  if (status != cudaSuccess) throw std::runtime_error(cudaGetErrorName(status));
}

// out[b * n + t] = the sum over the block's threads of (b * n + t), by warp shuffles, then shared memory.
__global__ void block_sum_kernel(float* out) {
  __shared__ float partial[32];
  const int t = threadIdx.x + blockDim.x * threadIdx.y, n = blockDim.x * blockDim.y;
  float v = static_cast<float>(blockIdx.x * n + t);
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (t % 32 == 0) partial[t / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < (n + 31) / 32; ++w) total += partial[w];
  out[blockIdx.x * n + t] = total;
}

// Each thread writes its index to shared memory and reads its right neighbour's, with or without a barrier between.
__global__ void neighbour_kernel(float* out, bool barrier) {
  extern __shared__ float slots[];
  const int t = threadIdx.x;
  slots[t] = static_cast<float>(t);
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = slots[(t + 1) % blockDim.x];
}

// Reads dynamic shared memory that no thread wrote.
__global__ void unwritten_shared_kernel(float* out) {
  extern __shared__ float never_written[];
  out[threadIdx.x] = never_written[threadIdx.x];
}

// Lane 5 returns before the warp's shuffle.
__global__ void exited_lane_kernel(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}

// Half of the block waits at __syncthreads, the other half at a shuffle of the full warp: neither can go on.
__global__ void deadlock_kernel(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
  }
}

__global__ void dynamic_smem_kernel(float* out) {
  extern __shared__ float big[];
  big[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = big[(threadIdx.x + 1) % blockDim.x];
}

// 40 KiB of static shared memory next to the dynamic part.
__global__ void static_and_dynamic_kernel(float* out) {
  __shared__ float fixed[10 * 1024];
  extern __shared__ float extra[];
  fixed[threadIdx.x] = 1.0f;
  extra[threadIdx.x] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = fixed[(threadIdx.x + 1) % blockDim.x] + extra[threadIdx.x];
}

__global__ void __launch_bounds__(64) bounded_kernel(float* out) { out[threadIdx.x] = 1.0f; }

}  // namespace

namespace py = pybind11;

PYBIND11_MODULE(cuda_emu_selftest, m) {
  m.def("block_sum", [](int blocks, int block_x, int block_y) {
    std::vector<float> out(static_cast<size_t>(blocks) * block_x * block_y, -1.0f);
    block_sum_kernel<<<blocks, dim3(block_x, block_y)>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("neighbour", [](int blocks, int threads, bool barrier) {
    std::vector<float> out(static_cast<size_t>(blocks) * threads, -1.0f);
    neighbour_kernel<<<blocks, threads, threads * sizeof(float)>>>(out.data(), barrier);
    check(cudaGetLastError());
    return out;
  });
  m.def("unwritten_shared", [](int threads) {
    std::vector<float> out(threads, -1.0f);
    unwritten_shared_kernel<<<1, threads, threads * sizeof(float)>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("exited_lane", []() {
    std::vector<float> out(32, -1.0f);
    exited_lane_kernel<<<1, 32>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("deadlock", []() {
    std::vector<float> out(32, -1.0f);
    deadlock_kernel<<<1, 32>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  // Launches with `bytes` of dynamic shared memory, first raising the kernel's limit to `limit` when it is > 0.
  m.def("dynamic_smem", [](std::size_t bytes, int limit) {
    if (limit > 0) check(cudaFuncSetAttribute(dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
    std::vector<float> out(64, -1.0f);
    dynamic_smem_kernel<<<1, 64, bytes>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("static_and_dynamic", [](std::size_t bytes, int limit) {
    if (limit > 0)
      check(cudaFuncSetAttribute(static_and_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
    std::vector<float> out(64, -1.0f);
    static_and_dynamic_kernel<<<2, 64, bytes>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("bounded", [](int threads) {
    std::vector<float> out(threads, -1.0f);
    bounded_kernel<<<1, threads>>>(out.data());
    check(cudaGetLastError());
    return out;
  });
  m.def("launch_threads", [](int block_x, int grid_x) {
    std::vector<float> out(static_cast<size_t>(block_x) * grid_x + 1, -1.0f);
    block_sum_kernel<<<grid_x, block_x>>>(out.data());
    check(cudaGetLastError());
  });
}
