"""One command for a GPU: every kernel against its baseline and its floor, as a Markdown table and a JSON.

    python benchmarks/gpu_report.py --out docs/gpu_report.md                  # on a GPU (the extension built first)
    python benchmarks/gpu_report.py --device cpu --quick --out report-cpu.md  # the same path end to end on a CPU

It builds nothing: it times whatever backends this installation can run (benchmarks/gpu_report_cases.py lists the
kernels, benchmarks/benchmarks/_workloads.py their shapes, bytes and FLOPs) and skips the rest with the reason. In
the same run it measures the two rates that bound every kernel: the copy bandwidth (a large device-to-device copy:
bytes read + written per second) and the matrix-product rate (large float32 (TF32 allowed on a GPU), bfloat16 and
float64 products). A kernel's floor is max(bytes / bandwidth, FLOPs / rate); "% of floor" = floor / time. Times are
medians of CUDA-event timings (or perf_counter on the CPU), each repetition after a write of a buffer larger than the
last-level cache. Peak memory is torch's allocator peak above what was allocated before the call (n/a on the CPU). A
last table gives the verdict on each of the toolkit's speed and memory goals that the report times
(benchmarks/gpu_report_goals.py). Exits 1 if any timing failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import inv_kernels
from inv_kernels.io import atomic_write_bytes, atomic_write_json
from inv_kernels.reporting import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/benchmarks (the asv suite) and the cases
import gpu_report_cases  # noqa: E402
import gpu_report_goals  # noqa: E402


class Timer:
    """Median milliseconds of a call, each repetition from a cold cache (a large buffer is written first)."""

    def __init__(self, device: torch.device, flush_bytes: int, warmup: int, repeats: int):
        self.device, self.warmup, self.repeats = device, warmup, repeats
        self.flush = torch.empty(flush_bytes, dtype=torch.uint8, device=device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _once(self, fn) -> float:
        self.flush.fill_(1)
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        begin = time.perf_counter()
        fn()
        return (time.perf_counter() - begin) * 1e3

    def median_ms(self, fn) -> float:
        first = self._once(fn)  # also the first warm-up: compilation, autotuning, allocator growth
        for _ in range(self.warmup - 1):
            self._once(fn)
        repeats = self.repeats if first < 1000 else min(self.repeats, 3)  # bound a slow baseline's share of the run
        return statistics.median(self._once(fn) for _ in range(repeats))

    def peak_mib(self, fn) -> float | None:
        if self.device.type != "cuda":
            return None
        self._sync()
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        fn()
        self._sync()
        return (torch.cuda.max_memory_allocated(self.device) - before) / 2**20


def _copy_ms(timer: Timer, n_bytes: int) -> float:
    src = torch.full((n_bytes,), 3, dtype=torch.uint8, device=timer.device)
    dst = torch.empty_like(src)
    return timer.median_ms(lambda: dst.copy_(src))


def measure_rates(timer: Timer, quick: bool) -> dict:
    """Copy bandwidth (GB/s) and matrix-product rates (TFLOP/s by dtype) of this device, measured now."""
    dev = timer.device
    gpu = dev.type == "cuda"
    n_bytes = (256 if quick else 2048) * 2**20 if gpu else (32 if quick else 256) * 2**20
    rates = {"copy_gbps": 2 * n_bytes / (_copy_ms(timer, n_bytes) * 1e-3) / 1e9, "matmul_tflops": {}}
    # Large enough to reach the peak rate; on a GPU quick runs halve them (on a CPU these are already small).
    sides = (
        {"float32": 8192, "bfloat16": 8192, "float64": 4096}
        if gpu
        else {"float32": 1024, "bfloat16": 512, "float64": 1024}
    )
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # the fastest float32 product the card offers bounds a float32 kernel
    try:
        for name, side in sides.items():
            side = side // 2 if quick and gpu else side
            a = torch.randn(side, side, device=dev).to(getattr(torch, name))
            ms = timer.median_ms(lambda: a @ a)
            rates["matmul_tflops"][name] = 2 * side**3 / (ms * 1e-3) / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return rates


def environment(device: torch.device) -> dict:
    """Card, date and versions, for the report's header."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    def command(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "n/a"

    def cpu_name() -> str:
        try:
            with open("/proc/cpuinfo") as info:
                return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        except (OSError, StopIteration):
            return platform.processor() or platform.machine()

    gpu = device.type == "cuda"
    driver = command("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader") if gpu else "n/a"
    return {
        "card": torch.cuda.get_device_name(device) if gpu else cpu_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "triton": version("triton"),
        "cuda": torch.version.cuda or "n/a",
        "driver": driver.splitlines()[0] if driver else "n/a",  # one line per GPU
        "inv_kernels": inv_kernels.__version__,
        "commit": command("git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"),
        "cpu_threads": torch.get_num_threads(),
    }


