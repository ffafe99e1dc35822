"""The measurement driver end to end on tiny generated data: a pretraining checkpoint (or a random network) and
image folders -> statistics, synthetic invariance per family, real-world groups, JSON/CSV/PNG results."""

import json
from pathlib import Path

import pytest
import torch

from inv_kernels.data import write_dataset
from inv_kernels.measure.driver import MeasureConfig, Measurement
from inv_kernels.train import PretrainConfig, Trainer
from pipelines import measure as measure_cli


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {
        "classification": write_dataset("classification", root / "cls", size=32, count=6, progress=False),
        "coil": write_dataset("coil", root / "coil", size=32, count=2, progress=False),
    }


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_sets, module_tmp_path) -> Path:
    out = module_tmp_path / "pretrain"
    config = PretrainConfig(
        data=str(tiny_sets["classification"]),
        out=str(out),
        image_size=16,
        batch_size=8,
        bn_splits=2,
        queue_size=64,
        moco_dim=16,
        workers=0,
        epochs=1,
        max_steps=2,
        knn_every=-1,
    )
    Trainer(config, progress=False).run()
    return out / "checkpoint_last.pth.tar"


def _config(tiny_sets, tmp_path, **overrides) -> MeasureConfig:
    values = dict(
        model="random:resnet18",
        data=str(tiny_sets["classification"]),
        num_images=3,
        transforms=("h_flip", "grayscale", "rotation"),
        groups=(f"{tiny_sets['coil']}:coil",),
        out=str(tmp_path / "measure"),
        out_size=16,
        resize_size=18,
        workers=0,
        progress=False,
        shrinkage="ledoit_wolf",
        cache_dir=str(tmp_path / "cache"),
    )
    values.update(overrides)
    return MeasureConfig(**values)


def test_measure_reads_a_pretraining_checkpoint_and_writes_results(tiny_sets, tiny_checkpoint, tmp_path):
    results = Measurement(
        _config(tiny_sets, tmp_path, model=str(tiny_checkpoint), out_size=None, resize_size=None)
    ).run()
    assert results["model"]["arch"] == "resnet18" and results["model"]["image_size"] == 16
    assert results["settings"]["out_size"] == 16  # the checkpoint's training size
    rows = {r["family"]: r for r in results["synthetic"]}
    assert set(rows) == {"h_flip", "grayscale", "rotation"}
    assert rows["rotation"]["k"] == 256 and rows["h_flip"]["k"] == 2
    for r in rows.values():
        assert -1.0 <= r["cosine_mean"] <= 1.0 and r["distance_mean"] >= 0
    # Binary families include the identity: per-value cosine 1 and distance 0 at "off", so the summary is (1 + s) / 2.
    flip = rows["h_flip"]
    assert flip["cosine_per_value"][0] == pytest.approx(1.0, abs=1e-4)
    assert flip["distance_per_value"][0] == pytest.approx(0.0, abs=1e-2)
    assert flip["cosine_mean"] == pytest.approx((1 + flip["cosine_per_value"][1]) / 2, abs=1e-6)
    (group_set,) = results["realworld"]
    assert group_set["num_groups"] == 2 and group_set["cosine_off_diagonal"] <= group_set["cosine_with_diagonal"]
    out = Path(results["files"]["json"]).parent
    for name in ("results.json", "synthetic.csv", "synthetic.png", "realworld.csv", "feature_stats.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["synthetic"][0]["family"] == "h_flip"


def test_cli_prints_tables(tiny_sets, tmp_path, capsys):
    code = measure_cli.main(
        [
            "--model",
            "random:resnet18",
            "--data",
            str(tiny_sets["classification"]),
            "--num-images",
            "2",
            "--transforms",
            "invert,posterize",
            "--crop-size",
            "16",
            "--resize-size",
            "18",
            "--workers",
            "0",
            "--shrinkage",
            "ledoit_wolf",
            "--out",
            str(tmp_path / "cli"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| invert | appearance | 2 |" in printed and "posterize" in printed


def test_bad_input_is_reported_before_work(tiny_sets, tmp_path):
    with pytest.raises(ValueError, match="unknown transform family 'swirl'"):
        Measurement(_config(tiny_sets, tmp_path, transforms=("swirl",)))
    with pytest.raises(ValueError, match="unknown mode"):
        Measurement(_config(tiny_sets, tmp_path, mode="loose"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Measurement(_config(tiny_sets, tmp_path, data=str(tmp_path / "nothing")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Measurement(_config(tiny_sets, tmp_path, model=str(tmp_path / "none.pth")))


def test_statistics_from_another_model_are_refused(tiny_sets, tmp_path):
    first = Measurement(_config(tiny_sets, tmp_path, transforms=("invert",), groups=()))
    first.run()
    stats_file = Path(first.out) / "feature_stats.pt"
    other = _config(
        tiny_sets,
        tmp_path,
        model="random:resnet18",
        seed=1,
        transforms=("invert",),
        groups=(),
        stats_file=str(stats_file),
    )
    with pytest.raises(ValueError, match="random:resnet18:seed0"):
        Measurement(other).run()


def test_identity_views_score_one_and_zero(tiny_sets, tmp_path):
    # Rotation by 0 degrees is the grid's first value: cosine 1 and distance 0 image by image.
    results = Measurement(_config(tiny_sets, tmp_path, transforms=("rotation",), groups=())).run()
    rotation = results["synthetic"][0]
    assert rotation["cosine_per_value"][0] == pytest.approx(1.0, abs=1e-4)
    assert rotation["distance_per_value"][0] == pytest.approx(0.0, abs=1e-2)
    assert torch.tensor(rotation["cosine_per_value"][1:]).lt(1.0 - 1e-6).any()
