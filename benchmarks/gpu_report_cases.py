"""The kernels of benchmarks/gpu_report.py: for each op family and shape, one zero-argument callable per available
backend plus the baseline, with the bytes and FLOPs that set its floor. Inputs come from the asv suite's helpers
(benchmarks/benchmarks/), so the report and the suite time the same work.

Each ``*_cases(device, quick)`` is a generator: a case's tensors are freed before the next case is built."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks import bench_infonce, bench_invariance_scores, bench_row_cosine, bench_stats
from benchmarks._augment import (
    BASELINE as TORCHVISION,
    blur_flops,
    bytes_moved,
    require_fused_backend,
    run_torchvision,
    torchvision_transform,
    two_view_inputs,
)
from benchmarks._common import DTYPES, require_backend
from inv_kernels.backend import BACKENDS
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.group_invariance import group_invariance
from inv_kernels.ops.infonce import infonce_loss, ntxent_loss
from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.ops.row_cosine import row_cosine
from inv_kernels.testing import float32_matmul_precision

REFERENCE = "reference"  # the torch eager reference: the baseline of every op but fused_augment and stats


@dataclass
class Case:
    """One kernel at one shape: ``impls`` maps a backend (or the baseline) to a zero-argument call."""

    kernel: str
    shape: str
    dtype: str
    bytes: int  # the least traffic to and from memory
    flops: int  # the arithmetic; bounded by the matrix-product rate of ``flops_dtype``
    flops_dtype: str
    baseline: str
    impls: dict[str, Callable[[], object]]
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why it cannot run here


def _backends(device: torch.device, check=require_backend) -> tuple[list[str], dict[str, str]]:
    """The backends that can run on ``device`` (the triton interpreter is no timing) and why the others cannot."""
    usable, skipped = [], {}
    for backend in BACKENDS:
        try:
            check(backend, device.type)
            usable.append(backend)
        except NotImplementedError as why:
            skipped[backend] = str(why)
    return usable, skipped


def _dtypes(quick: bool, tf32: bool = False) -> list[str]:
    """The dtypes a case runs in; ``tf32`` adds a float32 row under torch.set_float32_matmul_precision("high") for
    ops whose products follow it (ours and the torch baseline alike)."""
    if quick:
        return ["float32"]
    return ["float32", "tf32", "bfloat16"] if tf32 else ["float32", "bfloat16"]


def _torch_dtype(name: str) -> torch.dtype:
    return torch.float32 if name == "tf32" else DTYPES[name]


def _under_precision(name: str, impls: dict[str, Callable[[], object]]) -> dict[str, Callable[[], object]]:
    """``impls`` unchanged, or for "tf32" each call wrapped in torch's "high" float32 matmul precision."""
    if name != "tf32":
        return impls

    def wrap(call):
        def run():
            with float32_matmul_precision("high"):
                return call()

        return run

    return {backend: wrap(call) for backend, call in impls.items()}


def _flops_dtype(name: str) -> str:
    """The product rate that bounds a case: float32's is measured with TF32 allowed, so it bounds "tf32" too."""
    return "float32" if name == "tf32" else name


def _size(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _grad(loss, inputs):
    return lambda: torch.autograd.grad(loss(), inputs)


def row_cosine_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device)
    for shape in ["4096x128"] if quick else ["16384x512", "256x65536"]:
        for dtype in _dtypes(quick):
            x, y = bench_row_cosine._inputs(shape, DTYPES[dtype], device, requires_grad=True)
            grad = torch.ones(x.shape[0], dtype=x.dtype, device=device)
            impls = {b: lambda b=b: torch.autograd.grad(row_cosine(x, y, backend=b, check_finite_inputs=False),
                                                        (x, y), grad) for b in backends}  # fmt: skip
            # forward reads x, y; backward reads them again and writes both gradients
            yield Case("row_cosine fwd+bwd", shape, dtype, 6 * x.numel() * _size(x.dtype), 16 * x.numel(), dtype,
                       REFERENCE, impls, skipped)  # fmt: skip


