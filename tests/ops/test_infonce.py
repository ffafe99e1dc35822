"""infonce_loss (MoCo) and ntxent_loss (SimCLR) on every available backend: losses and every gradient against the
torch reference and an independent float64 numpy computation, awkward shapes, extreme temperatures, zero rows,
properties, registration (opcheck, gradcheck, torch.compile, autocast), error paths, the key queue and a 2-process
gloo run of the distributed gather."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _op_backends import ALL_BACKENDS, BACKENDS, COMPILED, DEVICE
from _op_backends import skip_unavailable as _skip_unavailable
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from torch import Tensor

from inv_kernels.distributed import gather_with_grad
from inv_kernels.ops.contrastive_modules import InfoNCELoss, KeyQueue, NTXentLoss
from inv_kernels.ops.infonce import (
    INFONCE_BWD_OPS,
    INFONCE_FWD_OPS,
    NTXENT_BWD_OPS,
    NTXENT_FWD_OPS,
    infonce_loss,
    infonce_loss_ref,
    ntxent_loss,
    ntxent_loss_ref,
)
from inv_kernels.testing import assert_close, assert_within_torch_error, float32_matmul_precision, to_float64

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (N, K, D): N = 1, N not a multiple of any tile, K = 0 and 1, D in {1, 3, 64, 127, 128, 256}
MOCO_SHAPES = [(1, 1, 1), (1, 0, 3), (5, 1, 64), (37, 130, 127), (3, 17, 128), (70, 67, 256)]
NTXENT_SHAPES = [(1, 1), (1, 3), (5, 64), (37, 127), (20, 128), (33, 256)]


# ----------------------------------------------------------------------------------------------------------------
# independent float64 oracles (numpy / scipy, materialised)
# ----------------------------------------------------------------------------------------------------------------
def numpy_infonce(q, k, queue, t, g):
    """Per-row losses and the gradients of sum(g * loss) for q and k; queue (K, D), K may be 0."""
    q, k, queue, g = (np.asarray(a, dtype=np.float64) for a in (q, k, queue, g))
    cand = np.concatenate([k[:, None, :], np.broadcast_to(queue[None], (q.shape[0],) + queue.shape)], axis=1)
    logits = np.einsum("nd,nkd->nk", q, cand) / t  # (N, 1 + K)
    lse = logsumexp(logits, axis=1)
    loss = lse - logits[:, 0]
    p = np.exp(logits - lse[:, None])
    dq = g[:, None] / t * (np.einsum("nk,nkd->nd", p, cand) - k)
    dk = g[:, None] / t * (p[:, :1] - 1.0) * q
    correct = logits[:, 0] >= (logits[:, 1:].max(axis=1) if queue.shape[0] else -np.inf)
    return loss, dq, dk, correct


def numpy_ntxent(z1, z2, t, g):
    """Per-row losses (2N,) and the gradients of sum(g * loss) for z1 and z2."""
    z = np.concatenate([np.asarray(z1, np.float64), np.asarray(z2, np.float64)])
    g = np.asarray(g, np.float64)
    m = z.shape[0]
    n = m // 2
    logits = z @ z.T / t
    np.fill_diagonal(logits, -np.inf)
    pos = (np.arange(m) + n) % m
    lse = logsumexp(logits, axis=1)
    loss = lse - logits[np.arange(m), pos]
    p = np.exp(logits - lse[:, None])  # (2N, 2N), zero on the diagonal
    target = np.zeros_like(p)
    target[np.arange(m), pos] = 1.0
    dlogits = g[:, None] * (p - target) / t
    dz = dlogits @ z + dlogits.T @ z
    others = logits.copy()
    others[np.arange(m), pos] = -np.inf
    correct = logits[np.arange(m), pos] >= others.max(axis=1)
    return loss, dz[:n], dz[n:], correct


def _randn(shape, dtype, requires_grad=False):
    return torch.randn(shape, device=DEVICE, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)


def _moco_inputs(n, k, d, dtype, normal=True):
    """q, k correlated (the positive matters); unit rows as MoCo feeds them."""
    q = torch.randn(n, d, device=DEVICE, dtype=torch.float64)
    key = q + 0.7 * torch.randn(n, d, device=DEVICE, dtype=torch.float64)
    queue = torch.randn(k, d, device=DEVICE, dtype=torch.float64)
    if normal:
        q, key, queue = F.normalize(q, dim=1), F.normalize(key, dim=1), F.normalize(queue, dim=1)
    return q.to(dtype).requires_grad_(), key.to(dtype).requires_grad_(), queue.to(dtype)


def _ntxent_inputs(n, d, dtype, normal=True):
    z1 = torch.randn(n, d, device=DEVICE, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(n, d, device=DEVICE, dtype=torch.float64)
    if normal:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return z1.to(dtype).requires_grad_(), z2.to(dtype).requires_grad_()


def _low_precision_atol(dtype):
    return 1e-2 if dtype == torch.float16 else 5e-2


# ----------------------------------------------------------------------------------------------------------------
# values and gradients
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape", MOCO_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_infonce_values_and_gradients(backend, dtype, shape):
    _skip_unavailable(backend)
    n, kk, d = shape
    t = 0.2
    q, k, queue = _moco_inputs(n, kk, d, dtype)
    rows = infonce_loss(q, k, queue, t, reduction="none", backend=backend)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert rows.shape == (n,) and rows.dtype == acc
    g = torch.rand(n, device=DEVICE, dtype=torch.float64).to(acc) + 0.5
    gq, gk = torch.autograd.grad(rows, (q, k), g)
    assert gq.dtype == dtype and gk.dtype == dtype
    loss64, dq64, dk64, _ = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), t, to_float64(g))
    if dtype in (torch.float32, torch.float64):
        size = kk + 1
        assert_close(rows, loss64, reduction_size=size, name=f"{backend} loss vs float64")
        expected = infonce_loss_ref(q, k, queue, t, reduction="none")[0]
        assert_close(rows, expected, reduction_size=size, name=f"{backend} loss vs ref")
        scale = 1.0 / t  # |dq| terms are O(g / T)
        atol = (1e-5 if dtype == torch.float32 else 1e-10) * scale
        assert_close(gq, dq64, atol=atol, reduction_size=size, name=f"{backend} dq")
        assert_close(gk, dk64, atol=atol, reduction_size=size, name=f"{backend} dk")
    else:
        qt, kt = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
        torch_rows, _ = infonce_loss_ref(qt, kt, queue, t, reduction="none")
        tq, tk = torch.autograd.grad(torch_rows, (qt, kt), g)
        atol = _low_precision_atol(dtype)
        assert_within_torch_error(rows, torch_rows, loss64, atol=atol, name=f"{backend} loss {dtype}")
        assert_within_torch_error(gq, tq, dq64, atol=atol / t, name=f"{backend} dq {dtype}")
        assert_within_torch_error(gk, tk, dk64, atol=atol / t, name=f"{backend} dk {dtype}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape", NTXENT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ntxent_values_and_gradients(backend, dtype, shape):
    _skip_unavailable(backend)
    n, d = shape
    t = 0.5
    z1, z2 = _ntxent_inputs(n, d, dtype)
    rows = ntxent_loss(z1, z2, t, reduction="none", backend=backend)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert rows.shape == (2 * n,) and rows.dtype == acc
    g = torch.rand(2 * n, device=DEVICE, dtype=torch.float64).to(acc) + 0.5
    g1, g2 = torch.autograd.grad(rows, (z1, z2), g)
    loss64, d1, d2, _ = numpy_ntxent(to_float64(z1), to_float64(z2), t, to_float64(g))
    if dtype in (torch.float32, torch.float64):
        size = 2 * n
        assert_close(rows, loss64, reduction_size=size, name=f"{backend} loss vs float64")
        expected = ntxent_loss_ref(z1, z2, t, reduction="none")[0]
        assert_close(rows, expected, reduction_size=size, name=f"{backend} loss vs ref")
        atol = (1e-5 if dtype == torch.float32 else 1e-10) / t
        assert_close(g1, d1, atol=atol, reduction_size=size, name=f"{backend} dz1")
        assert_close(g2, d2, atol=atol, reduction_size=size, name=f"{backend} dz2")
    else:
        a1, a2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
        torch_rows, _ = ntxent_loss_ref(a1, a2, t, reduction="none")
        t1, t2 = torch.autograd.grad(torch_rows, (a1, a2), g)
        atol = _low_precision_atol(dtype)
        assert_within_torch_error(rows, torch_rows, loss64, atol=atol, name=f"{backend} loss {dtype}")
        assert_within_torch_error(g1, t1, d1, atol=atol / t, name=f"{backend} dz1 {dtype}")
        assert_within_torch_error(g2, t2, d2, atol=atol / t, name=f"{backend} dz2 {dtype}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_float32_under_torch_high_matmul_precision(backend):
    """Under torch.set_float32_matmul_precision("high") the Triton kernels may multiply in TF32 (10-bit mantissas):
    the loss and gradients stay within TF32's error of float64 (the other backends are unaffected)."""
    _skip_unavailable(backend)
    q, k, queue = _moco_inputs(37, 130, 128, torch.float32)
    with float32_matmul_precision("high"):
        rows = infonce_loss(q, k, queue, 0.2, reduction="none", backend=backend)
        gq, gk = torch.autograd.grad(rows.sum(), (q, k))
    loss64, dq64, dk64, _ = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), 0.2, np.ones(37))
    tf32 = 2.0**-10 * 5.0  # unit rows: |logit| <= 1 / T = 5, each carrying a TF32 rounding
    assert np.abs(rows.detach().double().cpu().numpy() - loss64).max() < 4 * tf32
    assert np.abs(gq.double().cpu().numpy() - dq64).max() < 4 * tf32 * 5.0
    assert np.abs(gk.double().cpu().numpy() - dk64).max() < 4 * tf32 * 5.0


