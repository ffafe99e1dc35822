"""Compiles every Triton kernel of inv_kernels for a GPU architecture on a machine without a GPU, with the launch
configurations the ops choose on a GPU, and reports each compiled kernel's resources.

    python tests/gpu_compile/compile_for_gpu.py --arch 90 --out report.json   # TRITON_INTERPRET must be unset

How: Triton's active driver is replaced by one that names the architecture and has no device; the ops' Triton
launchers run on "meta" tensors (shapes and dtypes, no memory), so Triton specialises and compiles each kernel
exactly as on a GPU, down to the cubin (with the ptxas Triton ships); the launch itself is skipped. Each autotuned
kernel is compiled once per listed config. For every kernel the report gives its shared memory (from Triton's
metadata; a GPU refuses a launch over the card's limit) and its registers and local memory per thread (from the
cubin, with the cuobjdump Triton ships; local memory means register spills, slow but legal), and whether its PTX
uses tensor cores (wgmma / mma) or only the CUDA cores.

Exit status 0 when every case compiled, 1 otherwise; the JSON holds cases, kernels and errors. A kernel over the
card's shared memory fails at launch, except an autotuner's config, which the autotuner skips.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("compile_for_gpu.py: unset TRITON_INTERPRET (the interpreter compiles nothing)")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.driver import DriverBase  # noqa: E402
from triton.compiler import compiler as triton_compiler  # noqa: E402
from triton.runtime import driver  # noqa: E402

from inv_kernels.testing import float32_matmul_precision  # noqa: E402

# Opt-in shared memory per block, bytes (CUDA programming guide, compute capabilities table).
SHARED_LIMIT = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}


class CompileOnlyDriver(DriverBase):
    """A Triton driver for an architecture without a device: enough for compiling, nothing for launching."""

    def __init__(self, arch: int):
        super().__init__()
        self.target = GPUTarget("cuda", arch, 32)

    @classmethod
    def is_active(cls) -> bool:
        return True

    def map_python_to_cpp_type(self, ty: str) -> str:
        from triton.backends.nvidia.driver import ty_to_cpp

        return ty_to_cpp(ty)

    def get_current_target(self):
        return self.target

    def get_active_torch_device(self):
        return torch.device("meta")

    def get_benchmarker(self):
        raise RuntimeError("compile-only driver: nothing can be timed")

    def get_current_device(self) -> int:
        return 0

    def set_current_device(self, device: int) -> None:
        pass

    def get_current_stream(self, device: int | None = None) -> int:
        return 0


COMPILED: dict[str, dict] = {}  # cubin hash -> kernel record
CURRENT_CASE = [""]
AUTOTUNED = [False]  # the running case compiles the configs of an autotuner (which skips those that do not fit)


def _record_instead_of_loading(self) -> None:
    """CompiledKernel._init_handles without a device: note the kernel, make its launch a no-op."""
    if self.hash not in COMPILED:
        COMPILED[self.hash] = {
            "case": CURRENT_CASE[0],
            "kernel": self.name,
            "autotuned": AUTOTUNED[0],
            "num_warps": self.metadata.num_warps,
            "num_stages": self.metadata.num_stages,
            "shared_bytes": self.metadata.shared,
            "tensor_cores": _tensor_core_instruction(self.asm.get("ptx", "")),
            **_resource_usage(self.asm["cubin"]),
        }
    self._run = lambda *args, **kwargs: None


def _tensor_core_instruction(ptx: str) -> str | None:
    """The tensor-core instruction family the kernel's PTX uses ("wgmma" on sm_90, "mma"), or None (CUDA cores)."""
    if "wgmma.mma_async" in ptx:
        return "wgmma"
    if "mma.sync" in ptx:
        return "mma"
    return None


