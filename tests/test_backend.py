"""Backend dispatch: explicit argument, then INV_KERNELS_BACKEND, then the automatic rule; no silent fallback."""

import pytest
import torch

import inv_kernels
from inv_kernels import backend as backend_module
from inv_kernels.backend import ENV_VAR, resolve_backend

CPU = torch.device("cpu")


def test_automatic_choice_on_cpu(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    expected = "cpu" if inv_kernels.HAS_C_EXT else "reference"
    assert resolve_backend("auto", CPU, op="t") == expected
    assert resolve_backend(None, CPU, op="t") == expected


def test_automatic_choice_on_cuda_prefers_cuda_then_triton(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cuda = torch.device("cuda", 0)
    reasons = {"cuda": "no cuda", "triton": None}
    monkeypatch.setattr(
        backend_module, "unavailable_reason", lambda b, d: None if b == "reference" else reasons.get(b, "x")
    )
    assert resolve_backend("auto", cuda, op="t") == "triton"
    reasons["cuda"] = None
    assert resolve_backend("auto", cuda, op="t") == "cuda"
    assert resolve_backend("auto", cuda, op="t", supported=("reference", "triton")) == "triton"
    reasons["triton"] = "no triton"
    assert resolve_backend("auto", cuda, op="t", supported=("reference", "triton")) == "reference"


def test_an_op_can_prefer_triton_on_cuda(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cuda = torch.device("cuda", 0)
    reasons = {"cuda": None, "triton": None}
    monkeypatch.setattr(
        backend_module, "unavailable_reason", lambda b, d: None if b == "reference" else reasons.get(b, "x")
    )
    order = ("triton", "cuda")
    assert resolve_backend("auto", cuda, op="t", gpu_order=order) == "triton"
    reasons["triton"] = "no triton"
    assert resolve_backend("auto", cuda, op="t", gpu_order=order) == "cuda"
    assert resolve_backend("cuda", cuda, op="t", gpu_order=order) == "cuda"  # an explicit request is honoured
    assert resolve_backend("auto", CPU, op="t", gpu_order=order) in ("cpu", "reference")  # CPU tensors: unchanged


def test_automatic_choice_without_extension(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(inv_kernels._ext, "C_MISSING", "not built")
    assert resolve_backend("auto", CPU, op="t") == "reference"
    with pytest.raises(RuntimeError, match=r"t: backend='cpu' cannot run: not built"):
        resolve_backend("cpu", CPU, op="t")


def test_environment_variable_applies_when_argument_is_auto(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "reference")
    assert resolve_backend("auto", CPU, op="t") == "reference"
    # The argument wins over the environment.
    if inv_kernels.HAS_C_EXT:
        assert resolve_backend("cpu", CPU, op="t") == "cpu"


def test_environment_variable_never_falls_back(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match=r"INV_KERNELS_BACKEND='cuda' cannot run: .*"):
        resolve_backend("auto", CPU, op="row_cosine")
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match=r"unknown backend INV_KERNELS_BACKEND='fast'"):
        resolve_backend("auto", CPU, op="row_cosine")


def test_explicit_request_never_falls_back():
    with pytest.raises(
        RuntimeError, match=r"backend='cuda' cannot run: .*(CUDA tensors|without CUDA|could not be imported)"
    ):
        resolve_backend("cuda", CPU, op="row_cosine")


def test_backend_the_op_lacks():
    with pytest.raises(
        RuntimeError, match=r"backend='triton' is not implemented for this op \(it has reference, cpu\)"
    ):
        resolve_backend("triton", CPU, op="t", supported=("reference", "cpu"))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    if not inv_kernels.HAS_TRITON:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    reason = backend_module.unavailable_reason("triton", CPU)
    assert reason is not None and "TRITON_INTERPRET=1" in reason
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend_module.unavailable_reason("triton", CPU) is None


def test_available_backends_lists_reference_first():
    names = inv_kernels.available_backends("cpu")
    assert names[0] == "reference"
    assert set(names) <= set(inv_kernels.BACKENDS)
