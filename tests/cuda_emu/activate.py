"""Switches this process to the emulated CUDA kernels: after ``activate()``, every op's ``backend="cuda"`` runs the
kernels of csrc/**/*.cu, compiled for the CPU against include/cuda_emu.h, on CPU tensors.

Only for a test process of its own (tests/conftest.py calls it when INV_KERNELS_CUDA_EMULATION=1): it replaces
``inv_kernels._ext.C`` by a module whose ``cuda`` functions are the emulated ones, lets the backend rule accept CPU
tensors for ``cuda``, and registers each ``cuda`` custom op's own implementation for CPU tensors too.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import emulated_extension  # noqa: E402

ENV_VAR = "INV_KERNELS_CUDA_EMULATION"

# The custom-op tables of every op with a CUDA kernel: module -> names of its {backend: CustomOpDef} dicts.
OP_TABLES = {
    "inv_kernels.ops.row_cosine": ("FWD_OPS", "BWD_OPS"),
    "inv_kernels.ops.invariance_scores": ("FWD_OPS",),
    "inv_kernels.ops.group_invariance": ("FWD_OPS",),
    "inv_kernels.ops.infonce": ("INFONCE_FWD_OPS", "INFONCE_BWD_OPS", "NTXENT_FWD_OPS", "NTXENT_BWD_OPS"),
    "inv_kernels.ops.fused_augment": ("FWD_OPS",),
}


class _CudaOnHost:
    """The emulated ``cuda`` submodule; a CPU tensor's device index (None) is passed as device 0."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        function = getattr(self._module, name)
        return lambda *args, **kwargs: function(*(0 if a is None else a for a in args), **kwargs)


class _Extension:
    """``inv_kernels._ext.C`` with its ``cuda`` submodule replaced."""

    def __init__(self, real, emulated):
        self._real = real
        self.cuda = _CudaOnHost(emulated.cuda)
        self.WITH_CUDA = True

    def __getattr__(self, name):
        return getattr(self._real, name)


_active = False


def activate() -> None:
    global _active
    if _active:
        return
    from inv_kernels import _ext, backend

    if torch.cuda.is_available():
        # the op tests use CUDA tensors where a GPU exists; the emulated kernels take host pointers
        raise RuntimeError("CUDA emulation is for machines without a GPU: this one runs the real kernels")
    if _ext.C is None:
        raise RuntimeError(f"CUDA emulation needs the compiled extension: {_ext.C_MISSING}")
    emulated = emulated_extension.load()
    _ext.C = _Extension(_ext.C, emulated)
    _ext.CUDA_MISSING = None
    _ext.HAS_CUDA_EXT = True
    _ext.cuda_stream_handle = lambda device: 0
    real_reason = backend.unavailable_reason

    def unavailable_reason(name: str, device: torch.device) -> str | None:
        if name == "cuda" and torch.device(device).type == "cpu":
            return None
        return real_reason(name, device)

    backend.unavailable_reason = unavailable_reason
    for module_name, tables in OP_TABLES.items():
        module = importlib.import_module(module_name)
        for table in tables:
            op = getattr(module, table)["cuda"]
            op.register_kernel("cpu")(op._init_fn)
    _active = True
