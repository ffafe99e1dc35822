"""row_cosine: every backend against the torch reference (the baseline), CPU timings with asv's timers and GPU
timings as track_* values from CUDA events, with the achieved bandwidth beside them."""

import torch

from inv_kernels.ops.row_cosine import row_cosine

from ._common import DTYPES, CudaTimer, cases, require_backend
from ._workloads import ROW_COSINE_GPU, dims, row_cosine_bytes

SHAPES = cases(["4096x128", *ROW_COSINE_GPU], ["4096x128"])  # M x D


def _inputs(shape: str, dtype: torch.dtype, device: torch.device, requires_grad: bool):
    m, d = dims(shape)
    x = torch.randn(m, d, device=device, dtype=dtype, requires_grad=requires_grad)
    y = torch.randn(m, d, device=device, dtype=dtype, requires_grad=requires_grad)
    return x, y


class RowCosineCPU:
    params = (["reference", "cpu"], ["float32", "bfloat16"], SHAPES)
    param_names = ["backend", "dtype", "shape"]

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cpu")
        self.x, self.y = _inputs(shape, DTYPES[dtype], device, requires_grad=True)
        self.grad = torch.ones(self.x.shape[0], dtype=self.x.dtype)

    def time_forward(self, backend, dtype, shape):
        with torch.no_grad():
            row_cosine(self.x, self.y, backend=backend, check_finite_inputs=False)

    def time_forward_backward(self, backend, dtype, shape):
        out = row_cosine(self.x, self.y, backend=backend, check_finite_inputs=False)
        torch.autograd.grad(out, (self.x, self.y), self.grad)

    def peakmem_forward_backward(self, backend, dtype, shape):
        out = row_cosine(self.x, self.y, backend=backend, check_finite_inputs=False)
        torch.autograd.grad(out, (self.x, self.y), self.grad)


class RowCosineGPU:
    params = (["reference", "triton", "cuda"], ["float32", "bfloat16"], SHAPES)
    param_names = ["backend", "dtype", "shape"]

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cuda")
        self.x, self.y = _inputs(shape, DTYPES[dtype], device, requires_grad=True)
        self.grad = torch.ones(self.x.shape[0], dtype=self.x.dtype, device=device)
        self.timer = CudaTimer(device)

    def _forward(self):
        with torch.no_grad():
            row_cosine(self.x, self.y, backend=self.backend, check_finite_inputs=False)

    def _forward_backward(self):
        out = row_cosine(self.x, self.y, backend=self.backend, check_finite_inputs=False)
        torch.autograd.grad(out, (self.x, self.y), self.grad)

    def track_forward_ms(self, backend, dtype, shape):
        self.backend = backend
        return self.timer.median_ms(self._forward)

    track_forward_ms.unit = "ms"

    def track_forward_gbps(self, backend, dtype, shape):
        self.backend = backend
        bytes_moved = row_cosine_bytes(*self.x.shape, self.x.element_size())
        return bytes_moved / (self.timer.median_ms(self._forward) * 1e-3) / 1e9

    track_forward_gbps.unit = "GB/s"

    def track_forward_backward_ms(self, backend, dtype, shape):
        self.backend = backend
        return self.timer.median_ms(self._forward_backward)

    track_forward_backward_ms.unit = "ms"
