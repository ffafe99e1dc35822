"""infonce_loss (MoCo) and ntxent_loss (SimCLR): every backend against the materialised torch reference (the
baseline). CPU timings with asv's timers plus peak memory; GPU timings as track_* values from CUDA events at the
shapes of the toolkit's goals (benchmarks/gpu_report_goals.py), with the achieved TFLOP/s beside them (forward
2 N K D, backward 4 N K D flops: the logits are recomputed; _workloads)."""

import torch
import torch.nn.functional as F

from inv_kernels.ops.infonce import infonce_loss, ntxent_loss

from ._common import DTYPES, CudaTimer, cases, require_backend
from ._workloads import MOCO_GPU, NTXENT_GPU, contrastive_flops, dims, ntxent_reference_skip

# MoCo shapes N x K x D; NT-Xent shapes N x D (2N rows)
MOCO_CPU = cases(["256x16384x128", "4096x16384x128"], ["256x16384x128"])
NTXENT_CPU = cases(["1024x128", "4096x128"], ["1024x128"])


def _moco_inputs(shape: str, dtype: torch.dtype, device: torch.device):
    n, k, d = dims(shape)
    q = F.normalize(torch.randn(n, d, device=device), dim=1).to(dtype).requires_grad_()
    key = F.normalize(torch.randn(n, d, device=device), dim=1).to(dtype).requires_grad_()
    queue = F.normalize(torch.randn(k, d, device=device), dim=1).to(dtype)
    return q, key, queue


def _ntxent_inputs(shape: str, dtype: torch.dtype, device: torch.device):
    n, d = dims(shape)
    z1 = F.normalize(torch.randn(n, d, device=device), dim=1).to(dtype).requires_grad_()
    z2 = F.normalize(torch.randn(n, d, device=device), dim=1).to(dtype).requires_grad_()
    return z1, z2


class InfoNCECPU:
    params = (["reference", "cpu"], ["float32", "bfloat16"], MOCO_CPU)
    param_names = ["backend", "dtype", "shape"]
    timeout = 300

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cpu")
        self.q, self.k, self.queue = _moco_inputs(shape, DTYPES[dtype], device)

    def _forward_backward(self, backend):
        loss = infonce_loss(self.q, self.k, self.queue, 0.2, backend=backend, check_finite_inputs=False)
        torch.autograd.grad(loss, (self.q, self.k))

    def time_forward(self, backend, dtype, shape):
        with torch.no_grad():
            infonce_loss(self.q, self.k, self.queue, 0.2, backend=backend, check_finite_inputs=False)

    def time_forward_backward(self, backend, dtype, shape):
        self._forward_backward(backend)

    def peakmem_forward_backward(self, backend, dtype, shape):
        self._forward_backward(backend)


class NTXentCPU:
    params = (["reference", "cpu"], ["float32"], NTXENT_CPU)
    param_names = ["backend", "dtype", "shape"]
    timeout = 300

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cpu")
        self.z1, self.z2 = _ntxent_inputs(shape, DTYPES[dtype], device)

    def _forward_backward(self, backend):
        loss = ntxent_loss(self.z1, self.z2, 0.2, backend=backend, check_finite_inputs=False)
        torch.autograd.grad(loss, (self.z1, self.z2))

    def time_forward_backward(self, backend, dtype, shape):
        self._forward_backward(backend)

    def peakmem_forward_backward(self, backend, dtype, shape):
        self._forward_backward(backend)


class _GPUBase:
    param_names = ["backend", "dtype", "shape"]
    timeout = 600

    def _time(self, fn):
        return self.timer.median_ms(fn)

    def _peak_extra_gib(self, fn):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(self.device) - base) / 2**30


class InfoNCEGPU(_GPUBase):
    params = (["reference", "triton", "cuda"], ["bfloat16", "float32"], list(MOCO_GPU))

    def setup(self, backend, dtype, shape):
        self.device = require_backend(backend, "cuda")
        self.q, self.k, self.queue = _moco_inputs(shape, DTYPES[dtype], self.device)
        self.backend = backend
        self.flops = contrastive_flops(*dims(shape))
        self.timer = CudaTimer(self.device)

    def _forward(self):
        with torch.no_grad():
            infonce_loss(self.q, self.k, self.queue, 0.2, backend=self.backend, check_finite_inputs=False)

    def _forward_backward(self):
        loss = infonce_loss(self.q, self.k, self.queue, 0.2, backend=self.backend, check_finite_inputs=False)
        torch.autograd.grad(loss, (self.q, self.k))

    def track_forward_ms(self, backend, dtype, shape):
        return self._time(self._forward)

    track_forward_ms.unit = "ms"

    def track_forward_backward_ms(self, backend, dtype, shape):
        return self._time(self._forward_backward)

    track_forward_backward_ms.unit = "ms"

    def track_forward_backward_tflops(self, backend, dtype, shape):
        return self.flops / (self._time(self._forward_backward) * 1e-3) / 1e12

    track_forward_backward_tflops.unit = "TFLOP/s"

    def track_peak_extra_gib(self, backend, dtype, shape):
        return self._peak_extra_gib(self._forward_backward)

    track_peak_extra_gib.unit = "GiB"


class NTXentGPU(_GPUBase):
    params = (["reference", "triton", "cuda"], ["bfloat16", "float32"], list(NTXENT_GPU))

    def setup(self, backend, dtype, shape):
        self.device = require_backend(backend, "cuda")
        n, d = dims(shape)
        too_big = ntxent_reference_skip(n)
        if backend == "reference" and too_big:
            raise NotImplementedError(too_big)
        self.z1, self.z2 = _ntxent_inputs(shape, DTYPES[dtype], self.device)
        self.backend = backend
        self.flops = contrastive_flops(2 * n, 2 * n, d)
        self.timer = CudaTimer(self.device)

    def _forward_backward(self):
        loss = ntxent_loss(self.z1, self.z2, 0.2, backend=self.backend, check_finite_inputs=False)
        torch.autograd.grad(loss, (self.z1, self.z2))

    def track_forward_backward_ms(self, backend, dtype, shape):
        return self._time(self._forward_backward)

    track_forward_backward_ms.unit = "ms"

    def track_forward_backward_tflops(self, backend, dtype, shape):
        return self.flops / (self._time(self._forward_backward) * 1e-3) / 1e12

    track_forward_backward_tflops.unit = "TFLOP/s"

    def track_peak_extra_gib(self, backend, dtype, shape):
        return self._peak_extra_gib(self._forward_backward)

    track_peak_extra_gib.unit = "GiB"