# Rows longer than the Triton kernels' single tile (4096 bytes), whose CUDA backward needs more than the default
# 48 KiB of shared memory once its static tiles are counted: 1300 float32 (41.6 KiB dynamic + 10.4 KiB static) and
# 600 float64 (38.4 + 20.7 KiB).
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype,d", [(torch.float32, 1300), (torch.float64, 600)], ids=["float32-1300", "float64-600"])
def test_long_rows(backend, dtype, d):
    _skip_unavailable(backend)
    q, k, queue = _moco_inputs(6, 9, d, dtype)
    z1, z2 = _ntxent_inputs(5, d, dtype)
    if backend == "triton":
        with pytest.raises(ValueError, match="single-tile row"):
            infonce_loss(q, k, queue, 0.2, backend=backend)
        return
    t = 0.2
    rows = infonce_loss(q, k, queue, t, reduction="none", backend=backend)
    g = torch.rand(6, device=DEVICE, dtype=rows.dtype) + 0.5
    gq, gk = torch.autograd.grad(rows, (q, k), g)
    loss64, dq64, dk64, _ = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), t, to_float64(g))
    atol = (1e-5 if dtype == torch.float32 else 1e-10) / t
    assert_close(rows, loss64, reduction_size=d, name=f"{backend} loss")
    assert_close(gq, dq64, atol=atol, reduction_size=d, name=f"{backend} dq")
    assert_close(gk, dk64, atol=atol, reduction_size=d, name=f"{backend} dk")
    rows = ntxent_loss(z1, z2, t, reduction="none", backend=backend)
    g = torch.rand(10, device=DEVICE, dtype=rows.dtype) + 0.5
    g1, g2 = torch.autograd.grad(rows, (z1, z2), g)
    loss64, d1, d2, _ = numpy_ntxent(to_float64(z1), to_float64(z2), t, to_float64(g))
    assert_close(rows, loss64, reduction_size=d, name=f"{backend} ntxent loss")
    assert_close(g1, d1, atol=atol, reduction_size=d, name=f"{backend} dz1")
    assert_close(g2, d2, atol=atol, reduction_size=d, name=f"{backend} dz2")


