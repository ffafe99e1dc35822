"""task_features: crop + clean preprocessing, dropping undecodable images consistently, and the fp16 disk cache
(read back without running the extractor; written atomically)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from inv_kernels.data import write_dataset
from inv_kernels.downstream import (
    cifar10_task,
    crop_image,
    generated_classification_task,
    task_features,
    w300_task,
)
from inv_kernels.downstream.features import CropViewDataset
from inv_kernels.measure.model import FeatureExtractor, ModelInfo


class Pool(nn.Module):
    """(B, 3, S, S) -> (B, 12): 2 x 2 average pool of the normalised image; counts its calls."""

    def __init__(self, nan: bool = False):
        super().__init__()
        self.calls, self.nan = 0, nan

    def forward(self, x):
        self.calls += 1
        out = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        return out * float("nan") if self.nan else out


def _extractor(model_id="fake.pt@0123456789abcdef", nan=False):
    module = Pool(nan)
    return FeatureExtractor(module, ModelInfo(model_id, "pool", 12, None, None), torch.device("cpu")), module


def _folder(root: Path, corrupt: bool = False) -> Path:
    rng = np.random.RandomState(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                path = root / split / c / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.randint(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)
    if corrupt:
        (root / "train" / "a" / "1.png").write_bytes(b"\x89PNG not really")
    return root


def test_cache_roundtrip_skips_extractor(tmp_path):
    task = cifar10_task(_folder(tmp_path / "d"), out_size=16)
    extractor, module = _extractor()
    first = task_features(extractor, task, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    calls = module.calls
    assert calls > 0 and not first.from_cache
    X, y, Xt, yt = first
    assert X.shape == (6, 12) and X.dtype == torch.float32 and Xt.shape == (4, 12)
    assert y.tolist() == [0, 0, 0, 1, 1, 1] and yt.tolist() == [0, 0, 1, 1]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].name.startswith("cifar10-") and files[0].suffix == ".pt"
    stored = torch.load(files[0], weights_only=True)
    assert stored["trainval"].dtype == torch.float16
    second = task_features(extractor, task, cache_dir=tmp_path / "cache", progress=False)
    assert second.from_cache and module.calls == calls
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # another model, or other preprocessing: another key
    other, other_module = _extractor("other.pt@ffff")
    task_features(other, task, cache_dir=tmp_path / "cache", progress=False)
    task_features(extractor, cifar10_task(tmp_path / "d", out_size=8), cache_dir=tmp_path / "cache", progress=False)
    assert other_module.calls > 0 and len(list((tmp_path / "cache").glob("*.pt"))) == 3


def test_features_match_a_direct_forward(tmp_path):
    task = cifar10_task(_folder(tmp_path / "d"), out_size=16)
    extractor, _ = _extractor()
    X, _, _, _ = task_features(extractor, task, use_cache=False, progress=False)
    from inv_kernels.data.folders import decode_rgb
    from inv_kernels.transforms import clean_view

    view = clean_view([decode_rgb(task.trainval[2].path)], out_size=16, resize_size=16)
    torch.testing.assert_close(X[2], extractor(view)[0].half().float())


def test_undecodable_images_dropped_from_x_and_y(tmp_path):
    task = cifar10_task(_folder(tmp_path / "d", corrupt=True), out_size=16)
    extractor, _ = _extractor()
    feats = task_features(extractor, task, cache_dir=tmp_path / "c", progress=False)
    X, y, Xt, yt = feats
    assert X.shape[0] == y.shape[0] == 5 and feats.skipped == {"trainval": 1, "test": 0}
    assert feats.kept_trainval.tolist() == [0, 2, 3, 4, 5]
    assert feats.skipped_paths == [task.trainval[1].path]
    assert y.tolist() == [0, 0, 1, 1, 1]
    again = task_features(extractor, task, cache_dir=tmp_path / "c", progress=False)
    assert again.from_cache and again.skipped == feats.skipped and again.y_trainval.tolist() == y.tolist()


def test_tiny_images_and_crops_are_skipped_with_their_reason(tmp_path):
    from inv_kernels.downstream import DownstreamTask, TaskItem

    root = _folder(tmp_path / "d")
    Image.new("RGB", (1, 1)).save(root / "train" / "a" / "tiny.jpg")
    Image.new("RGB", (1, 9)).save(root / "test" / "b" / "thin.jpg")
    good = str(root / "train" / "a" / "0.png")
    trainval = (
        TaskItem(good, 0),
        TaskItem(str(root / "train" / "a" / "tiny.jpg"), 0),
        TaskItem(good, 1, (2, 2, 3, 8)),
        TaskItem(str(root / "train" / "b" / "0.png"), 1),
    )
    test = (TaskItem(str(root / "test" / "a" / "0.png"), 0), TaskItem(str(root / "test" / "b" / "thin.jpg"), 1))
    task = DownstreamTask(
        "tiny", "classification", "accuracy", trainval, test, str(root), out_size=8, resize_size=8, classes=("a", "b")
    )
    feats = task_features(_extractor()[0], task, cache_dir=tmp_path / "c", progress=False)
    assert feats.kept_trainval.tolist() == [0, 3] and feats.kept_test.tolist() == [0]
    assert feats.skipped == {"trainval": 2, "test": 1}
    assert feats.skipped_files == {
        "trainval": [
            (trainval[1].path, "1x1 pixels (under 2x2)"),
            (good, "crop box (2, 2, 3, 8) is 1x6 pixels (under 2x2)"),
        ],
        "test": [(test[1].path, "1x9 pixels (under 2x2)")],
    }
    again = task_features(_extractor()[0], task, cache_dir=tmp_path / "c", progress=False)
    assert again.from_cache and again.skipped_files == feats.skipped_files


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    task = cifar10_task(_folder(tmp_path / "d"), out_size=16)
    extractor, _ = _extractor()
    real_save = torch.save

    def broken_save(obj, handle):
        handle.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        task_features(extractor, task, cache_dir=tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(torch, "save", real_save)
    # a damaged cache file is recomputed, with a warning
    feats = task_features(extractor, task, cache_dir=tmp_path / "cache", progress=False)
    feats.cache_path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        again = task_features(extractor, task, cache_dir=tmp_path / "cache", progress=False)
    assert not again.from_cache


def test_default_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "env"))
    task = cifar10_task(_folder(tmp_path / "d"), out_size=16)
    feats = task_features(_extractor()[0], task, progress=False)
    assert feats.cache_path.parent == tmp_path / "env" / "features" and feats.cache_path.is_file()


def test_errors(tmp_path):
    task = cifar10_task(_folder(tmp_path / "d"), out_size=16)
    with pytest.raises(ValueError, match=r"NaN/Inf features for .*0.png"):
        task_features(_extractor(nan=True)[0], task, use_cache=False, progress=False)
    with pytest.raises(TypeError, match="DownstreamTask"):
        task_features(_extractor()[0], "cifar10")


def test_landmark_lands_where_the_target_says(tmp_path):
    """A bright dot at landmark 5 of a 300W face ends up at the remapped target in the preprocessed crop."""
    pts = np.zeros((68, 2))
    pts[:, 0], pts[:, 1] = np.linspace(10, 50, 68), np.linspace(20, 50, 68)
    pts[5] = (30, 40)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[38:42, 28:32] = 255  # a 4 x 4 dot centred on (30, 40) in continuous coordinates
    for sub in ("01_Indoor", "02_Outdoor"):
        for i in range(2):
            (tmp_path / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / sub / f"f{i}.png")
            body = "\n".join(f"{x} {y}" for x, y in pts)
            (tmp_path / sub / f"f{i}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    for mode in ("paper", "corrected"):
        task = w300_task(tmp_path, mode=mode, out_size=32)
        item = task.trainval[0]
        view, _, _ = CropViewDataset((item,), out_size=32, resize_size=32)[0]  # (3, 32, 32)
        weight = view[0].double()
        ys, xs = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
        centroid = (float((weight * xs).sum() / weight.sum()), float((weight * ys).sum() / weight.sum()))
        np.testing.assert_allclose(centroid, item.target[10:12], atol=0.6)
    with pytest.raises(ValueError, match="keypoint targets in the frame of out_size=32"):
        task_features(_extractor()[0], task, out_size=16, use_cache=False, progress=False)


def test_crop_image_pads_outside():
    img = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    out = crop_image(img, (-1, 1, 3, 4))
    assert out.shape == (2, 3, 4)
    assert out[:, :, 0].eq(0).all() and out[:, 2, :].eq(0).all()
    torch.testing.assert_close(out[:, :2, 1:], img[:, 1:3, 0:3])


def test_generated_classification_features(tmp_path):
    root = write_dataset("classification", tmp_path / "gen", size=32, count=4, progress=False)
    task = generated_classification_task(root, out_size=32)
    X, y, Xt, yt = task_features(_extractor()[0], task, cache_dir=tmp_path / "c", progress=False)
    assert X.shape == (len(task.trainval), 12) and torch.isfinite(X).all() and len(yt) == len(task.test)
