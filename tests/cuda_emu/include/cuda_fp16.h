// The CUDA emulation stands in for <cuda_fp16.h> (tests/cuda_emu).
#pragma once
#include "cuda_emu.h"