def _fp32_condition(x: Tensor, c: Tensor, temperature: float) -> float:
    """The rounding scale of an fp32 InfoNCE at this temperature: a logit s carries |s| eps of error, so
    p = exp(s - lse) carries a relative |s| eps, and a gradient (1/T) sum_j p_j c_j an absolute
    |s|max |c|max eps / T."""
    smax = float(np.abs(to_float64(x) @ to_float64(c).T).max()) / temperature
    return (1.0 + smax) * (1.0 + float(np.abs(to_float64(c)).max())) / temperature


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("temperature", [0.01, 1.0])
@pytest.mark.parametrize("normal", [True, False], ids=["unit", "raw"])
def test_extreme_temperatures(backend, temperature, normal):
    """Logits up to 1/T = 100 (unit rows) or |q||c|/T in the thousands (raw rows): no overflow, and the error is
    within twice that of plain PyTorch in float32 plus fp32's own rounding scale (_fp32_condition)."""
    _skip_unavailable(backend)
    q, k, queue = _moco_inputs(19, 45, 64, torch.float32, normal=normal)
    rows = infonce_loss(q, k, queue, temperature, reduction="none", backend=backend)
    gq, gk = torch.autograd.grad(rows.sum(), (q, k))
    qt, kt = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    torch_rows, _ = infonce_loss_ref(qt, kt, queue, temperature, reduction="none")
    tq, tk = torch.autograd.grad(torch_rows.sum(), (qt, kt))
    loss64, dq64, dk64, _ = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), temperature, np.ones(19))
    assert torch.isfinite(rows).all() and torch.isfinite(gq).all() and torch.isfinite(gk).all()
    cond = _fp32_condition(q, torch.cat([k.detach(), queue]), temperature)
    assert_close(rows, loss64, atol=1e-6 * cond * temperature, rtol=1e-5, name="loss")
    for got, torch_got, exact, name in ((gq, tq, dq64, "dq"), (gk, tk, dk64, "dk")):
        assert_within_torch_error(got, torch_got, exact, atol=1e-6 * cond, name=f"{backend} {name} T={temperature}")
    z1, z2 = _ntxent_inputs(11, 64, torch.float32, normal=normal)
    rows = ntxent_loss(z1, z2, temperature, reduction="none", backend=backend)
    g1, g2 = torch.autograd.grad(rows.sum(), (z1, z2))
    a1, a2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    torch_rows, _ = ntxent_loss_ref(a1, a2, temperature, reduction="none")
    t1, t2 = torch.autograd.grad(torch_rows.sum(), (a1, a2))
    loss64, d1, d2, _ = numpy_ntxent(to_float64(z1), to_float64(z2), temperature, np.ones(22))
    assert torch.isfinite(rows).all() and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    z = torch.cat([z1, z2]).detach()
    cond = _fp32_condition(z, z, temperature)
    assert_close(rows, loss64, atol=1e-6 * cond * temperature, rtol=1e-5, name="ntxent loss")
    for got, torch_got, exact, name in ((g1, t1, d1, "dz1"), (g2, t2, d2, "dz2")):
        assert_within_torch_error(
            got, torch_got, exact, atol=1e-6 * cond, name=f"{backend} ntxent {name} T={temperature}"
        )


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_zero_rows_are_defined(backend):
    """A zero row (normalised to zero by F.normalize) has all logits 0: loss log(#candidates), finite gradients."""
    _skip_unavailable(backend)
    n, kk, d = 6, 40, 16
    q, k, queue = _moco_inputs(n, kk, d, torch.float32, normal=False)
    with torch.no_grad():
        q[1] = 0.0
        k[2] = 0.0
        queue[5] = 0.0
    rows = infonce_loss(q, k, queue, 0.1, normalize=True, reduction="none", backend=backend)
    gq, gk = torch.autograd.grad(rows.sum(), (q, k))
    assert torch.isfinite(rows).all() and torch.isfinite(gq).all() and torch.isfinite(gk).all()
    assert_close(rows[1], torch.tensor(np.log(1 + kk)), atol=1e-5, rtol=1e-6, name="zero query row")
    expected = infonce_loss_ref(
        F.normalize(q.detach(), dim=1), F.normalize(k.detach(), dim=1), F.normalize(queue, dim=1), 0.1, reduction="none"
    )[0]
    assert_close(rows, expected, atol=1e-5, name="zero rows vs reference")
    z1, z2 = _ntxent_inputs(5, d, torch.float32, normal=False)
    with torch.no_grad():
        z1[0] = 0.0
    rows = ntxent_loss(z1, z2, 0.1, normalize=True, reduction="none", backend=backend)
    g1, g2 = torch.autograd.grad(rows.sum(), (z1, z2))
    assert torch.isfinite(rows).all() and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    assert_close(rows[0], torch.tensor(np.log(2 * 5 - 1)), atol=1e-5, rtol=1e-6, name="zero z row")
    # Without normalize a zero row is just as defined: its logits are 0.
    rows = infonce_loss(torch.zeros(3, d), torch.zeros(3, d), queue.detach(), 0.2, reduction="none", backend=backend)
    assert_close(rows, torch.full((3,), float(np.log(1 + kk))), atol=1e-5, rtol=1e-6, name="all-zero")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_accuracy_mean_reduction_and_module(backend):
    _skip_unavailable(backend)
    q, k, queue = _moco_inputs(23, 50, 32, torch.float32)
    loss, accuracy = infonce_loss(q, k, queue, 0.2, return_accuracy=True, backend=backend)
    _, _, _, correct = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), 0.2, np.ones(23))
    assert loss.dim() == 0 and not accuracy.requires_grad
    assert_close(accuracy, torch.tensor(correct.mean()), atol=1e-7, name="accuracy")
    ref_loss, ref_acc = infonce_loss_ref(q.detach(), k.detach(), queue, 0.2)
    assert_close(loss, ref_loss, reduction_size=51, name="mean loss vs infonce_loss_ref")
    assert_close(accuracy, ref_acc, atol=1e-7, name="accuracy vs infonce_loss_ref")
    total = infonce_loss(q, k, queue, 0.2, reduction="sum", backend=backend)
    assert_close(total, loss * 23, atol=1e-4, name="sum")
    module = InfoNCELoss(0.2, return_accuracy=True, backend=backend)
    m_loss, m_acc = module(q, k, queue)
    assert_close(m_loss, loss, atol=1e-6, name="module")
    assert_close(m_acc, accuracy, atol=0, rtol=0, name="module accuracy")
    z1, z2 = _ntxent_inputs(9, 32, torch.float32)
    loss, accuracy = ntxent_loss(z1, z2, 0.3, return_accuracy=True, backend=backend)
    _, _, _, correct = numpy_ntxent(to_float64(z1), to_float64(z2), 0.3, np.ones(18))
    assert_close(accuracy, torch.tensor(correct.mean()), atol=1e-7, name="ntxent accuracy")
    ref_loss, ref_acc = ntxent_loss_ref(z1.detach(), z2.detach(), 0.3)
    assert_close(loss, ref_loss, reduction_size=18, name="mean loss vs ntxent_loss_ref")
    assert_close(accuracy, ref_acc, atol=1e-7, name="accuracy vs ntxent_loss_ref")
    m_loss = NTXentLoss(0.3, backend=backend)(z1, z2)
    assert_close(m_loss, loss, atol=1e-6, name="ntxent module")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_gradient_to_k_only_when_required_and_queue_detached(backend):
    _skip_unavailable(backend)
    q, k, queue = _moco_inputs(7, 20, 16, torch.float32)
    k = k.detach()
    queue.requires_grad_(True)
    loss = infonce_loss(q, k, queue, 0.2, backend=backend)
    loss.backward()
    assert q.grad is not None and k.grad is None and queue.grad is None


