// Facts about the CUDA runtime this extension was built with, for inv_kernels/_ext.py.
#include <cuda_runtime.h>

#include "common/cuda_runtime.h"

namespace inv {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error so later calls start clean
    return 0;
  }
  return count;
}

int cuda_runtime_version() {
  int version = 0;
  cudaRuntimeGetVersion(&version);
  return version;
}

}  // namespace inv
