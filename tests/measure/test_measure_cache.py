"""The measurement feature cache: a rerun reads every entry and gives identical results without touching the files;
a changed family, image size or storage precision recomputes what it changes; fp32 storage for ill-conditioned
statistics; a damaged file is recomputed with a warning; ``use_cache=False`` reads and writes nothing."""

from pathlib import Path

import pytest
import torch

from inv_kernels.data import write_dataset
from inv_kernels.measure.cache import FP16_MAX_CONDITION
from inv_kernels.measure.driver import MeasureConfig, Measurement
from inv_kernels.stats import SingularCovarianceWarning

ALL_ENTRIES = ["measure-moments", "measure-clean", "measure-h_flip", "measure-invert", "measure-groups-coil-coil"]


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {
        "classification": write_dataset("classification", root / "cls", size=32, count=4, progress=False),
        "coil": write_dataset("coil", root / "coil", size=32, count=2, progress=False),
    }


def _run(tiny_sets, tmp_path, **overrides) -> dict:
    values = dict(
        model="random:resnet18",
        data=str(tiny_sets["classification"]),
        num_images=3,
        transforms=("h_flip", "invert"),
        groups=(f"{tiny_sets['coil']}:coil",),
        out=str(tmp_path / "out"),
        out_size=16,
        resize_size=18,
        workers=0,
        progress=False,
        shrinkage="ledoit_wolf",
        cache_dir=str(tmp_path / "cache"),
    )
    values.update(overrides)
    return Measurement(MeasureConfig(**values)).run()


def _numbers(results: dict) -> dict:
    return {key: results[key] for key in ("statistics", "synthetic", "realworld", "undecodable_images")}


def _storage(path: Path) -> str:
    return torch.load(path, weights_only=True)["config"]["storage"]


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_rerun_reads_the_cache_and_gives_identical_results(tiny_sets, tmp_path):
    first = _run(tiny_sets, tmp_path)
    assert first["feature_cache"]["read"] == [] and first["feature_cache"]["written"] == ALL_ENTRIES
    files = _mtimes(tmp_path / "cache")
    assert len(files) == len(ALL_ENTRIES)
    second = _run(tiny_sets, tmp_path, out=str(tmp_path / "again"))
    assert second["feature_cache"]["read"] == ALL_ENTRIES and second["feature_cache"]["written"] == []
    assert _mtimes(tmp_path / "cache") == files
    assert _numbers(second) == _numbers(first)  # exactly: the first run scored the stored fp16 features too


def test_a_changed_family_or_size_recomputes_what_changed(tiny_sets, tmp_path):
    _run(tiny_sets, tmp_path)
    family = _run(tiny_sets, tmp_path, transforms=("h_flip", "grayscale"))["feature_cache"]
    assert family["read"] == ["measure-moments", "measure-clean", "measure-h_flip", "measure-groups-coil-coil"]
    assert family["written"] == ["measure-grayscale"]
    size = _run(tiny_sets, tmp_path, out_size=20, resize_size=22)["feature_cache"]
    assert size["read"] == [] and size["written"] == ALL_ENTRIES
    mode = _run(tiny_sets, tmp_path, mode="corrected")["feature_cache"]
    assert "measure-h_flip" in mode["written"] and "measure-moments" in mode["read"]
    fp32 = _run(tiny_sets, tmp_path, cache_precision="float32")["feature_cache"]
    assert fp32["read"] == ["measure-moments"] and fp32["written"] == ALL_ENTRIES[1:]  # float64 moments: any storage


def test_auto_precision_stores_fp32_for_ill_conditioned_statistics(tiny_sets, tmp_path):
    shrunk = _run(tiny_sets, tmp_path)  # Ledoit-Wolf: well conditioned
    assert shrunk["statistics"]["condition_number"] < FP16_MAX_CONDITION
    assert shrunk["feature_cache"]["storage"] == "float16"
    # 24 statistics images for D = 512: rank-deficient, a tiny ridge, a huge condition number.
    with pytest.warns(SingularCovarianceWarning):
        singular = _run(tiny_sets, tmp_path, shrinkage="none")
    assert singular["statistics"]["condition_number"] > FP16_MAX_CONDITION
    cache = singular["feature_cache"]
    assert cache["storage"] == "float32" and cache["read"] == ["measure-moments"]
    for name in ALL_ENTRIES[1:]:
        (path,) = [p for p in (tmp_path / "cache").glob(f"{name}-*.pt") if _storage(p) == "float32"]
        assert torch.load(path, weights_only=True)["features"].dtype == torch.float32


def test_a_damaged_cache_file_is_recomputed_with_a_warning(tiny_sets, tmp_path):
    first = _run(tiny_sets, tmp_path)
    (damaged,) = (tmp_path / "cache").glob("measure-invert-*.pt")
    damaged.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        again = _run(tiny_sets, tmp_path)
    assert again["feature_cache"]["written"] == ["measure-invert"]
    assert _numbers(again) == _numbers(first)
    assert _run(tiny_sets, tmp_path)["feature_cache"]["written"] == []  # repaired


def test_without_cache_nothing_is_read_or_written(tiny_sets, tmp_path):
    results = _run(tiny_sets, tmp_path, use_cache=False)
    assert results["feature_cache"] == {"dir": None, "storage": "float16", "read": [], "written": []}
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ValueError, match="cache_precision must be auto, float16 or float32"):
        Measurement(
            MeasureConfig(
                model="random:resnet18",
                data=str(tiny_sets["classification"]),
                out=str(tmp_path / "o"),
                cache_precision="int8",
            )
        )


def test_the_cache_folder_is_made_private_and_stale_temporaries_removed_at_start(tmp_path):
    import os

    from inv_kernels.distributed import DistContext
    from inv_kernels.io import STALE_AFTER_S
    from inv_kernels.measure.cache import MeasureCache

    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    folder = tmp_path / "cache" / "features"
    cache = MeasureCache(folder, {"model_id": "m@0"}, ctx, verbose=False)
    entry = cache.get("measure-clean", {"images": "abc"}, lambda: {"features": torch.ones(2, 3)})
    assert torch.equal(entry["features"].float(), torch.ones(2, 3))
    assert folder.stat().st_mode & 0o777 == 0o700
    stale, fresh = folder / ".measure-x.pt.a1b2c3d4.tmp", folder / ".measure-y.pt.e5f6g7h8.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"x")
    old = os.path.getmtime(stale) - 2 * STALE_AFTER_S
    os.utime(stale, (old, old))
    MeasureCache(folder, {"model_id": "m@0"}, ctx, verbose=False)  # a new run starts on the folder
    assert not stale.exists() and fresh.exists()