@pytest.mark.triton
@pytest.mark.parametrize("splits", [2, 3])
def test_triton_split_k(monkeypatch, splits):
    """The queue split across programs (flash-decoding's split-K, used on a GPU for small batches) gives the same
    losses and gradients as one pass; NT-Xent too."""
    if "triton" not in BACKENDS:
        pytest.skip("triton unavailable")
    import inv_kernels.ops._infonce_triton as module

    q, k, queue = _moco_inputs(9, 600, 20, torch.float32)
    z1, z2 = _ntxent_inputs(300, 20, torch.float32)
    g = torch.rand(9, device=DEVICE) + 0.5
    gz = torch.rand(600, device=DEVICE) + 0.5

    def run():
        rows = infonce_loss(q, k, queue, 0.2, reduction="none", backend="triton")
        zrows = ntxent_loss(z1, z2, 0.2, reduction="none", backend="triton")
        return (rows, zrows, *torch.autograd.grad(rows, (q, k), g), *torch.autograd.grad(zrows, (z1, z2), gz))

    monkeypatch.setattr(module, "TRITON_SPLITS_OVERRIDE", 1)
    base = run()
    monkeypatch.setattr(module, "TRITON_SPLITS_OVERRIDE", splits)
    split = run()
    for got, want in zip(split, base):
        assert_close(got, want, atol=1e-5, rtol=1e-5, name=f"{splits} splits")
    loss64, dq64, dk64, _ = numpy_infonce(to_float64(q), to_float64(k), to_float64(queue), 0.2, to_float64(g))
    assert_close(split[0], loss64, reduction_size=601, name="split loss vs float64")
    assert_close(split[2], dq64, atol=5e-5, reduction_size=601, name="split dq vs float64")
    assert_close(split[3], dk64, atol=5e-5, reduction_size=601, name="split dk vs float64")