def invariance_scores_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device)
    for shape in ["16x32x256"] if quick else ["1000x256x2048"]:
        n, k, d = bench_invariance_scores._shape(shape)
        mean, whitening = bench_invariance_scores._statistics(d, device)
        for dtype in _dtypes(quick, tf32=True):
            clean, views = bench_invariance_scores._inputs(shape, _torch_dtype(dtype), device)
            impls = {b: lambda b=b: invariance_scores(clean, views, mean=mean, whitening=whitening, backend=b,
                                                      check_finite_inputs=False) for b in backends}  # fmt: skip
            traffic = (n * k + n) * d * _size(views.dtype) + d * d * 4
            yield Case("invariance_scores", shape, dtype, traffic, 2 * n * (k + 1) * d * d, _flops_dtype(dtype),
                       REFERENCE, _under_precision(dtype, impls), skipped)  # fmt: skip


def group_invariance_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device)
    for shape in ["16x8x256"] if quick else ["1000x72x2048", "3000x8x2048"]:
        g, k, d = bench_invariance_scores._shape(shape)
        features, ids = bench_invariance_scores._group_inputs(shape, device)
        mean, whitening = bench_invariance_scores._statistics(d, device)
        impls = {b: lambda b=b: group_invariance(features, ids, mean=mean, whitening=whitening, backend=b,
                                                 check_finite_inputs=False) for b in backends}  # fmt: skip
        flops = 2 * g * k * d * d + 2 * g * k * k * d  # whitening, then each group's k x k products
        yield Case("group_invariance", shape, "float32", (g * k + d) * d * 4, flops, "float32", REFERENCE, impls,
                   skipped)


def infonce_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device)
    for shape in ["64x4096x128"] if quick else ["256x65536x128", "4096x65536x128"]:
        n, k, d = (int(v) for v in shape.split("x"))
        for dtype in _dtypes(quick, tf32=True):
            q, key, queue = bench_infonce._moco_inputs(shape, _torch_dtype(dtype), device)
            impls = {b: _grad(lambda b=b: infonce_loss(q, key, queue, 0.2, backend=b, check_finite_inputs=False),
                              (q, key)) for b in backends}  # fmt: skip
            # forward 2 N K D flops; backward 4 N K D (the logits are recomputed); q, k, queue read twice, grads written
            yield Case("infonce fwd+bwd", shape, dtype, (6 * n + 2 * k) * d * _size(q.dtype), 6 * n * k * d,
                       _flops_dtype(dtype), REFERENCE, _under_precision(dtype, impls), skipped)  # fmt: skip


def ntxent_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device)
    for shape in ["256x128"] if quick else ["4096x128", "32768x128"]:
        n, d = (int(v) for v in shape.split("x"))
        for dtype in _dtypes(quick, tf32=True):
            z1, z2 = bench_infonce._ntxent_inputs(shape, _torch_dtype(dtype), device)
            usable, why = list(backends), dict(skipped)
            if n > 16384 and device.type == "cuda":
                usable.remove(REFERENCE)  # its 2N x 2N logits and their gradient do not fit an 80 GB card
                why[REFERENCE] = "the materialised 2N x 2N reference does not fit at this size"
            impls = {b: _grad(lambda b=b: ntxent_loss(z1, z2, 0.2, backend=b, check_finite_inputs=False), (z1, z2))
                     for b in usable}  # fmt: skip
            yield Case("ntxent fwd+bwd", shape, dtype, 6 * n * d * _size(z1.dtype), 6 * (2 * n) ** 2 * d,
                       _flops_dtype(dtype), REFERENCE, _under_precision(dtype, impls), why)  # fmt: skip


def _inf_cl_loss():
    """Inf-CL's one-direction tiled contrastive loss (``pip install inf-cl``), or the reason it cannot run."""
    try:
        from inf_cl import cal_flash_loss
    except ImportError as error:
        return None, f"Inf-CL is not installed ({error}); pip install --no-deps inf_cl-1.2.1-py3-none-any.whl"
    return cal_flash_loss, None


