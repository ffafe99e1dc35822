"""The kernels of benchmarks/gpu_report.py: for each op family and shape, one zero-argument callable per available
backend plus the baseline, with the bytes and FLOPs that set its floor. Inputs come from the asv suite's helpers
(benchmarks/benchmarks/), and shapes, bytes and FLOPs from its _workloads module, so the report and the suite time
the same work.

Each ``*_cases(device, quick)`` is a generator: a case's tensors are freed before the next case is built."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from benchmarks._augment import (
    BASELINE as TORCHVISION,
)
from benchmarks._augment import (
    require_fused_backend,
    run_torchvision,
    torchvision_transform,
    two_view_inputs,
)
from benchmarks._common import DTYPES, require_backend

from benchmarks import _workloads as work
from benchmarks import bench_infonce, bench_invariance_scores, bench_row_cosine, bench_stats
from inv_kernels.backend import BACKENDS
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.group_invariance import group_invariance
from inv_kernels.ops.infonce import infonce_loss, ntxent_loss
from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.ops.row_cosine import row_cosine
from inv_kernels.testing import float32_matmul_precision

REFERENCE = "reference"  # the torch eager reference: the baseline of every op but fused_augment and stats
FUSED_AUGMENT = "fused_augment (2 views, default)"
QUICK_FUSED_AUGMENT_BATCH = 4

# Per kernel: (the full run's shapes, the --quick run's). The full shapes are the GPU shapes of the asv suite.
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "row_cosine fwd+bwd": (work.ROW_COSINE_GPU, ("4096x128",)),
    "invariance_scores": (work.INVARIANCE_SCORES_GPU, ("16x32x256",)),
    "group_invariance": (work.GROUP_INVARIANCE_GPU, ("16x8x256",)),
    "infonce fwd+bwd": (work.MOCO_GPU, ("64x4096x128",)),
    "ntxent fwd+bwd": (work.NTXENT_GPU, ("256x128",)),
    "contrastive N x N logits (vs Inf-CL)": (work.CONTRASTIVE_NXN_GPU, ("2048x2048x128",)),
    FUSED_AUGMENT: (
        tuple(work.fused_augment_shape(work.FUSED_AUGMENT_GPU_BATCH, size) for size in work.FUSED_AUGMENT_OUT_SIZES),
        (work.fused_augment_shape(QUICK_FUSED_AUGMENT_BATCH, 64),),
    ),
    "stats moments": (work.STATS_GPU, ("4096x256",)),
    "stats whiten": (work.STATS_GPU, ("4096x256",)),
}


def _shapes(kernel: str, quick: bool) -> tuple[str, ...]:
    full, small = SHAPES[kernel]
    return small if quick else full


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
    kernel = "row_cosine fwd+bwd"
    backends, skipped = _backends(device)
    for shape in _shapes(kernel, quick):
        m, d = work.dims(shape)
        for dtype in _dtypes(quick):
            x, y = bench_row_cosine._inputs(shape, DTYPES[dtype], device, requires_grad=True)
            grad = torch.ones(x.shape[0], dtype=x.dtype, device=device)
            impls = {
                b: lambda b=b: torch.autograd.grad(row_cosine(x, y, backend=b, check_finite_inputs=False), (x, y), grad)
                for b in backends
            }
            yield Case(
                kernel,
                shape,
                dtype,
                work.row_cosine_bytes(m, d, _size(x.dtype), backward=True),
                work.row_cosine_flops(m, d),
                dtype,
                REFERENCE,
                impls,
                skipped,
            )


def invariance_scores_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    kernel = "invariance_scores"
    backends, skipped = _backends(device)
    for shape in _shapes(kernel, quick):
        n, k, d = work.dims(shape)
        mean, whitening = bench_invariance_scores._statistics(d, device)
        for dtype in _dtypes(quick, tf32=True):
            clean, views = bench_invariance_scores._inputs(shape, _torch_dtype(dtype), device)
            impls = {
                b: lambda b=b: invariance_scores(
                    clean, views, mean=mean, whitening=whitening, backend=b, check_finite_inputs=False
                )
                for b in backends
            }
            yield Case(
                kernel,
                shape,
                dtype,
                work.invariance_scores_bytes(n, k, d, _size(views.dtype)),
                work.invariance_scores_flops(n, k, d),
                _flops_dtype(dtype),
                REFERENCE,
                _under_precision(dtype, impls),
                skipped,
            )


def group_invariance_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    kernel = "group_invariance"
    backends, skipped = _backends(device)
    for shape in _shapes(kernel, quick):
        g, k, d = work.dims(shape)
        features, ids = bench_invariance_scores._group_inputs(shape, device)
        mean, whitening = bench_invariance_scores._statistics(d, device)
        impls = {
            b: lambda b=b: group_invariance(
                features, ids, mean=mean, whitening=whitening, backend=b, check_finite_inputs=False
            )
            for b in backends
        }
        yield Case(
            kernel,
            shape,
            "float32",
            work.group_invariance_bytes(g, k, d),
            work.group_invariance_flops(g, k, d),
            "float32",
            REFERENCE,
            impls,
            skipped,
        )


def infonce_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    kernel = "infonce fwd+bwd"
    backends, skipped = _backends(device)
    for shape in _shapes(kernel, quick):
        n, k, d = work.dims(shape)
        for dtype in _dtypes(quick, tf32=True):
            q, key, queue = bench_infonce._moco_inputs(shape, _torch_dtype(dtype), device)
            impls = {
                b: _grad(lambda b=b: infonce_loss(q, key, queue, 0.2, backend=b, check_finite_inputs=False), (q, key))
                for b in backends
            }
            yield Case(
                kernel,
                shape,
                dtype,
                work.contrastive_bytes(2 * n, k, d, _size(q.dtype)),
                work.contrastive_flops(n, k, d),
                _flops_dtype(dtype),
                REFERENCE,
                _under_precision(dtype, impls),
                skipped,
            )


def ntxent_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    kernel = "ntxent fwd+bwd"
    backends, skipped = _backends(device)
    for shape in _shapes(kernel, quick):
        n, d = work.dims(shape)
        for dtype in _dtypes(quick, tf32=True):
            z1, z2 = bench_infonce._ntxent_inputs(shape, _torch_dtype(dtype), device)
            usable, why = list(backends), dict(skipped)
            too_big = work.ntxent_reference_skip(n)
            if too_big and device.type == "cuda":
                usable.remove(REFERENCE)
                why[REFERENCE] = too_big
            impls = {
                b: _grad(lambda b=b: ntxent_loss(z1, z2, 0.2, backend=b, check_finite_inputs=False), (z1, z2))
                for b in usable
            }
            yield Case(
                kernel,
                shape,
                dtype,
                work.contrastive_bytes(2 * n, 0, d, _size(z1.dtype)),
                work.contrastive_flops(2 * n, 2 * n, d),
                _flops_dtype(dtype),
                REFERENCE,
                _under_precision(dtype, impls),
                why,
            )


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
    kernel = "contrastive N x N logits (vs Inf-CL)"
    backends, skipped = _backends(device)
    backends = [b for b in backends if b != REFERENCE]
    inf_cl, why = _inf_cl_loss()
    for shape in _shapes(kernel, quick):
        n, _, d = work.dims(shape)
        z1, z2 = bench_infonce._ntxent_inputs(f"{n // 2}x{d}", torch.float32, device)
        impls = {
            b: _grad(lambda b=b: ntxent_loss(z1, z2, 0.2, backend=b, check_finite_inputs=False), (z1, z2))
            for b in backends
        }
        case_skipped = dict(skipped)
        if inf_cl is None:
            case_skipped["inf-cl"] = why
        else:
            q, k = (torch.cat([z1, z2]).detach().clone().requires_grad_(True) for _ in range(2))
            impls["inf-cl"] = _grad(lambda: inf_cl(q, k, scale=1 / 0.2, head_dim=d).mean(), (q, k))
        # the floor counts Inf-CL's traffic: n queries and n keys, each read twice and its gradient written
        yield Case(
            kernel,
            shape,
            "float32",
            work.contrastive_bytes(2 * n, 0, d, 4),
            work.contrastive_flops(n, n, d),
            "float32",
            "inf-cl",
            impls,
            case_skipped,
        )


def fused_augment_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    backends, skipped = _backends(device, require_fused_backend)
    for shape in _shapes(FUSED_AUGMENT, quick):
        batch, side, out_size = work.fused_augment_dims(shape)
        images, params, index = two_view_inputs(batch, side, "default", device)
        for dtype in _dtypes(quick):
            out_dtype = DTYPES[dtype]
            impls = {
                b: lambda b=b: fused_augment(
                    images, params, out_size, out_dtype=out_dtype, source_index=index, backend=b
                )
                for b in backends
            }
            transform = torchvision_transform("default", out_size, out_dtype)
            impls[TORCHVISION] = lambda transform=transform: run_torchvision(transform, images, index)
            yield Case(
                FUSED_AUGMENT,
                shape,
                dtype,
                work.fused_augment_bytes(params, out_size, out_dtype),
                work.fused_augment_flops(params, out_size),
                "float32",
                TORCHVISION,
                impls,
                skipped,
            )


def stats_cases(device: torch.device, quick: bool) -> Iterator[Case]:
    """Moments and whitening (float64 inside) against the reference code's numpy on the CPU, torch eager on a GPU."""
    baseline = "numpy" if device.type == "cpu" else "torch float64"
    for shape in _shapes("stats moments", quick):
        n, d = work.dims(shape)
        features = bench_stats._features(shape, torch.float32, device)
        moments = {"ours": lambda: bench_stats.stream_moments(features).covariance()}
        if device.type == "cpu":
            array = features.numpy()
            moments[baseline] = lambda: np.cov(array, rowvar=False)
        else:
            moments[baseline] = lambda: torch.cov(features.double().T)
        yield Case(
            "stats moments",
            shape,
            "float32",
            work.stats_moments_bytes(n, d),
            work.stats_moments_flops(n, d),
            "float64",
            baseline,
            moments,
        )
        stats = bench_stats.FeatureStats.from_moments(bench_stats.stream_moments(features))
        mean, chol_precision = (t.to(device) for t in (stats.mean, stats.whitening_matrix()))
        whiten = {"ours": lambda: stats.whiten(features)}
        if device.type == "cpu":
            mean_np, chol_np = mean.numpy(), chol_precision.numpy()
            whiten[baseline] = lambda: (mean_np - array) @ chol_np
        else:
            whiten[baseline] = lambda: (mean - features.double()) @ chol_precision
        yield Case(
            "stats whiten",
            shape,
            "float32",
            work.stats_whiten_bytes(n, d),
            work.stats_whiten_flops(n, d),
            "float64",
            baseline,
            whiten,
        )


ALL = (
    row_cosine_cases,
    invariance_scores_cases,
    group_invariance_cases,
    infonce_cases,
    ntxent_cases,
    inf_cl_cases,
    fused_augment_cases,
    stats_cases,
)