# ----------------------------------------------------------------------------------------------------------------
# registration: gradcheck, opcheck, torch.compile, autocast
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_gradcheck_float64(backend):
    q, k, queue = _moco_inputs(5, 9, 6, torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: infonce_loss(a, b, queue, 0.3, reduction="none", backend=backend), (q, k)
    )
    z1, z2 = _ntxent_inputs(4, 7, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: ntxent_loss(a, b, 0.3, reduction="none", backend=backend), (z1, z2))
    assert torch.autograd.gradcheck(
        lambda a, b: ntxent_loss(a, b, 0.3, normalize=True, backend=backend), (z1 * 3, z2 * 0.5)
    )


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED])
def test_opcheck(backend):
    for dtype in (torch.float32, torch.float64):
        q, k, queue = _moco_inputs(6, 19, 8, dtype)
        torch.library.opcheck(INFONCE_FWD_OPS[backend], (q, k, queue, 0.2))
        loss, lse, _ = INFONCE_FWD_OPS[backend](q.detach(), k.detach(), queue, 0.2)
        grad = torch.rand_like(loss)
        torch.library.opcheck(INFONCE_BWD_OPS[backend], (grad, q.detach(), k.detach(), queue, lse, 0.2))
        z = _randn((10, 8), dtype, requires_grad=True)
        torch.library.opcheck(NTXENT_FWD_OPS[backend], (z, 0.2))
        loss, lse, _ = NTXENT_FWD_OPS[backend](z.detach(), 0.2)
        torch.library.opcheck(NTXENT_BWD_OPS[backend], (torch.rand_like(loss), z.detach(), lse, 0.2))


def test_meta_device_shapes_through_fake_kernels():
    q = torch.empty(5, 8, device="meta")
    loss, lse, correct = INFONCE_FWD_OPS["cpu"](q, q, torch.empty(11, 8, device="meta"), 0.2)
    assert loss.shape == lse.shape == correct.shape == (5,) and loss.dtype == torch.float32
    loss, lse, correct = NTXENT_FWD_OPS["cpu"](torch.empty(6, 8, device="meta", dtype=torch.bfloat16), 0.2)
    assert loss.shape == (6,) and loss.dtype == torch.float32


@pytest.mark.slow
def test_torch_compile_fullgraph():
    backend = "cuda" if "cuda" in BACKENDS else "cpu"
    if backend not in BACKENDS:
        pytest.skip("no compiled backend available")
    torch._dynamo.reset()

    def loss_fn(q, k, queue, z1, z2):
        a = infonce_loss(q, k, queue, 0.2, normalize=True, backend=backend, check_finite_inputs=False)
        b = ntxent_loss(z1, z2, 0.5, normalize=True, backend=backend, check_finite_inputs=False)
        return a + 0.5 * b

    compiled = torch.compile(loss_fn, fullgraph=True)
    q, k, queue = _moco_inputs(16, 40, 24, torch.float32, normal=False)
    z1, z2 = _ntxent_inputs(12, 24, torch.float32, normal=False)
    loss = compiled(q, k, queue, z1, z2)
    grads = torch.autograd.grad(loss, (q, k, z1, z2))
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, z1, z2)]
    eager = loss_fn(leaves[0], leaves[1], queue, leaves[2], leaves[3])
    eager_grads = torch.autograd.grad(eager, leaves)
    assert_close(loss, eager, name="compiled loss")
    for got, want in zip(grads, eager_grads):
        assert_close(got, want, name="compiled grad")


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in COMPILED if b != "triton"])
def test_autocast(backend):
    """Under autocast the projections come out in bfloat16; the fused loss takes them and returns float32."""
    layer = torch.nn.Linear(32, 16).to(DEVICE)
    x1, x2 = torch.randn(10, 32, device=DEVICE), torch.randn(10, 32, device=DEVICE)
    queue = F.normalize(torch.randn(30, 16, device=DEVICE), dim=1)  # float32 buffer: cast to q's dtype inside
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        q, k = layer(x1), layer(x2)
        assert q.dtype == torch.bfloat16
        loss = infonce_loss(q, k, queue, 0.2, normalize=True, backend=backend)
        loss2 = ntxent_loss(q, k, 0.2, normalize=True, backend=backend)
    assert loss.dtype == torch.float32 and loss2.dtype == torch.float32
    (loss + loss2).backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


