"""Where a result came from, recorded in every results file the project writes (measurement results.json,
transfer.json, the study's report.json, pretraining's summary.json), so that two results can be compared and cited:
the package version, the git commit of the source when it is a checkout, the torch and timm versions, the device,
the command line or Python call that made it, the model's hash and the statistics' condition number."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

PACKAGE = "inv-kernels"
_SOURCE = Path(__file__).resolve().parent


def package_version() -> str:
    """The installed version of the package, or "unknown" when it is run from sources that were never installed."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def optional_version(module: str) -> str | None:
    """The installed version of an optional dependency (e.g. timm), or None when it is not installed."""
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(folder: Path = _SOURCE) -> str | None:
    """The commit of the git checkout holding ``folder`` (with "-dirty" when tracked files differ from it), or None
    when git is absent, the sources are no checkout, or git fails: never an error."""
    try:
        run = {"cwd": folder, "capture_output": True, "text": True, "timeout": 10, "check": True}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and dirty else commit or None


def command_line() -> str:
    """This process's command line as typed (``python -m pipelines.measure --model ...``), shell-quoted."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def device_name(device: torch.device | str | None) -> str | None:
    """ "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)" for a GPU; None when unknown."""
    if device is None:
        return None
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def provenance(
    *,
    device: torch.device | str | None = None,
    call: str | None = None,
    model_hash: str | dict[str, str] | None = None,
    condition_number: float | dict[str, float] | None = None,
) -> dict:
    """The provenance record of one result.

    Args:
        device: where the result was computed.
        call: the Python call that made it (e.g. ``inv_kernels.measure_invariance(model=ResNet, ...)``); default:
            this process's command line.
        model_hash: the model's identity (its checkpoint's name and SHA-256 prefix, or the hash of a module's
            weights), or name -> identity for several models.
        condition_number: the condition number of the feature statistics used, where there are statistics (or
            name -> condition number for several models).

    Returns:
        {"package", "version", "git_commit" (None when unknown), "python", "torch", "timm" (None when not installed),
        "platform", "device", "command", "created" (UTC, ISO 8601), "model_hash", "condition_number"}.
    """
    return {
        "package": PACKAGE,
        "version": package_version(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": optional_version("timm"),
        "platform": platform.platform(),
        "device": device_name(device),
        "command": call if call is not None else command_line(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_hash": model_hash,
        "condition_number": condition_number
        if condition_number is None or isinstance(condition_number, dict)
        else float(condition_number),
    }
