"""benchmarks/gpu_report.py end to end on the CPU (--quick): the table and JSON it writes, and its argument errors."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_report.py"


@pytest.fixture(scope="module")
def gpu_report():
    spec = importlib.util.spec_from_file_location("gpu_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def written(gpu_report, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sub" / "report.md"
    code = gpu_report.main(["--device", "cpu", "--quick", "--repeats", "1", "--out", str(out)])
    return code, out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_runs_every_family_against_its_baseline(written, gpu_report):
    code, _, report = written
    assert code == 0, [r["error"] for r in report["rows"] if "error" in r]
    timed = [r for r in report["rows"] if "time_ms" in r]
    kernels = {r["kernel"].split()[0] for r in timed}
    assert kernels == {"row_cosine", "invariance_scores", "group_invariance", "infonce", "ntxent", "fused_augment",
                       "stats"}
    for row in timed:
        assert row["time_ms"] > 0 and row["floor_ms"] > 0 and row["bytes"] > 0, row
        assert row["baseline_ms"] > 0 and row["speedup"] == pytest.approx(row["baseline_ms"] / row["time_ms"])
        assert row["pct_of_floor"] == pytest.approx(100 * row["floor_ms"] / row["time_ms"])
        assert row["peak_mib"] is None  # no allocator statistics on the CPU
    baselines = {r["kernel"].split()[0]: r["baseline"] for r in timed}
    assert baselines["fused_augment"] == "torchvision" and baselines["stats"] == "numpy"
    assert baselines["ntxent"] == "reference"
    # every baseline was itself timed in its case
    for row in timed:
        assert any(o["impl"] == row["baseline"] and o["kernel"] == row["kernel"] and o["shape"] == row["shape"]
                   and o["dtype"] == row["dtype"] for o in timed)


def test_rates_and_environment_are_recorded(written):
    _, _, report = written
    assert report["device"] == "cpu" and report["quick"] is True
    assert report["rates"]["copy_gbps"] > 0
    assert set(report["rates"]["matmul_tflops"]) == {"float32", "bfloat16", "float64"}
    assert all(v > 0 for v in report["rates"]["matmul_tflops"].values())
    env = report["environment"]
    assert env["torch"] == torch.__version__ and env["date"] and env["card"]


def test_markdown_table_matches_the_json(written):
    _, text, report = written
    assert text.startswith("# Kernel report: ")
    assert f"torch {torch.__version__}" in text and "copy " in text
    header = next(line for line in text.splitlines() if line.startswith("| kernel |"))
    for column in ("shape", "time (ms)", "baseline (ms)", "speed-up", "% of floor", "peak (MiB)"):
        assert column in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| kernel |")]
    assert len(rows) == sum("time_ms" in r for r in report["rows"])
    assert "Not run here:" in text and "triton" in text  # the interpreter is not timed


def test_bad_arguments(gpu_report, tmp_path):
    with pytest.raises(SystemExit):
        gpu_report.main(["--device", "cpu", "--only", "no_such_kernel", "--out", str(tmp_path / "r.md")])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_report.main(["--device", "cuda", "--out", str(tmp_path / "r.md")])
    assert not (tmp_path / "r.md").exists()


def test_tf32_rows_run_under_torchs_high_precision(gpu_report):
    import gpu_report_cases as cases

    seen = []
    wrapped = cases._under_precision("tf32", {"x": lambda: seen.append(torch.get_float32_matmul_precision())})
    previous = torch.get_float32_matmul_precision()
    wrapped["x"]()
    assert seen == ["high"] and torch.get_float32_matmul_precision() == previous
    plain = {"x": lambda: None}
    assert cases._under_precision("float32", plain) is plain
    assert cases._dtypes(False, tf32=True) == ["float32", "tf32", "bfloat16"] and cases._dtypes(True, tf32=True) == ["float32"]
    assert cases._torch_dtype("tf32") == torch.float32 and cases._flops_dtype("tf32") == "float32"
