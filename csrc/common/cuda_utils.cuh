// Helpers shared by the CUDA kernels: error checks, the caller's device and stream, and storage <-> accumulation
// conversions for the device types.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/checks.h"

namespace inv {

// Raised as RuntimeError on the Python side.
inline void cuda_check(cudaError_t status, const char* op, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(op) + ": " + what + " failed: " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
  }
}

// Makes `device` current for this thread and returns the caller's stream (a torch stream handle).
inline cudaStream_t enter_device(const char* op, int device, std::uintptr_t stream) {
  cuda_check(cudaSetDevice(device), op, "cudaSetDevice");
  return reinterpret_cast<cudaStream_t>(stream);
}

inline void check_launch(const char* op) { cuda_check(cudaGetLastError(), op, "kernel launch"); }

template <typename T> struct CudaAcc { using type = float; };
template <> struct CudaAcc<double> { using type = double; };

template <typename A> __device__ __forceinline__ A cuda_load(float v) { return v; }
template <typename A> __device__ __forceinline__ A cuda_load(double v) { return v; }
template <typename A> __device__ __forceinline__ A cuda_load(__half v) { return __half2float(v); }
template <typename A> __device__ __forceinline__ A cuda_load(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T cuda_store(float v);
template <> __device__ __forceinline__ float cuda_store<float>(float v) { return v; }
template <> __device__ __forceinline__ __half cuda_store<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 cuda_store<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <typename T> __device__ __forceinline__ T cuda_store(double v) { return v; }

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Calls f(T{}) with the device storage type named by the dtype code (see common/dtype.h for the codes).
template <typename F> inline void dispatch_cuda_dtype(const std::string& op, int code, F&& f) {
  switch (code) {
    case 0: f(float{}); break;
    case 1: f(double{}); break;
    case 2: f(__half{}); break;
    case 3: f(__nv_bfloat16{}); break;
    default: fail_argument(op, "unknown dtype code " + std::to_string(code));
  }
}

}  // namespace inv