def run_case(case: gpu_report_cases.Case, timer: Timer, rates: dict) -> list[dict]:
    """One row per implementation of ``case`` (its baseline first)."""
    floor_ms = 1e3 * max(
        case.bytes / (rates["copy_gbps"] * 1e9), case.flops / (rates["matmul_tflops"][case.flops_dtype] * 1e12)
    )
    order = [case.baseline] + [name for name in case.impls if name != case.baseline]
    times, rows = {}, []
    for name in order:
        if name not in case.impls:
            continue
        row = {
            "kernel": case.kernel,
            "shape": case.shape,
            "dtype": case.dtype,
            "impl": name,
            "baseline": case.baseline,
            "bytes": case.bytes,
            "flops": case.flops,
            "floor_ms": floor_ms,
        }
        try:
            times[name] = timer.median_ms(case.impls[name])
            row.update(
                time_ms=times[name],
                pct_of_floor=100 * floor_ms / times[name],
                peak_mib=timer.peak_mib(case.impls[name]),
            )
        except Exception as error:  # one failing kernel must not hide the others; reported and counted
            row["error"] = f"{type(error).__name__}: {error}"
        rows.append(row)
    for row in rows:
        if case.baseline in times and "time_ms" in row:
            row["baseline_ms"] = times[case.baseline]
            row["speedup"] = times[case.baseline] / row["time_ms"]
    rows += [
        {"kernel": case.kernel, "shape": case.shape, "dtype": case.dtype, "impl": name, "skipped": why}
        for name, why in case.skipped.items()
    ]
    return rows


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    env, rates = report["environment"], report["rates"]
    mm = ", ".join(f"{k} {v:.3g}" for k, v in rates["matmul_tflops"].items())
    lines = [
        f"# Kernel report: {env['card']} ({report['device']}{', quick shapes' if report['quick'] else ''})",
        "",
        f"{env['date']}; torch {env['torch']}, torchvision {env['torchvision']}, triton {env['triton']}, CUDA "
        f"{env['cuda']}, driver {env['driver']}, Python {env['python']}, inv_kernels {env['inv_kernels']} "
        f"(commit {env['commit']}), {env['cpu_threads']} CPU threads.",
        "",
        f"Measured in this run: copy {rates['copy_gbps']:.4g} GB/s; matrix product (TFLOP/s) {mm}.",
        "Floor = max(bytes / copy bandwidth, FLOPs / product rate of the kernel's arithmetic dtype).",
        "",
    ]
    header = ["kernel", "shape", "dtype", "impl", "time (ms)", "baseline", "baseline (ms)", "speed-up", "floor (ms)"]
    header += ["% of floor", "peak (MiB)"]
    rows, skipped = [], {}
    for r in report["rows"]:
        head = [r["kernel"], r["shape"], r["dtype"], r["impl"]]
        if "skipped" in r:
            skipped.setdefault((r["impl"], r["skipped"]), set()).add(r["kernel"])
        elif "error" in r:
            rows.append(head + [f"**failed**: {r['error'][:200]}"] + [""] * 6)
        else:
            rows.append(
                head
                + [
                    f"{r['time_ms']:.4g}",
                    r["baseline"],
                    _fmt(r.get("baseline_ms"), ".4g"),
                    _fmt(r.get("speedup"), ".2f"),
                ]
                + [f"{r['floor_ms']:.3g}", f"{r['pct_of_floor']:.1f}", _fmt(r["peak_mib"], ".1f")]
            )
    lines.append(markdown_table(header, rows, align="llllrlrrrrr"))
    if skipped:
        lines += ["", "Not run here:", ""]
        lines += [f"- {impl} ({', '.join(sorted(kernels))}): {why}" for (impl, why), kernels in skipped.items()]
    lines += gpu_report_goals.markdown(report["goals"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke run; the CI test uses it)")
    parser.add_argument("--out", default="gpu_report.md", help="Markdown path; the JSON goes beside it (.json)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per call (default 20, quick 3)")
    parser.add_argument("--only", nargs="*", default=None, help="kernel families to run (e.g. infonce ntxent)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU (use --device cpu for a CPU run)")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the timing events record on the current device's stream
    families = [f for f in gpu_report_cases.ALL if args.only is None or f.__name__.removesuffix("_cases") in args.only]
    if not families:
        parser.error(
            f"--only matched no family; choose from "
            f"{' '.join(f.__name__.removesuffix('_cases') for f in gpu_report_cases.ALL)}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    repeats = args.repeats or (3 if args.quick else 20)
    flush = (256 if device.type == "cuda" else 8 if args.quick else 64) * 2**20  # above the L2 / last-level cache
    timer = Timer(device, flush, warmup=1 if args.quick else 3, repeats=repeats)
    report = {"device": str(device), "quick": args.quick, "repeats": repeats, "environment": environment(device)}
    report["rates"] = measure_rates(timer, args.quick)
    rows = []
    for family in families:
        for case in family(device, args.quick):
            print(f"{case.kernel} {case.shape} {case.dtype}", flush=True)
            rows += run_case(case, timer, report["rates"])
    report["rows"] = rows
    report["goals"] = gpu_report_goals.evaluate(report)
    text = markdown(report)
    atomic_write_bytes(text.encode(), out)
    atomic_write_json(report, out.with_suffix(".json"))
    print(text)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