# ----------------------------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 9),
    kk=st.integers(1, 40),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
    temperature=st.floats(0.05, 2.0),
)
def test_queue_permutation_invariance(n, kk, d, seed, temperature):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    q = torch.randn(n, d, generator=gen, device=DEVICE, dtype=torch.float64)
    k = torch.randn(n, d, generator=gen, device=DEVICE, dtype=torch.float64)
    queue = torch.randn(kk, d, generator=gen, device=DEVICE, dtype=torch.float64)
    perm = torch.randperm(kk, generator=gen, device=DEVICE)
    for backend in BACKENDS:
        base = infonce_loss(q, k, queue, temperature, reduction="none", backend=backend)
        permuted = infonce_loss(q, k, queue[perm], temperature, reduction="none", backend=backend)
        assert_close(permuted, base, atol=1e-12, rtol=1e-12, name=f"{backend} permuted queue")


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 8),
    kk=st.integers(0, 30),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_scale_invariance_with_normalize(n, kk, d, seed, scale):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    q = torch.randn(n, d, generator=gen, device=DEVICE, dtype=torch.float64)
    k = torch.randn(n, d, generator=gen, device=DEVICE, dtype=torch.float64)
    queue = torch.randn(kk, d, generator=gen, device=DEVICE, dtype=torch.float64)
    for backend in BACKENDS:
        base = infonce_loss(q, k, queue, 0.2, normalize=True, reduction="none", backend=backend)
        scaled = infonce_loss(
            scale * q, k / scale, scale * queue, 0.2, normalize=True, reduction="none", backend=backend
        )
        assert_close(scaled, base, atol=1e-10, rtol=1e-10, name=f"{backend} scaled infonce")
        base = ntxent_loss(q, k, 0.2, normalize=True, reduction="none", backend=backend)
        scaled = ntxent_loss(scale * q, scale * k, 0.2, normalize=True, reduction="none", backend=backend)
        assert_close(scaled, base, atol=1e-10, rtol=1e-10, name=f"{backend} scaled ntxent")


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------
_Q, _K = torch.randn(4, 8), torch.randn(4, 8)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((_Q, _K, torch.randn(5, 7)), {}, ValueError, r"queue must have q's feature dimension D=8, got shape \(5, 7\)"),
        ((_Q, torch.randn(4, 9)), {}, ValueError, r"k must have the shape of q \(4, 8\), got \(4, 9\)"),
        ((torch.randn(8), torch.randn(8)), {}, ValueError, r"q must be 2-D \(N, D\), got a 1-D tensor"),
        ((_Q, _K, torch.randn(2, 5, 8)), {}, ValueError, r"queue must be 2-D \(K, D\), got a 3-D tensor"),
        ((_Q, _K, None, 0.0), {}, ValueError, r"temperature must be a finite number > 0, got 0.0"),
        ((_Q, _K, None, -0.1), {}, ValueError, r"temperature must be a finite number > 0"),
        ((_Q, _K, torch.randn(5, 8, device="meta")), {}, ValueError, r"queue must be on the device of q \(cpu\)"),
        ((_Q.long(), _K.long()), {}, TypeError, r"q must have a dtype in .* got torch.int64"),
        ((_Q, _K, torch.ones(5, 8, dtype=torch.int32)), {}, TypeError, r"queue must have a dtype in .* torch.int32"),
        ((_Q, _K.double()), {}, TypeError, r"k must have the dtype of q \(torch.float32\)"),
        ((torch.randn(0, 8), torch.randn(0, 8)), {}, ValueError, r"q must not be empty"),
        ((_Q, _K), {"reduction": "max"}, ValueError, r"reduction must be one of 'mean', 'sum', 'none', got 'max'"),
        ((_Q, _K), {"backend": "magic"}, ValueError, r"unknown backend backend='magic'"),
    ],
    ids=[
        "queue-D",
        "k-shape",
        "1d",
        "queue-3d",
        "T=0",
        "T<0",
        "queue-device",
        "int",
        "int-queue",
        "mixed-dtype",
        "empty",
        "reduction",
        "backend",
    ],
)
def test_infonce_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        infonce_loss(*args, **kwargs)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((torch.randn(4, 8), torch.randn(4, 7)), ValueError, r"z2 must have the shape of z1 \(4, 8\), got \(4, 7\)"),
        ((torch.randn(4, 8, 1), torch.randn(4, 8, 1)), ValueError, r"z1 must be 2-D \(N, D\), got a 3-D tensor"),
        ((torch.randn(4, 8), torch.randn(4, 8), float("nan")), ValueError, r"temperature must be a finite number"),
        ((torch.ones(4, 8, dtype=torch.int8), torch.ones(4, 8)), TypeError, r"z1 must have a dtype in"),
        ((torch.randn(4, 8), torch.randn(4, 8, device="meta")), ValueError, r"z2 must be on the device of z1"),
    ],
    ids=["shape", "3d", "T-nan", "int", "device"],
)
def test_ntxent_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        ntxent_loss(*args)


