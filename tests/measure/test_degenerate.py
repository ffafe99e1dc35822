"""Degenerate transform families: a family whose views all leave the clean image unchanged is reported as degenerate
(with the reason, a warning, in results.json, synthetic.csv and the printed table), not scored as perfect
invariance."""

import csv
import json

import pytest
import torch

from inv_kernels.data import write_dataset
from inv_kernels.measure.synthetic import DegenerateFamilyWarning, score_family
from inv_kernels.stats import FeatureStats
from inv_kernels.transforms.grids import degenerate_reason
from pipelines import measure as measure_cli


def test_translation_is_degenerate_only_when_the_crop_fills_the_resized_image():
    reason = degenerate_reason("translation", 32, 32)
    assert reason and "0 px" in reason and "32" in reason
    assert degenerate_reason("translation", 32, 36) is None
    assert degenerate_reason("rotation", 32, 32) is None and degenerate_reason("resized_crop", 32, 32) is None


def _stats(dim: int = 8) -> FeatureStats:
    return FeatureStats.from_features(torch.randn(64, dim, generator=torch.Generator().manual_seed(0)))


def test_views_equal_to_the_clean_view_are_degenerate_not_perfectly_invariant():
    clean = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    views = clean[:, None].repeat(1, 2, 1)  # both h_flip views equal the clean one
    with pytest.warns(DegenerateFamilyWarning, match="'h_flip' is degenerate"):
        result = score_family(clean, views, _stats(), "h_flip")
    assert result.degenerate and "unchanged" in result.degenerate
    assert result.cosine_mean is None and result.distance_mean is None
    views[:, 1] += 1.0  # the flipped view differs: scored as usual
    scored = score_family(clean, views, _stats(), "h_flip")
    assert scored.degenerate is None and scored.cosine_mean < 1.0


def test_translation_at_equal_crop_and_resize_sizes_is_degenerate_in_the_results(tmp_path, capsys):
    data = write_dataset("classification", tmp_path / "cls", size=16, count=1, progress=False)
    out = tmp_path / "out"
    args = ["--model", "random:resnet18", "--data", str(data), "--num-images", "1", "--transforms"]
    args += [
        "translation,h_flip",
        "--crop-size",
        "16",
        "--resize-size",
        "16",
        "--workers",
        "0",
        "--quiet",
        "--shrinkage",
        "ledoit_wolf",
    ]
    with pytest.warns(DegenerateFamilyWarning, match="'translation' is degenerate.*0 px"):
        assert measure_cli.main([*args, "--out", str(out), "--no-cache"]) == 0
    assert "| translation | spatial | 256 | degenerate | - |" in capsys.readouterr().out
    results = {r["family"]: r for r in json.loads((out / "results.json").read_text())["synthetic"]}
    assert "0 px" in results["translation"]["degenerate"] and results["translation"]["cosine_mean"] is None
    assert results["h_flip"]["degenerate"] is None and results["h_flip"]["cosine_mean"] is not None
    rows = {r["family"]: r for r in csv.DictReader((out / "synthetic.csv").open())}
    assert "0 px" in rows["translation"]["degenerate"] and rows["h_flip"]["degenerate"] == ""


def test_paper_mode_blur_is_degenerate_below_20_px():
    # paper mode's kernel is 1 + out_size // 20 * 2 pixels wide: 1 px (no blur at all) below a crop of 20 px
    reason = degenerate_reason("blur", 16, 18, mode="paper")
    assert reason and "1 px" in reason and "16" in reason
    assert degenerate_reason("blur", 32, 36, mode="paper") is None
    assert degenerate_reason("blur", 16, 18, mode="corrected") is None


def test_correlation_leaves_a_degenerate_family_out(tmp_path):
    from inv_kernels.correlation import invariance_table

    results = {"synthetic": [{"family": "blur", "cosine_mean": None}, {"family": "h_flip", "cosine_mean": 0.5}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert invariance_table([f"m={tmp_path / 'results.json'}"]) == {"m": {"h_flip": 0.5}}
