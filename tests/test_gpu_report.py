"""benchmarks/gpu_report.py end to end on the CPU (--quick): the table and JSON it writes, and its argument errors."""

import importlib.util
import json
import re
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
    assert kernels == {
        "row_cosine",
        "invariance_scores",
        "group_invariance",
        "infonce",
        "ntxent",
        "fused_augment",
        "stats",
    }
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
        assert any(
            o["impl"] == row["baseline"]
            and o["kernel"] == row["kernel"]
            and o["shape"] == row["shape"]
            and o["dtype"] == row["dtype"]
            for o in timed
        )


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
    kernel_table = text.split("## Speed and memory goals")[0]
    rows = [line for line in kernel_table.splitlines() if line.startswith("| ") and not line.startswith("| kernel |")]
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
    assert cases._dtypes(False, tf32=True) == ["float32", "tf32", "bfloat16"] and cases._dtypes(True, tf32=True) == [
        "float32"
    ]
    assert cases._torch_dtype("tf32") == torch.float32 and cases._flops_dtype("tf32") == "float32"


def test_goal_verdicts(gpu_report, written):
    import gpu_report_goals as goals

    _, text, report = written
    assert "## Speed and memory goals" in text
    assert {v["verdict"] for v in report["goals"]} == {"not measured"}  # a quick CPU run measures no H100 goal
    assert all(v["part"] in goals.PARTS for v in report["goals"])
    # A made-up GPU report: the scoring goal met by triton (tf32 row), missed in bfloat16; NT-Xent under the time
    # but over the memory; Inf-CL beaten on time only.
    rows = [
        {
            "kernel": "invariance_scores",
            "shape": "1000x256x2048",
            "dtype": "float32",
            "impl": "reference",
            "time_ms": 15.0,
        },
        {"kernel": "invariance_scores", "shape": "1000x256x2048", "dtype": "float32", "impl": "triton", "time_ms": 9.0},
        {"kernel": "invariance_scores", "shape": "1000x256x2048", "dtype": "tf32", "impl": "triton", "time_ms": 6.0},
        {"kernel": "invariance_scores", "shape": "1000x256x2048", "dtype": "bfloat16", "impl": "cuda", "time_ms": 4.0},
        {
            "kernel": "ntxent fwd+bwd",
            "shape": "32768x128",
            "dtype": "tf32",
            "impl": "triton",
            "time_ms": 10.0,
            "peak_mib": 900.0,
        },
        {
            "kernel": "contrastive N x N logits (vs Inf-CL)",
            "shape": "32768x32768x128",
            "dtype": "float32",
            "impl": "triton",
            "time_ms": 20.0,
            "peak_mib": 500.0,
        },
        {
            "kernel": "contrastive N x N logits (vs Inf-CL)",
            "shape": "32768x32768x128",
            "dtype": "float32",
            "impl": "inf-cl",
            "time_ms": 28.4,
            "peak_mib": 340.0,
        },
        {
            "kernel": "fused_augment (2 views, default)",
            "shape": "256x256x256->224",
            "dtype": "bfloat16",
            "impl": "cuda",
            "time_ms": 0.4,
        },
    ]
    verdicts = {v["goal"]: v for v in goals.evaluate({"device": "cuda:0", "quick": False, "rows": rows})}
    by_start = lambda text: next(v for g, v in verdicts.items() if g.startswith(text))  # noqa: E731
    fp32 = by_start("scores n=1000, k=256, D=2048 in <= 8 ms")
    assert fp32["verdict"] == "met" and fp32["best"]["dtype"] == "tf32" and fp32["best"]["time_ms"] == 6.0
    assert by_start("scores n=1000, k=256, D=2048 in <= 3.5 ms")["verdict"] == "NOT met"
    assert by_start("NT-Xent N=32768")["verdict"] == "NOT met"  # 900 MiB > 512
    assert by_start("NT-Xent N=4096")["verdict"] == "not measured"
    assert by_start("beat Inf-CL")["verdict"] == "NOT met"  # faster, but more memory
    assert by_start(">= 1,000,000")["verdict"] == "met"  # 512 views in 0.4 ms: 1.28 M views/s
    lines = goals.markdown(list(verdicts.values()))
    assert any("**NOT met**" in line for line in lines)
    assert "| part | goal |" in "\n".join(lines) and not re.search(r"#\d", "\n".join(lines))


def test_goals_name_shapes_the_full_report_runs(gpu_report):
    import gpu_report_cases as cases
    import gpu_report_goals as goals

    timed = [g for g in goals.GOALS if g.elsewhere is None]
    assert timed
    for goal in timed:
        full, _quick = cases.SHAPES[goal.kernel]
        assert goal.shape in full, (goal.text, goal.shape, full)


def test_rows_carry_the_shared_work_formulas(written):
    from benchmarks import _workloads as work

    _, _, report = written
    elem = {"float32": 4, "tf32": 4, "bfloat16": 2}
    expected = {
        "row_cosine fwd+bwd": lambda m, d, e: (
            work.row_cosine_bytes(m, d, e, backward=True),
            work.row_cosine_flops(m, d),
        ),
        "invariance_scores": lambda n, k, d, e: (
            work.invariance_scores_bytes(n, k, d, e),
            work.invariance_scores_flops(n, k, d),
        ),
        "group_invariance": lambda g, k, d, e: (
            work.group_invariance_bytes(g, k, d),
            work.group_invariance_flops(g, k, d),
        ),
        "infonce fwd+bwd": lambda n, k, d, e: (work.contrastive_bytes(2 * n, k, d, e), work.contrastive_flops(n, k, d)),
        "ntxent fwd+bwd": lambda n, d, e: (
            work.contrastive_bytes(2 * n, 0, d, e),
            work.contrastive_flops(2 * n, 2 * n, d),
        ),
        "stats moments": lambda n, d, e: (work.stats_moments_bytes(n, d), work.stats_moments_flops(n, d)),
        "stats whiten": lambda n, d, e: (work.stats_whiten_bytes(n, d), work.stats_whiten_flops(n, d)),
    }
    checked = set()
    for row in report["rows"]:
        if row["kernel"] in expected and "time_ms" in row:
            assert (row["bytes"], row["flops"]) == expected[row["kernel"]](*work.dims(row["shape"]), elem[row["dtype"]])
            checked.add(row["kernel"])
    assert checked == set(expected)
