"""Which arithmetic to run in: bfloat16 autocast where the hardware multiplies bfloat16 (CUDA, and CPUs with
AVX512-BF16 or AMX-BF16 instructions), float32 elsewhere. Pretraining and measurement decide with the same rule."""

from __future__ import annotations

from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")  # "auto": resolve_precision's rule


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16), which makes bf16 autocast pay."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, amp: bool, device: torch.device) -> str:
    """The arithmetic of a training step or a forward pass, "bf16" (bfloat16 autocast) or "fp32", for a config's ``precision``
    ("auto", "fp32", "bf16") and ``amp`` (False: "fp32") on ``device``. "auto" is "bf16" on CUDA and on CPUs with
    bfloat16 instructions (``cpu_has_bf16``; docs/PERFORMANCE.md compares the loss curves), else "fp32"."""
    if not amp or precision == "fp32":
        return "fp32"
    if precision == "bf16" or device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
