"""pipelines.transfer on tiny generated tasks: single models and fusions, tables and files, bad input."""

import json

import pytest

from inv_kernels.data import write_dataset
from inv_kernels.transfer import model_combinations
from pipelines import transfer


@pytest.fixture(scope="module")
def tiny_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return {
        "generated_classification": write_dataset("classification", root / "cls", size=32, count=5, progress=False),
        "generated_latents": write_dataset("latents", root / "lat", size=32, count=5, progress=False),
    }


def test_transfer_runs_models_and_fusions_and_writes_tables(tiny_tasks, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    args = [
        "--models",
        "a=random:resnet18,b=random:resnet34",
        "--fusion",
        "cat,weighted",
        "--image-size",
        "32",
        "--folds",
        "3",
        "--out",
        str(tmp_path / "out"),
    ]
    for name, root in tiny_tasks.items():
        args += ["--task", f"{name}:{root}"]
    assert transfer.main(args) == 0
    results = json.loads((tmp_path / "out" / "transfer.json").read_text())["results"]
    seen = {(r["model"], r["fusion"], r["task"]) for r in results}
    for task in tiny_tasks:
        assert {("a", "single", task), ("b", "single", task), ("a+b", "cat", task), ("a+b", "weighted", task)} <= seen
    by_key = {(r["model"], r["fusion"], r["task"]): r for r in results}
    cat = by_key[("a+b", "cat", "generated_classification")]
    assert cat["feature_dim"] == 512 + 512 and cat["metric"] == "accuracy" and 0 <= cat["test_score"] <= 1
    assert by_key[("a", "single", "generated_latents")]["metric"] == "r2"
    weighted = by_key[("a+b", "weighted", "generated_latents")]["weights"]
    assert len(weighted) == 2 and sum(weighted) == pytest.approx(1.0)
    for name in ("transfer.csv", "transfer.md", "transfer.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| a+b | cat |" in capsys.readouterr().out


def test_combinations_and_bad_input(tmp_path, capsys):
    assert model_combinations(["a", "b", "c"], "all")[3:] == [("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    assert model_combinations(["a", "b"], "none") == [("a",), ("b",)]
    with pytest.raises(ValueError, match="needs 2 or more of the models a, b"):
        model_combinations(["a", "b"], "a+z")
    assert transfer.main(["--models", "a=random:resnet18", "--task", "nosuch:/x", "--out", str(tmp_path)]) == 2
    assert "unknown task 'nosuch'" in capsys.readouterr().err
    assert transfer.main(["--models", "a=random:resnet18,a=random:resnet18", "--out", str(tmp_path)]) == 2
    assert "given twice" in capsys.readouterr().err
