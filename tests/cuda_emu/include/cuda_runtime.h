// The CUDA emulation stands in for <cuda_runtime.h> (tests/cuda_emu).
#pragma once
#include "cuda_emu.h"
