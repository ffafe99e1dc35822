"""``python -m pipelines.measure`` under ``torchrun --nproc_per_node 2`` (gloo, CPU) against one process: the same
statistics and scores, one set of outputs; a cache written by two processes is read by one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inv_kernels.data import write_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENTRIES = ["measure-moments", "measure-clean", "measure-h_flip", "measure-rotation", "measure-groups-coil-coil"]


@pytest.fixture(scope="module")
def args(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("sets")
    classification = write_dataset("classification", root / "cls", size=32, count=4, progress=False)
    coil = write_dataset("coil", root / "coil", size=32, count=2, progress=False)
    # 5 images split 2 + 3; batches of 4 group images differently in one and two processes.
    return [
        "--model",
        "random:resnet18",
        "--data",
        str(classification),
        "--num-images",
        "5",
        "--transforms",
        "h_flip,rotation",
        "--groups",
        f"{coil}:coil",
        "--crop-size",
        "16",
        "--resize-size",
        "18",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--shrinkage",
        "ledoit_wolf",
        "--quiet",
    ]


def _run(args: list[str], out: Path, processes: int) -> tuple[dict, str]:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    launcher = launcher if processes > 1 else []
    done = subprocess.run(
        [sys.executable, *launcher, "-m", "pipelines.measure", *args, "--out", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), done.stdout


def _numbers(results: dict) -> list[float]:
    """Every number of the statistics, synthetic and real-world results, in a fixed order."""
    found: list[float] = []

    def walk(value):
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append(float(value))

    walk([results["statistics"], results["synthetic"], results["realworld"], results["undecodable_images"]])
    return found


def test_two_processes_give_the_one_process_results(args, tmp_path):
    one, _ = _run([*args, "--no-cache"], tmp_path / "one", 1)
    two, printed = _run([*args, "--no-cache"], tmp_path / "two", 2)
    assert two["settings"]["world_size"] == 2 and one["settings"]["world_size"] == 1
    assert two["settings"]["num_images"] == one["settings"]["num_images"] == 5
    assert two["statistics"]["count"] == one["statistics"]["count"] > 0
    a, b = np.array(_numbers(one)), np.array(_numbers(two))
    assert a.shape == b.shape and a.size > 500
    # Scores are float32 arithmetic: relative 1e-6, and 1e-7 absolute for cosines that cancel to nearly 0.
    bad = ~np.isclose(b, a, rtol=1e-6, atol=1e-7)
    assert not bad.any(), f"{bad.sum()} of {a.size} numbers differ; worst {np.abs(a - b).max():.3g}"
    assert printed.count("| h_flip |") == 1  # only the main process prints (and writes)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_cache_written_by_two_processes_is_read_by_one(args, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    two, _ = _run([*args, *cache], tmp_path / "two", 2)
    assert two["feature_cache"]["written"] == ENTRIES
    one, _ = _run([*args, *cache], tmp_path / "one", 1)
    assert one["feature_cache"]["read"] == ENTRIES and one["feature_cache"]["written"] == []
    assert _numbers(one) == _numbers(two)
