"""The forward pass's precision in measurement: "auto" resolves as pretraining does (bf16 autocast only where the CPU
has bfloat16 instructions), bf16 scores stay within the documented tolerance of fp32, and the precision is recorded in
the results and keys the feature cache."""

import json
from pathlib import Path

import pytest
import torch

import inv_kernels.precision as precision_module
from inv_kernels.data import write_dataset
from inv_kernels.measure.driver import MeasureConfig, Measurement
from inv_kernels.measure.model import load_extractor, resolve_forward_precision

# Largest difference of a family's mean whitened cosine, bf16 autocast against fp32 (docs/PERFORMANCE.md).
BF16_COSINE_TOLERANCE = 0.02
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return write_dataset("classification", tmp_path_factory.mktemp("cls") / "cls", size=32, count=2, progress=False)


def _config(tiny_set, tmp_path, **overrides) -> MeasureConfig:
    values = dict(
        model="random:resnet18",
        data=str(tiny_set),
        num_images=2,
        stats_images=12,
        transforms=("h_flip", "grayscale", "posterize"),
        out=str(tmp_path / "measure"),
        out_size=16,
        resize_size=18,
        device="cpu",
        workers=0,
        progress=False,
        shrinkage="ledoit_wolf",
        cache_dir=str(tmp_path / "cache"),
    )
    values.update(overrides)
    return MeasureConfig(**values)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_is_bf16_only_on_a_cpu_with_bf16_instructions(monkeypatch, has_bf16):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: has_bf16)
    expected = "bf16" if has_bf16 else "fp32"
    assert MeasureConfig(model="random:resnet18").precision == "auto"  # measurement's default
    assert resolve_forward_precision("auto", True, CPU) == expected
    assert resolve_forward_precision("auto", False, CPU) == "fp32"
    assert resolve_forward_precision(None, True, CPU) == "fp32"  # None: fp32 on the CPU, as before "auto"
    assert resolve_forward_precision("fp32", True, CPU) == "fp32"
    assert resolve_forward_precision("bf16", True, CPU) == "bf16"
    extractor = load_extractor("random:resnet18", device=CPU, image_size=16, precision="auto")
    assert extractor.info.precision == expected
    assert extractor.amp is has_bf16
    # The arithmetic used names the features, however it was chosen: statistics files and cached features of a bf16
    # run are never read for fp32 features.
    assert extractor.info.model_id.endswith("[precision=bf16]") is has_bf16


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        load_extractor("random:resnet18", device=CPU, image_size=16, precision="fp16")


def test_channels_last_features_equal_contiguous_ones():
    images = torch.rand(3, 3, 16, 16)
    contiguous = load_extractor("random:resnet18", device=CPU, image_size=16, precision="fp32", channels_last=False)
    channels_last = load_extractor("random:resnet18", device=CPU, image_size=16, precision="fp32", channels_last=True)
    assert channels_last.memory_format is torch.channels_last and contiguous.memory_format is torch.contiguous_format
    torch.testing.assert_close(channels_last(images), contiguous(images), rtol=1e-4, atol=1e-5)


def test_folded_batchnorm_gives_the_unfolded_features():
    images = torch.rand(3, 3, 16, 16)
    plain = load_extractor("random:resnet18", device=CPU, image_size=16, precision="fp32")
    folded = load_extractor("random:resnet18", device=CPU, image_size=16, precision="fp32", fold_bn=True)
    layer = load_extractor("random:resnet18", device=CPU, image_size=16, layer="layer3", fold_bn=True)
    assert folded.info.batchnorm_folded and not plain.info.batchnorm_folded
    assert not layer.info.batchnorm_folded  # a named layer's forward hook needs the model as it is
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.module.modules())
    torch.testing.assert_close(folded(images), plain(images), rtol=1e-4, atol=1e-4)


def test_bf16_scores_are_within_tolerance_of_fp32(tiny_set, tmp_path):
    runs = {
        p: Measurement(_config(tiny_set, tmp_path / p, precision=p, use_cache=False)).run() for p in ("fp32", "bf16")
    }
    for fp32, bf16 in zip(runs["fp32"]["synthetic"], runs["bf16"]["synthetic"]):
        if fp32["cosine_mean"] is None:  # a degenerate family is unscored in both
            assert bf16["cosine_mean"] is None
            continue
        assert abs(bf16["cosine_mean"] - fp32["cosine_mean"]) <= BF16_COSINE_TOLERANCE, fp32["family"]


def test_precision_is_recorded_and_keys_the_feature_cache(tiny_set, tmp_path):
    cache = str(tmp_path / "cache")
    fp32 = Measurement(_config(tiny_set, tmp_path / "a", precision="fp32", cache_dir=cache)).run()
    bf16 = Measurement(_config(tiny_set, tmp_path / "b", precision="bf16", cache_dir=cache)).run()
    again = Measurement(_config(tiny_set, tmp_path / "c", precision="bf16", cache_dir=cache)).run()
    assert fp32["model"]["precision"] == "fp32" and bf16["model"]["precision"] == "bf16"
    written = json.loads(Path(bf16["files"]["json"]).read_text())
    assert written["model"]["precision"] == "bf16"
    assert bf16["feature_cache"]["read"] == []  # nothing of the fp32 run is reused
    assert bf16["model"]["batchnorm_folded"]
    assert set(again["feature_cache"]["read"]) == set(bf16["feature_cache"]["written"])