def _resource_usage(cubin: bytes) -> dict:
    """Registers and local memory (bytes) per thread, from cuobjdump's resource usage of the cubin."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", handle.name], capture_output=True, text=True).stdout
    registers = re.search(r"REG:(\d+)", text)
    local = re.search(r"LOCAL:(\d+)", text)
    return {"registers": int(registers[1]) if registers else None, "local_bytes": int(local[1]) if local else None}


def _meta(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


# ------------------------------------------------------------------------------------------------ the cases
def _cases():
    """(name, callable) for every Triton launcher x dtype x the shapes that pick its GPU configurations."""
    import importlib

    rc = importlib.import_module("inv_kernels.ops.row_cosine")
    isc = importlib.import_module("inv_kernels.ops.invariance_scores")
    gi = importlib.import_module("inv_kernels.ops.group_invariance")
    nce = importlib.import_module("inv_kernels.ops._infonce_triton")
    aug = importlib.import_module("inv_kernels.ops._fused_augment_triton")

    dtypes = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
    cases = []
    for name, dt in dtypes.items():
        acc = torch.float64 if dt == torch.float64 else torch.float32
        for d in (128, 2048):
            m = 4096

            def row_cosine(m=m, d=d, dt=dt, acc=acc):
                x, y = _meta(m, d, dtype=dt), _meta(m, d, dtype=dt)
                out, stats = _meta(m, dtype=acc), _meta(m, 3, dtype=acc)
                rc._row_cosine_fwd_triton(x, y, out, stats, 1e-8)
                rc._row_cosine_bwd_triton(
                    _meta(m, dtype=acc), x, y, stats, _meta(m, d, dtype=dt), _meta(m, d, dtype=dt), 1e-8
                )

            cases.append((f"row_cosine {name} D={d}", row_cosine))

        def scores(dt=dt, acc=acc, precision="highest"):
            tuned = (
                isc._invariance_scores_fwd_kernel_tuned_fp64
                if dt == torch.float64
                else isc._invariance_scores_fwd_kernel_tuned
            )
            configs = list(tuned.configs)
            AUTOTUNED[0] = True
            try:
                with float32_matmul_precision(precision):
                    for config in configs:  # one config at a time: compiled, never benchmarked
                        tuned.configs, tuned.cache = [config], {}
                        isc._scores_fwd_triton(
                            _meta(8, 256, 2048, dtype=dt),
                            _meta(8, 2048, dtype=acc),
                            _meta(2048, dtype=acc),
                            _meta(2048, 2048, dtype=acc),
                            1e-8,
                        )
            finally:
                tuned.configs, tuned.cache = configs, {}
                AUTOTUNED[0] = False

        cases.append((f"invariance_scores {name} D=2048", scores))
        if dt == torch.float32:
            cases.append(
                ("invariance_scores float32 D=2048 tf32", lambda: scores(torch.float32, torch.float32, "high"))
            )

        def groups(acc=acc):  # features of every dtype reach the kernel whitened in float32 (float64)
            offsets = _meta(65, dtype=torch.int64)
            gi._groups_fwd_triton(_meta(64 * 24, 2048, dtype=acc), offsets, 1e-8)

        if dt in (torch.float32, torch.float64):
            cases.append((f"group_invariance {name} D=2048", groups))

        for d in (128, 1024 if dt != torch.float64 else 512):
            if not nce.triton_row_fits(d, dt):
                continue
            for splits in (None, 2):

                def losses(d=d, dt=dt, acc=acc, splits=splits):
                    nce.TRITON_SPLITS_OVERRIDE = splits
                    try:
                        n, k = 4096, 65536
                        q, key, queue = _meta(n, d, dtype=dt), _meta(n, d, dtype=dt), _meta(k, d, dtype=dt)
                        rows = [_meta(n, dtype=acc) for _ in range(3)]
                        nce.infonce_fwd_triton(q, key, queue, *rows, 5.0)
                        nce.infonce_bwd_triton(
                            rows[0], q, key, queue, rows[1], _meta(n, d, dtype=dt), _meta(n, d, dtype=dt), 5.0
                        )
                        z = _meta(2 * n, d, dtype=dt)
                        rows = [_meta(2 * n, dtype=acc) for _ in range(3)]
                        nce.ntxent_fwd_triton(z, *rows, 5.0)
                        nce.ntxent_bwd_triton(rows[0], z, rows[1], _meta(2 * n, d, dtype=dt), 5.0)
                    finally:
                        nce.TRITON_SPLITS_OVERRIDE = None

                cases.append((f"infonce + ntxent {name} D={d} splits={splits or 'auto'}", losses))
                if dt == torch.float32 and splits is None:

                    def tf32_losses(losses=losses):
                        with float32_matmul_precision("high"):
                            losses()

                    cases.append((f"infonce + ntxent float32 D={d} tf32", tf32_losses))

    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):

        def augment(dt=dt, size=224, views=512):
            batch = _meta(views // 2, 3, 500, 500, dtype=torch.uint8)
            aug.fused_augment_triton(
                batch,
                _meta(views // 2, 2, dtype=torch.int32),
                _meta(views, 13, dtype=torch.int32),
                _meta(views, 5),
                _meta(6),
                _meta(views, 3, size, size, dtype=dt),
            )

        cases.append((f"fused_augment {name} S=224", augment))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability as an integer (90: H100)")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    driver.set_active(CompileOnlyDriver(args.arch))
    triton_compiler.CompiledKernel._init_handles = _record_instead_of_loading
    from inv_kernels import backend

    real_reason = backend.unavailable_reason
    backend.unavailable_reason = lambda name, device: None if name == "triton" else real_reason(name, device)

    errors, case_names = {}, []
    for name, run in _cases():
        CURRENT_CASE[0] = name
        case_names.append(name)
        try:
            run()
        except Exception:  # noqa: BLE001 - every failure is reported, the other cases still compile
            errors[name] = traceback.format_exc(limit=6)
    limit = SHARED_LIMIT.get(args.arch)
    kernels = sorted(COMPILED.values(), key=lambda r: (r["case"], r["kernel"]))
    print(
        f"{'case':44} {'kernel':34} {'warps':>5} {'stages':>6} {'shared KB':>9} {'regs':>4} {'local B':>7} {'mma':>5}"
    )
    for r in kernels:
        over = "" if limit is None or r["shared_bytes"] <= limit else " over (skipped)" if r["autotuned"] else " OVER"
        print(
            f"{r['case'][:44]:44} {r['kernel'][:34]:34} {r['num_warps']:5} {r['num_stages']:6} "
            f"{r['shared_bytes'] / 1024:9.1f} {r['registers'] or '-':>4} "
            f"{r['local_bytes'] if r['local_bytes'] is not None else '-':>7} {r['tensor_cores'] or '-':>5}{over}"
        )
    for name, error in errors.items():
        print(f"\nFAILED {name}:\n{error}")
    report = {
        "arch": args.arch,
        "shared_limit_bytes": limit,
        "cases": case_names,
        "kernels": kernels,
        "errors": errors,
        "triton": triton.__version__,
        "torch": torch.__version__,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{len(case_names)} cases, {len(kernels)} kernels compiled for sm_{args.arch}, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
