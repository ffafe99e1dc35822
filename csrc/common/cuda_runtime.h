// Declarations of csrc/common/cuda_runtime.cu, callable from plain C++ (bindings.cpp).
#pragma once

namespace inv {

int cuda_device_count();
int cuda_runtime_version();

}  // namespace inv
