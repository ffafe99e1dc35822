"""Shared pieces of the asv suite: backend availability (unavailable cases raise NotImplementedError in setup, so asv
skips them) and GPU timing with CUDA events, since asv's own timers read the host clock."""

import os
import statistics

import torch

import inv_kernels
from inv_kernels.backend import unavailable_reason

# CI sets INV_KERNELS_BENCH_QUICK=1: every benchmark still runs (so none can rot), on its smallest case only.
QUICK = os.environ.get("INV_KERNELS_BENCH_QUICK") == "1"


def cases(full: list, quick: list) -> list:
    """The parameter values to benchmark: ``quick`` under INV_KERNELS_BENCH_QUICK=1, else ``full``."""
    return quick if QUICK else full


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def require_backend(backend: str, device: str) -> torch.device:
    """The device to benchmark ``backend`` on; raises NotImplementedError (asv: skip) when it cannot run there."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA GPU")
    if backend == "triton" and dev.type == "cpu":
        raise NotImplementedError("triton runs only in its interpreter on the CPU: not a timing")
    if backend in inv_kernels.BACKENDS:
        reason = unavailable_reason(backend, dev)
        if reason is not None:
            raise NotImplementedError(reason)
    return dev


class CudaTimer:
    """Median time of ``fn`` in milliseconds over CUDA events, each repetition from a cold L2 cache."""

    def __init__(self, device: torch.device, flush_bytes: int = 256 * 2**20):
        self.device = device
        self.flush = torch.empty(flush_bytes, dtype=torch.uint8, device=device)

    def median_ms(self, fn, warmup: int = 5, repeats: int = 30) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            self.flush.zero_()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