@pytest.mark.triton
def test_triton_rejects_rows_longer_than_its_tile():
    if "triton" not in BACKENDS:
        pytest.skip("triton unavailable")
    q = torch.randn(2, 2048, device=DEVICE)
    with pytest.raises(ValueError, match=r"D=2048 in torch.float32 exceeds the kernels' single-tile row"):
        infonce_loss(q, q, None, 0.2, backend="triton")


def test_environment_variable_still_chooses_the_backend(monkeypatch):
    q, k, queue = _moco_inputs(4, 9, 8, torch.float32)
    monkeypatch.setenv("INV_KERNELS_BACKEND", "reference")
    got = infonce_loss(q, k, queue, 0.2, reduction="none")
    assert_close(got, infonce_loss_ref(q, k, queue, 0.2, reduction="none")[0], atol=0, rtol=0, name="env reference")
    monkeypatch.setenv("INV_KERNELS_BACKEND", "nonsense")
    with pytest.raises(ValueError, match=r"unknown backend INV_KERNELS_BACKEND='nonsense'"):
        infonce_loss(q, k, queue, 0.2)


def test_non_finite_input_is_rejected():
    q = torch.randn(3, 4)
    q[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"infonce_loss: q contains NaN or Inf \(1 of 12 elements"):
        infonce_loss(q, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"ntxent_loss: z2 contains NaN or Inf"):
        ntxent_loss(torch.randn(3, 4), q)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy under the Triton interpreter: overflow, inf - inf
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_temperatures_whose_reciprocal_or_logits_overflow_are_rejected(backend):
    """temperature=1e-40 (1 / T is inf in float32) and 1e-38 with unit-scale rows (the logits overflow) gave a NaN
    loss; now a ValueError names the temperature."""
    _skip_unavailable(backend)
    q, k = torch.randn(4, 8, device=DEVICE), torch.randn(4, 8, device=DEVICE)
    with pytest.raises(
        ValueError,
        match=r"infonce_loss: temperature must be at least 2.94e-39 \(1 / temperature "
        r"must be finite in torch.float32\), got 1e-40",
    ):
        infonce_loss(q, k, None, 1e-40, backend=backend)
    with pytest.raises(ValueError, match=r"ntxent_loss: temperature must be at least 2.94e-39"):
        ntxent_loss(q, k, 1e-40, backend=backend)
    with pytest.raises(ValueError, match=r"infonce_loss: the logits overflow torch.float32 .*temperature=1e-38\)"):
        infonce_loss(q, k, torch.randn(5, 8, device=DEVICE), 1e-38, backend=backend)
    with pytest.raises(ValueError, match=r"ntxent_loss: the logits overflow torch.float32"):
        ntxent_loss(q, k, 1e-38, backend=backend)
    assert torch.isfinite(infonce_loss(q.double(), k.double(), None, 1e-300, backend=backend))  # float64 reaches


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_normalize_rejects_rows_whose_norm_overflows(backend):
    """normalize=True on a float16 row of norm > 65504 (or a float32 row whose squares overflow) silently zeroed it."""
    _skip_unavailable(backend)
    q = torch.full((3, 4), 4e4, device=DEVICE, dtype=torch.float16)
    k = torch.randn(3, 4, device=DEVICE, dtype=torch.float16)
    with pytest.raises(
        ValueError,
        match=r"infonce_loss: q holds values up to 4e\+04 in magnitude, above 3.28e\+04 "
        r"where a row's norm \(4 terms\) overflows torch.float16 and normalize=True",
    ):
        infonce_loss(q, k, None, 0.2, normalize=True, backend=backend)
    with pytest.raises(ValueError, match=r"ntxent_loss: z2 holds values up to .* normalize=True would zero the row"):
        ntxent_loss(k.float(), q.float() * 1e16, 0.2, normalize=True, backend=backend)


def test_key_queue_rejects_non_finite_keys():
    queue = KeyQueue(6, 4)
    keys = torch.randn(2, 4)
    keys[1, 3] = float("inf")
    with pytest.raises(ValueError, match=r"KeyQueue.enqueue: keys contains NaN or Inf"):
        queue.enqueue(keys)
    assert int(queue.ptr) == 0