def inf_cl_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    """Inf-CL against our NT-Xent on the same logits: its one-direction loss over N x N logits (N queries against
    N keys, gradients to both) and our NT-Xent at N / 2 pairs (2 * (N / 2) rows against as many columns, gradients to
    both views) fill the same N x N matrix; both are tiled, fp32 accumulation. GPU only (Inf-CL's kernels are Triton
    kernels for CUDA)."""
    if device.type != "cuda":
        return
    backends, skipped = _backends(device)
    backends = [b for b in backends if b != REFERENCE]
    inf_cl, why = _inf_cl_loss()
    for n in [2048] if quick else [32768]:
        d = 128
        z1, z2 = bench_infonce._ntxent_inputs(f"{n // 2}x{d}", torch.float32, device)
        impls = {b: _grad(lambda b=b: ntxent_loss(z1, z2, 0.2, backend=b, check_finite_inputs=False), (z1, z2))
                 for b in backends}  # fmt: skip
        case_skipped = dict(skipped)
        if inf_cl is None:
            case_skipped["inf-cl"] = why
        else:
            q, k = (torch.cat([z1, z2]).detach().clone().requires_grad_(True) for _ in range(2))
            impls["inf-cl"] = _grad(lambda: inf_cl(q, k, scale=1 / 0.2, head_dim=d).mean(), (q, k))
        yield Case("contrastive N x N logits (vs Inf-CL)", f"{n}x{n}x{d}", "float32", 6 * n * d * 4, 6 * n * n * d,
                   "float32", "inf-cl", impls, case_skipped)  # fmt: skip


def fused_augment_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device, require_fused_backend)
    batch = 4 if quick else 256
    for out_size in [64] if quick else [64, 224]:
        images, params, index = two_view_inputs(batch, 256, "default", device)
        for dtype in _dtypes(quick):
            out_dtype = DTYPES[dtype]
            impls = {b: lambda b=b: fused_augment(images, params, out_size, out_dtype=out_dtype, source_index=index,
                                                  backend=b) for b in backends}  # fmt: skip
            transform = torchvision_transform("default", out_size, out_dtype)
            impls[TORCHVISION] = lambda transform=transform: run_torchvision(transform, images, index)
            yield Case("fused_augment (2 views, default)", f"{batch}x256x256->{out_size}", dtype,
                       bytes_moved(params, out_size, out_dtype), blur_flops(params, out_size), "float32", TORCHVISION,
                       impls, skipped)  # fmt: skip


def stats_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    """Moments and whitening (float64 inside) against the reference code's numpy on the CPU, torch eager on a GPU."""
    baseline = "numpy" if device.type == "cpu" else "torch float64"
    for shape in ["4096x256"] if quick else ["200000x2048"]:
        n, d = (int(v) for v in shape.split("x"))
        features = bench_stats._features(shape, torch.float32, device)
        moments = {"ours": lambda: bench_stats.stream_moments(features).covariance()}
        if device.type == "cpu":
            array = features.numpy()
            moments[baseline] = lambda: np.cov(array, rowvar=False)
        else:
            moments[baseline] = lambda: torch.cov(features.double().T)
        yield Case("stats moments", shape, "float32", n * d * 4, 2 * n * d * d, "float64", baseline, moments)
        stats = bench_stats.FeatureStats.from_moments(bench_stats.stream_moments(features))
        mean, chol_precision = (t.to(device) for t in (stats.mean, stats.whitening_matrix()))
        whiten = {"ours": lambda: stats.whiten(features)}
        if device.type == "cpu":
            mean_np, chol_np = mean.numpy(), chol_precision.numpy()
            whiten[baseline] = lambda: (mean_np - array) @ chol_np
        else:
            whiten[baseline] = lambda: (mean - features.double()) @ chol_precision
        yield Case("stats whiten", shape, "float32", n * d * (4 + 8), n * d * d, "float64", baseline, whiten)


ALL = (row_cosine_cases, invariance_scores_cases, group_invariance_cases, infonce_cases, ntxent_cases, inf_cl_cases,
       fused_augment_cases, stats_cases)
