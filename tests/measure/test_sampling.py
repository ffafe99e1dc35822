"""How the synthetic measurement draws its images: with replacement in paper mode (the reference code), without in
corrected mode, the same images in both with ``same_images``; results.json says which."""

import json
from pathlib import Path

import numpy as np
import pytest

from inv_kernels.data import write_dataset
from inv_kernels.measure.driver import MeasureConfig, Measurement
from inv_kernels.measure.synthetic import sample_images
from pipelines import measure as measure_cli


def test_paper_mode_draws_with_replacement_as_the_reference_code():
    chosen, record = sample_images(20, 15, mode="paper", seed=3)
    np.random.seed(3)
    assert chosen == np.random.choice(20, 15).tolist()  # eval_synthetic_invariance.py: np.random.choice
    assert len(set(chosen)) < len(chosen)  # repeats
    assert record == {
        "mode": "with_replacement",
        "seed": 3,
        "same_images": False,
        "requested": 15,
        "drawn": 15,
        "unique": len(set(chosen)),
    }


def test_corrected_mode_draws_without_replacement():
    chosen, record = sample_images(20, 15, mode="corrected", seed=3)
    assert len(set(chosen)) == 15 and chosen == sorted(chosen)
    assert record["mode"] == "without_replacement" and record["unique"] == 15
    assert sample_images(5, 15, mode="corrected", seed=3)[1]["drawn"] == 5  # never more than there are


def test_same_images_draws_the_same_images_in_both_modes():
    paper, paper_record = sample_images(20, 15, mode="paper", seed=3, same_images=True)
    corrected, corrected_record = sample_images(20, 15, mode="corrected", seed=3, same_images=True)
    assert paper == corrected and len(set(paper)) == 15
    assert paper_record == corrected_record and paper_record["same_images"] is True
    assert paper_record["mode"] == "without_replacement"
    with pytest.raises(ValueError, match="mode must be"):
        sample_images(20, 15, mode="fixed", seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_dataset(
        "classification", tmp_path_factory.mktemp("sampling") / "cls", size=16, count=2, progress=False
    )


def _config(data: Path, tmp_path: Path, mode: str, **overrides) -> MeasureConfig:
    values = dict(
        model="random:resnet18",
        data=str(data),
        num_images=6,
        transforms=("h_flip",),
        mode=mode,
        groups=(),
        out=str(tmp_path / f"out-{mode}"),
        out_size=16,
        resize_size=16,
        workers=0,
        progress=False,
        shrinkage="ledoit_wolf",
        cache_dir=str(tmp_path / "cache"),
    )
    values.update(overrides)
    return MeasureConfig(**values)


def test_results_record_the_sampling_and_same_images_measures_one_image_set(tiny_data, tmp_path):
    paper = Measurement(_config(tiny_data, tmp_path, "paper", same_images=True)).run()
    assert paper["sampling"] == {
        "mode": "without_replacement",
        "seed": 0,
        "same_images": True,
        "requested": 6,
        "drawn": 6,
        "unique": 6,
    }
    assert json.loads(Path(paper["files"]["json"]).read_text())["sampling"] == paper["sampling"]
    corrected = Measurement(_config(tiny_data, tmp_path, "corrected", same_images=True)).run()
    assert corrected["sampling"] == paper["sampling"]
    assert "measure-clean" in corrected["feature_cache"]["read"]  # the paper run's clean views: the same images


def test_cli_same_images_flag(tiny_data, tmp_path):
    out = tmp_path / "cli"
    code = measure_cli.main(
        [
            "--model",
            "random:resnet18",
            "--data",
            str(tiny_data),
            "--num-images",
            "4",
            "--transforms",
            "h_flip",
            "--crop-size",
            "16",
            "--resize-size",
            "16",
            "--workers",
            "0",
            "--shrinkage",
            "ledoit_wolf",
            "--no-cache",
            "--quiet",
            "--same-images",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    sampling = json.loads((out / "results.json").read_text())["sampling"]
    assert sampling["same_images"] is True and sampling["mode"] == "without_replacement"