# ----------------------------------------------------------------------------------------------------------------
# the key queue and the distributed gather
# ----------------------------------------------------------------------------------------------------------------
def test_key_queue_ring_buffer_in_place():
    queue = KeyQueue(10, 4)
    storage = queue.tensor.data_ptr()
    assert queue.tensor.shape == (10, 4) and len(queue) == 10
    a, b, c = torch.randn(6, 4), torch.randn(6, 4), torch.randn(25, 4)
    queue.enqueue(a)
    assert torch.equal(queue.tensor[:6], a) and int(queue.ptr) == 6
    queue.enqueue(b)  # wraps: 4 rows at the end, 2 at the start
    assert torch.equal(queue.tensor[6:], b[:4]) and torch.equal(queue.tensor[:2], b[4:]) and int(queue.ptr) == 2
    assert torch.equal(queue.tensor[2:6], a[2:])
    queue.enqueue(c)  # larger than the queue: its newest 10 keys, starting at the pointer
    kept = c[-10:]
    assert torch.equal(torch.cat([queue.tensor[2:], queue.tensor[:2]]), kept) and int(queue.ptr) == 2
    assert queue.tensor.data_ptr() == storage
    state = queue.state_dict()
    assert set(state) == {"queue", "ptr"}
    with pytest.raises(ValueError, match=r"keys must have D=4 columns, got shape \(3, 5\)"):
        queue.enqueue(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"size must be an integer >= 1"):
        KeyQueue(0, 4)
    loss = infonce_loss(torch.randn(3, 4), torch.randn(3, 4), queue.tensor, 0.2, normalize=True)
    assert torch.isfinite(loss)


def test_gather_is_identity_without_distributed():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x


_DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp


    def worker(rank, world, init_file, out_dir):
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        from inv_kernels.distributed import gather_with_grad
        from inv_kernels.ops.contrastive_modules import NTXentLoss
        from inv_kernels.ops.infonce import infonce_loss
        gen = torch.Generator().manual_seed(1234)
        z1 = torch.randn(world * 5, 12, generator=gen, dtype=torch.float64)
        z2 = torch.randn(world * 5, 12, generator=gen, dtype=torch.float64)
        k = torch.randn(world * 5, 12, generator=gen, dtype=torch.float64)
        mine = slice(5 * rank, 5 * rank + 5)
        a, b = z1[mine].clone().requires_grad_(), z2[mine].clone().requires_grad_()
        loss = NTXentLoss(0.3, normalize=True, gather=True, backend=sys.argv[1])(a, b)
        loss.backward()
        keys = gather_with_grad(k[mine])  # MoCo: every process enqueues every process's keys
        torch.save({"loss": loss.detach(), "g1": a.grad, "g2": b.grad, "keys": keys}, f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # no rank tears gloo down while the other still has the last collective in flight
        dist.destroy_process_group()


    if __name__ == "__main__":
        world = 2
        mp.spawn(worker, args=(world, sys.argv[2], sys.argv[3]), nprocs=world, join=True)
    """
)


def test_distributed_ntxent_two_gloo_processes(tmp_path):
    backend = "cpu" if "cpu" in BACKENDS else "reference"
    script = tmp_path / "run.py"
    script.write_text(_DISTRIBUTED_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", TRITON_INTERPRET="0")
    result = subprocess.run(
        [sys.executable, str(script), backend, str(tmp_path / "init"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gen = torch.Generator().manual_seed(1234)
    z1 = torch.randn(10, 12, generator=gen, dtype=torch.float64).requires_grad_()
    z2 = torch.randn(10, 12, generator=gen, dtype=torch.float64).requires_grad_()
    k = torch.randn(10, 12, generator=gen, dtype=torch.float64)
    loss = ntxent_loss(z1, z2, 0.3, normalize=True, backend=backend)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        mine = slice(5 * rank, 5 * rank + 5)
        assert_close(got["loss"], loss, name=f"rank {rank} loss")
        assert_close(got["g1"], g1[mine], name=f"rank {rank} grad z1")
        assert_close(got["g2"], g2[mine], name=f"rank {rank} grad z2")
        assert torch.equal(got["keys"], k)


@pytest.mark.slow
def test_cpu_extra_memory_grows_as_n_plus_k():
    """The fused CPU kernel never allocates an N x K buffer: at N=1024, K=16384 (64 MiB of float32 logits) its peak
    extra resident memory stays far below that, while the materialised reference's does not."""
    if "cpu" not in BACKENDS:
        pytest.skip("the cpu backend is not built")
    code = textwrap.dedent(
        """
        import sys, torch
        from inv_kernels.ops.infonce import infonce_loss

        def status_kib(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1])

        q = torch.randn(1024, 32, requires_grad=True); k = torch.randn(1024, 32); queue = torch.randn(16384, 32)
        # Warm up lazy allocations (OpenMP's thread pool, allocator arenas) with every row but a tiny queue.
        infonce_loss(q, k, queue[:64], 0.2, backend=sys.argv[1]).backward()
        try:
            open("/proc/self/clear_refs", "w").write("5")  # resets the peak resident size (VmHWM) to the current
        except OSError:
            print("unsupported"); sys.exit(0)
        base = status_kib("VmRSS")
        infonce_loss(q, k, queue, 0.2, backend=sys.argv[1]).backward()
        print((status_kib("VmHWM") - base) / 1024)
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="2", TRITON_INTERPRET="0")
    extra = {}
    for backend in ("cpu", "reference"):
        cmd = [sys.executable, "-c", code, backend]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        if out.stdout.strip() == "unsupported":
            pytest.skip("this kernel cannot reset the peak resident size (/proc/self/clear_refs)")
        extra[backend] = float(out.stdout.strip().splitlines()[-1])
    assert extra["cpu"] < 24, extra
    assert extra["reference"] > 48, extra  # at least one (N, K) float32 buffer
