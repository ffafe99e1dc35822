"""Every Triton kernel compiles for the H100 (sm_90) with the configurations its launcher picks on a GPU, and fits
the card: checked here without a GPU (compile_for_gpu.py, in a process of its own without Triton's interpreter).
The interpreter, which runs the Triton tests on the CPU, accepts programs a GPU compile rejects and knows no
shared-memory limit; this test covers that gap."""

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import inv_kernels

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(not inv_kernels.HAS_TRITON, reason=f"triton: {inv_kernels.TRITON_MISSING}")


# The Triton this environment has, and (when INV_KERNELS_GPU_TRITON names a folder holding another Triton package,
# as .ci/run prepares with Triton 3.6.0) that one too: a kernel must compile under both.
TRITONS = ["installed"] + (["second"] if os.environ.get("INV_KERNELS_GPU_TRITON") else [])


@pytest.fixture(scope="module", params=TRITONS)
def report(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_compile") / "sm90.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if request.param == "second":
        folder = os.environ["INV_KERNELS_GPU_TRITON"]
        env["PYTHONPATH"] = os.pathsep.join([folder, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["TRITON_CACHE_DIR"] = str(tmp_path_factory.mktemp("triton-cache"))
    done = subprocess.run(
        [sys.executable, str(HERE / "compile_for_gpu.py"), "--arch", "90", "--out", str(out)],
        cwd=HERE.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if not out.exists():
        pytest.fail(f"the compile run wrote no report:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    result["stdout"] = done.stdout
    return result


@pytest.mark.slow
def test_every_case_compiles(report):
    assert not report["errors"], "\n".join(f"{name}:\n{error}" for name, error in report["errors"].items())
    assert len(report["cases"]) >= 30, report["cases"]  # (a case whose kernels an earlier case compiled adds none)
    names = {k["kernel"] for k in report["kernels"]}
    for kernel in (
        "_row_cosine_fwd_kernel",
        "_row_cosine_bwd_kernel",
        "_invariance_scores_fwd_kernel",
        "_group_invariance_fwd_kernel",
        "_infonce_fwd_kernel",
        "_infonce_bwd_kernel",
        "_infonce_combine_kernel",
        "_fused_augment_fwd_kernel",
        "_fused_augment_blur_kernel",
    ):
        assert kernel in names, f"{kernel} was never compiled"


@pytest.mark.slow
def test_every_kernel_fits_the_card(report):
    limit = report["shared_limit_bytes"]
    fixed = [k for k in report["kernels"] if not k["autotuned"] and k["shared_bytes"] > limit]
    assert not fixed, f"over {limit} bytes of shared memory (a launch fails): {fixed}"
    by_case = defaultdict(list)
    for k in report["kernels"]:
        if k["autotuned"]:
            by_case[k["case"]].append(k["shared_bytes"])
    for case, shared in by_case.items():  # the autotuner skips a config that does not fit; one must
        assert min(shared) <= limit, f"{case}: no autotuner config fits {limit} bytes: {shared}"
    for k in report["kernels"]:
        assert k["registers"] is None or k["registers"] <= 255, k
        assert k["num_warps"] * 32 <= 1024, k


@pytest.mark.slow
def test_the_product_kernels_use_tensor_cores(report):
    """Half types and TF32 reach the H100's tensor cores (wgmma) in the kernels whose time is matrix products; under
    torch's default "highest" precision float32 stays on the CUDA cores (IEEE products)."""

    def instructions(case_prefix, kernel):
        return {
            k["tensor_cores"] for k in report["kernels"] if k["case"].startswith(case_prefix) and k["kernel"] == kernel
        }

    for dtype in ("bfloat16", "float16"):
        assert instructions(f"invariance_scores {dtype}", "_invariance_scores_fwd_kernel") == {"wgmma"}
        for kernel in ("_infonce_fwd_kernel", "_infonce_bwd_kernel"):
            assert instructions(f"infonce + ntxent {dtype} D=128", kernel) == {"wgmma"}, (dtype, kernel)
    assert instructions("invariance_scores float32 D=2048 tf32", "_invariance_scores_fwd_kernel") == {"wgmma"}
    for kernel in ("_infonce_fwd_kernel", "_infonce_bwd_kernel"):
        assert instructions("infonce + ntxent float32 D=128 tf32", kernel) == {"wgmma"}, kernel
        assert instructions("infonce + ntxent float32 D=128 splits=auto", kernel) == {None}, kernel
