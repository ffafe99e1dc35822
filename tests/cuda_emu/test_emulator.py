"""The CUDA emulation itself: correct kernels give CUDA's results, and the mistakes it claims to catch are caught
(selftest_kernels.cu). Then the real CUDA kernels of csrc/ run every `cuda` op test under it, in a process of their
own (the emulation replaces the extension module of the process it runs in)."""

import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import emulated_extension
import pytest
import torch

HERE = Path(__file__).resolve().parent
pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulation compiles with g++, not installed"),
    pytest.mark.skipif(importlib.util.find_spec("pybind11") is None, reason="pybind11 is not installed"),
]


@pytest.fixture(scope="module")
def selftest():
    return emulated_extension.load("cuda_emu_selftest", [HERE / "selftest_kernels.cu"])


def test_translate_rewrites_launches_and_dynamic_shared_memory():
    source = (
        "extern __shared__ __align__(16) unsigned char smem[];\n"
        "  __shared__ A tile[kTile][kChunk + 1];\n"
        "k<T, A><<<grid_for(M), dim3(32, 4),\n bytes, s>>>(a, b);\n"
        "other<<<1, 32>>>(x);\n"
        "__global__ void __launch_bounds__(kThreads)\n    fwd_kernel(const T* __restrict__ v, int n) {\n"
    )
    out = emulated_extension.translate(source, "x.cu")
    assert "unsigned char* smem = reinterpret_cast<unsigned char*>(::emu::dynamic_shared());" in out
    assert "::emu::launch(k<T, A>, grid_for(M), dim3(32, 4),\n bytes, s)(a, b);" in out
    assert "::emu::launch(other, 1, 32)(x);" in out
    assert "__shared__ A tile[kTile][kChunk + 1]; ::emu::note_static_shared(sizeof(tile));" in out
    assert "fwd_kernel(const T* __restrict__ v, int n) { ::emu::note_launch_bounds(kThreads);" in out
    assert "<<<" not in out


@pytest.mark.parametrize("blocks,block_x,block_y", [(1, 32, 1), (3, 64, 2), (2, 1024, 1)])
def test_shuffles_and_shared_memory_reduce_a_block(selftest, blocks, block_x, block_y):
    n = block_x * block_y
    out = selftest.block_sum(blocks, block_x, block_y)
    for b in range(blocks):
        expected = sum(range(b * n, (b + 1) * n))
        assert out[b * n : (b + 1) * n] == [float(expected)] * n


def test_a_barrier_makes_every_write_visible(selftest):
    out = selftest.neighbour(4, 64, True)
    assert out == [float((t + 1) % 64) for _ in range(4) for t in range(64)]


def test_a_missing_barrier_shows_as_a_wrong_read(selftest):
    # Threads run alone until a barrier, in forward order in even blocks and reverse order in odd ones: without the
    # barrier, a thread reads its neighbour's slot before (even) or after (odd) the neighbour wrote it.
    out = selftest.neighbour(2, 64, False)
    even, odd = out[:64], out[64:]
    assert all(math.isnan(v) for v in even[:63])  # read before written: the 0xFF poison, a NaN
    assert odd[:63] == [float(t + 1) for t in range(63)]


def test_unwritten_shared_memory_reads_as_nan(selftest):
    assert all(math.isnan(v) for v in selftest.unwritten_shared(32))


def test_a_shuffle_with_an_exited_lane_is_an_error(selftest):
    with pytest.raises(RuntimeError, match="waits for a lane that has exited"):
        selftest.exited_lane()


def test_threads_that_never_meet_are_a_deadlock(selftest):
    with pytest.raises(RuntimeError, match="deadlock"):
        selftest.deadlock()


def test_dynamic_shared_memory_over_the_limit_fails_the_launch(selftest):
    assert selftest.dynamic_smem(48 * 1024, 0) == [1.0] * 64
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        selftest.dynamic_smem(64 * 1024, 0)  # over 48 KiB without cudaFuncSetAttribute
    assert selftest.dynamic_smem(64 * 1024, 64 * 1024) == [1.0] * 64
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        selftest.dynamic_smem(64 * 1024, 228 * 1024)  # over the card's 227 KiB


def test_static_and_dynamic_shared_memory_share_the_limit(selftest):
    assert selftest.static_and_dynamic(8 * 1024, 0) == [3.0] * 64  # 40 + 8 KiB: exactly the default 48 KiB
    with pytest.raises(RuntimeError, match="40960 bytes of static and 9216 bytes of dynamic"):
        selftest.static_and_dynamic(9 * 1024, 0)  # a GPU refuses: over 48 KiB without cudaFuncSetAttribute
    assert selftest.static_and_dynamic(16 * 1024, 16 * 1024) == [3.0] * 64
    with pytest.raises(RuntimeError, match="over the block's limit"):
        selftest.static_and_dynamic(16 * 1024, 200 * 1024)  # 40 KiB + 200 KiB exceeds the card's 227 KiB


def test_a_block_over_the_launch_bounds_fails(selftest):
    assert selftest.bounded(64) == [1.0] * 64
    with pytest.raises(RuntimeError, match=r"128 threads exceeds the kernel's __launch_bounds__\(64\)"):
        selftest.bounded(128)


@pytest.mark.parametrize("block_x,grid_x", [(1025, 1), (0, 1), (32, 0)])
def test_bad_launch_configurations_fail(selftest, block_x, grid_x):
    with pytest.raises(RuntimeError, match="cudaErrorInvalidConfiguration"):
        selftest.launch_threads(block_x, grid_x)


def _asan_preload() -> str | None:
    """LD_PRELOAD for AddressSanitizer in a Python process (its runtime, then libstdc++), or None without it."""
    paths = []
    for name in ("libasan.so", "libstdc++.so"):
        found = subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(found) or not os.path.exists(found):
            return None
        paths.append(found)
    return " ".join(paths)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the cuda tests run the real kernels")
def test_the_cuda_kernels_pass_every_cuda_op_test_under_emulation():
    """Every test marked `cuda` in tests/ops, on the emulated kernels, with AddressSanitizer watching every read and
    write of the kernels where g++ has it (an access outside a tensor aborts the run with a report)."""
    root = HERE.parents[1]
    env = {**os.environ, "INV_KERNELS_CUDA_EMULATION": "1"}
    preload = _asan_preload()
    if preload:
        env.update(INV_KERNELS_CUDA_EMULATION_ASAN="1", ASAN_OPTIONS="detect_leaks=0", LD_PRELOAD=preload)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "cuda",
        "-p",
        "no:cacheprovider",
        str(root / "tests" / "ops"),
    ]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    tail = result.stdout[-6000:] + result.stderr[-6000:]
    assert result.returncode == 0, tail
    passed = int(re.search(r"(\d+) passed", result.stdout)[1])
    assert passed >= 150, tail  # every op's cuda cases ran (169 when written), none skipped
    assert "skipped" not in result.stdout.splitlines()[-1], tail
