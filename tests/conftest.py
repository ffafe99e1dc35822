"""Test session setup: Triton's interpreter on machines without a GPU, seeds, markers with automatic skips,
and the real-photo archives (the folder INV_KERNELS_SHARED_DATA names) extracted once into a cache folder."""

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

# Must happen before any @triton.jit decorator runs, i.e. before inv_kernels is imported.
if os.environ.get("TRITON_INTERPRET") is None:
    try:
        import torch

        _has_gpu = torch.cuda.is_available()
    except ImportError:
        _has_gpu = False
    if not _has_gpu:
        os.environ["TRITON_INTERPRET"] = "1"

import pytest
import torch

import inv_kernels

ROOT = Path(__file__).resolve().parents[1]

# INV_KERNELS_CUDA_EMULATION=1: backend="cuda" runs the CUDA kernels emulated on the CPU (tests/cuda_emu), so the
# tests marked `cuda` run here without a GPU; tests marked `gpu` still need one.
CUDA_EMULATION = os.environ.get("INV_KERNELS_CUDA_EMULATION") == "1"
if CUDA_EMULATION:
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "cuda_emu"))
    from activate import activate

    activate()
# The real-photo archives of the `realdata` tests: the folder INV_KERNELS_SHARED_DATA names, else a data folder beside
# the checkout (shared/data next to the repository's folder, where CI places them); absent, those tests skip.
SHARED_DATA = Path(os.environ.get("INV_KERNELS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _skip_reasons() -> dict[str, str | None]:
    gpu = None if torch.cuda.is_available() else "no CUDA GPU on this machine"
    return {
        "gpu": gpu,
        "cuda": None if CUDA_EMULATION else inv_kernels.CUDA_MISSING or gpu,
        "triton": inv_kernels.TRITON_MISSING
        or (None if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1" else gpu),
        "dali": None if inv_kernels.HAS_DALI else "NVIDIA DALI is not installed (pip install nvidia-dali-cuda130)",
        "realdata": None if SHARED_DATA.is_dir() else f"real image data not found at {SHARED_DATA}",
        "slow": None if os.environ.get("INV_KERNELS_SKIP_SLOW") != "1" else "INV_KERNELS_SKIP_SLOW=1",
    }


def pytest_collection_modifyitems(config, items):
    reasons = _skip_reasons()
    for item in items:
        for marker, reason in reasons.items():
            if reason is not None and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))


# Fresh random inputs every run; INV_KERNELS_TEST_SEED=<n> replays a run (the seed is printed in the header).
SESSION_SEED = int(os.environ.get("INV_KERNELS_TEST_SEED", int.from_bytes(os.urandom(4), "little")))


def pytest_report_header(config):
    return [
        f"inv_kernels test seed: INV_KERNELS_TEST_SEED={SESSION_SEED}",
        f"inv_kernels: _C={inv_kernels.HAS_C_EXT} cuda_ext={inv_kernels.HAS_CUDA_EXT} "
        f"triton={inv_kernels.HAS_TRITON} (interpreter={os.environ.get('TRITON_INTERPRET') == '1'}) "
        f"dali={inv_kernels.HAS_DALI} gpu={torch.cuda.is_available()} cuda_emulation={CUDA_EMULATION}",
    ]


@pytest.fixture(autouse=True)
def _seed(request):
    """Seeds torch, numpy and random per test from the session seed and the test's name."""
    import random

    import numpy as np

    seed = (SESSION_SEED + zlib.crc32(request.node.nodeid.encode())) % (2**31)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    yield


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """The folder with the real image archives; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real image data not found at {SHARED_DATA}")
    return SHARED_DATA


def _extract(archive: Path, cache: Path) -> Path:
    done = cache / (archive.name + ".done")
    if not done.exists():
        staging = cache / (archive.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        for child in staging.iterdir():
            target = cache / child.name
            shutil.rmtree(target, ignore_errors=True)
            child.rename(target)
        shutil.rmtree(staging)
        done.touch()
    return cache


@pytest.fixture(scope="session")
def real_data_cache(shared_data_dir) -> Path:
    """A cache folder (INV_KERNELS_TEST_CACHE or ~/.cache/inv_kernels/test-data) holding the extracted archives:
    cifar10/{train,test}/<class>/*.jpg and tinyimagenet100/{train,val}/<wnid>/*.JPEG."""
    cache = Path(os.environ.get("INV_KERNELS_TEST_CACHE", Path.home() / ".cache" / "inv_kernels" / "test-data"))
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("cifar10-jpeg.tar.gz", "tinyimagenet100-jpeg.tar.gz"):
        _extract(shared_data_dir / name, cache)
    return cache


@pytest.fixture(scope="module")
def module_tmp_path(request, tmp_path_factory) -> Path:
    """A folder for one module's shared outputs (pretraining checkpoints of about 137 MB each, a whole study),
    deleted when the module's tests are done unless a test has failed by then, so the suite's disk use does not
    add up over the modules (a CI run that ran out of disk failed every later checkpoint write)."""
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    if not request.session.testsfailed:
        shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After failures, the free disk space where the tests write, so that a run out of disk (checkpoint writes
    failing with OSError 28) shows it in the last lines of the log."""
    if not (terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")):
        return
    for label, folder in (("temporary files", Path(tempfile.gettempdir())), ("repository", ROOT)):
        free = shutil.disk_usage(folder).free / 2**30
        terminalreporter.write_line(f"free disk space, {label} ({folder}): {free:.1f} GiB")
