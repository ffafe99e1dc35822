// INV_HOST_DEVICE marks a function that both the CPU kernels (a C++ compiler) and the CUDA kernels (nvcc) call.
#pragma once

#ifdef __CUDACC__
#define INV_HOST_DEVICE __host__ __device__
#else
#define INV_HOST_DEVICE
#endif
