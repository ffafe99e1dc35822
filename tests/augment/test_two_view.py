"""Two-view pretraining data: TwoViewDataset replay (seed, epoch, index) across workers, corrupt images skipped and
counted, the collate, MoCo's torchvision baseline, and a run over real CIFAR-10 JPEGs."""

import io

import numpy as np
import pytest
import torch
from fixtures.image_folders import class_folder
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import CenterCrop, ColorJitter, RandomApply, RandomResizedCrop, Resize

from inv_kernels.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentParams,
    PILGaussianBlur,
    TwoCropsTransform,
    TwoViewDataset,
    collate_two_views,
    fused_augment_ref,
    torchvision_recipe_transform,
)
from inv_kernels.data.folders import decode_rgb

S = 16
LOW = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)  # normalised value of 0, per channel
HIGH = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


@pytest.fixture
def folder(tmp_path):
    """root/{cat,dog}/: 3 + 2 small images and a stray text file (tests/fixtures/image_folders.py)."""
    return class_folder(tmp_path)


def _corrupt(folder):
    buf = io.BytesIO()
    Image.fromarray(np.random.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    (folder / "dog" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "cat" / "garbage.jpg").write_bytes(b"this is not a jpeg" * 8)


def test_a_missing_folder_is_named_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TwoViewDataset(tmp_path / "missing", "default", S)


def test_item_layout_and_replay(folder):
    ds = TwoViewDataset(folder, "default", S, seed=3)
    item = ds[3]
    assert item["views"].shape == (2, 3, S, S) and item["views"].dtype == torch.float32
    assert isinstance(item["params"], AugmentParams) and len(item["params"]) == 2
    assert (item["label"], item["index"]) == (1, 3)
    # the views are exactly fused_augment_ref of the returned params: the batch hands back what it used
    img = decode_rgb(ds.index.paths[3])
    torch.testing.assert_close(fused_augment_ref([img, img], item["params"], S), item["views"], atol=0, rtol=0)


def test_determinism_seed_epoch_index(folder):
    a, b = TwoViewDataset(folder, "default", S, seed=7), TwoViewDataset(folder, "default", S, seed=7)
    for i in range(len(a)):
        torch.testing.assert_close(a[i]["views"], b[i]["views"], atol=0, rtol=0)
    first = a[2]["views"]
    assert not torch.equal(first[0], first[1])  # the two views differ
    a.set_epoch(1)
    assert a.epoch == 1 and not torch.equal(a[2]["views"], first)
    a.set_epoch(0)
    torch.testing.assert_close(a[2]["views"], first, atol=0, rtol=0)  # exact resume
    assert not torch.equal(TwoViewDataset(folder, "default", S, seed=8)[2]["views"], first)
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        a.set_epoch(-1)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        TwoViewDataset(folder, "default", S, seed=-2)
    with pytest.raises(ValueError, match="3 positive std values"):
        TwoViewDataset(folder, "default", S, std=(0.2, 0.2))
    with pytest.raises(ValueError, match="unknown recipe op"):
        TwoViewDataset(folder, "grayscale:p=0.2,rotate", S)
    with pytest.raises(IndexError, match="out of range"):
        a[len(a)]


def test_workers_and_persistent_epochs_do_not_change_views(folder):
    def run(workers):
        ds = TwoViewDataset(folder, "spatial", S, seed=1)
        loader = DataLoader(
            ds,
            batch_size=2,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate_two_views,
            persistent_workers=workers > 0,
        )
        out = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            out.append(torch.cat([batch["views"] for batch in loader]))
        return out

    serial, parallel = run(0), run(2)
    for e in range(2):
        torch.testing.assert_close(parallel[e], serial[e], atol=0, rtol=0)
    assert not torch.equal(serial[0], serial[1])


def test_corrupt_images_are_skipped_and_counted(folder):
    _corrupt(folder)
    ds = TwoViewDataset(folder, "default", S, seed=0)
    assert len(ds) == 7
    items = [ds[i] for i in range(len(ds))]
    markers = [it for it in items if it.get("skipped")]
    assert len(markers) == 2 and ds.skipped == 2
    assert {m["path"].rsplit("/", 1)[1] for m in markers} == {"truncated.jpg", "garbage.jpg"}
    assert all(m["error"] for m in markers)
    loader = DataLoader(ds, batch_size=3, shuffle=False, collate_fn=collate_two_views)
    batches = list(loader)
    assert sum(b["skipped"] for b in batches) == 2
    assert sum(b["views"].shape[0] for b in batches) == 5
    for b in batches:
        n = b["views"].shape[0]
        assert b["views"].shape == (n, 2, 3, S, S) and b["labels"].shape == (n,) and b["indices"].shape == (n,)
        if n:
            assert len(b["params"]) == 2 * n
    # a batch of only skipped items still collates, with no views
    empty = collate_two_views(markers)
    assert empty["views"].shape == (0, 2, 3, S, S) and empty["skipped"] == 2 and empty["params"] is None
    with pytest.raises(ValueError, match="empty batch"):
        collate_two_views([])


def test_collate_params_follow_views(folder):
    ds = TwoViewDataset(folder, "default", S, seed=0)
    batch = collate_two_views([ds[0], ds[4]])
    assert batch["params"].as_dict() == AugmentParams.cat([ds[0]["params"], ds[4]["params"]]).as_dict()
    assert batch["indices"].tolist() == [0, 4] and batch["labels"].tolist() == [0, 1]


@pytest.mark.parametrize("recipe", ["default", "spatial", "appearance"])
def test_torchvision_baseline(folder, recipe):
    transform = torchvision_recipe_transform(recipe, S)
    names = [type(t).__name__ for t in transform.transforms]
    assert names[-2:] == ["ToTensor", "Normalize"]
    if recipe == "appearance":
        assert names[-4:-2] == ["Resize", "CenterCrop"] and "RandomHorizontalFlip" not in names
        assert isinstance(transform.transforms[-4], Resize) and isinstance(transform.transforms[-3], CenterCrop)
    else:
        crop = transform.transforms[0]
        assert isinstance(crop, RandomResizedCrop) and crop.scale == (0.2, 1.0) and names[-3] == "RandomHorizontalFlip"
    if recipe != "spatial":
        jitter = transform.transforms[0 if recipe == "appearance" else 1]
        assert isinstance(jitter, RandomApply) and jitter.p == 0.8 and isinstance(jitter.transforms[0], ColorJitter)
        blur = transform.transforms[names.index("RandomApply", names.index("RandomGrayscale"))]
        assert isinstance(blur.transforms[0], PILGaussianBlur) and blur.p == 0.5
    data = ImageFolder(str(folder), transform=TwoCropsTransform(transform))
    views, label = next(iter(DataLoader(data, batch_size=5)))
    assert len(views) == 2 and views[0].shape == (5, 3, S, S) and label.tolist() == [0, 0, 0, 1, 1]
    if recipe != "appearance":
        assert not torch.equal(views[0], views[1])


@pytest.mark.realdata
def test_real_cifar10_jpegs(real_data_cache):
    ds = TwoViewDataset(real_data_cache / "cifar10" / "test", "default", 32, seed=0)
    assert len(ds) == 10_000 and len(ds.classes) == 10
    batch = collate_two_views([ds[i] for i in range(500, 10_000, 1000)])  # one per class
    views = batch["views"]
    assert views.shape == (10, 2, 3, 32, 32) and batch["skipped"] == 0
    assert bool(torch.isfinite(views).all())
    low, high = LOW.view(1, 1, 3, 1, 1), HIGH.view(1, 1, 3, 1, 1)
    assert bool((views >= low - 1e-5).all() and (views <= high + 1e-5).all())
    assert abs(views.mean().item()) < 1.0 and 0.3 < views.std().item() < 2.0
    assert all(not torch.equal(v[0], v[1]) for v in views)
    assert batch["labels"].tolist() == list(range(10))


@pytest.mark.realdata
def test_real_tinyimagenet_greyscale_becomes_rgb(real_data_cache):
    root = real_data_cache / "tinyimagenet100" / "val"
    ds = TwoViewDataset(root, "appearance", 32, seed=0)
    item = ds[0]
    assert item["views"].shape == (2, 3, 32, 32) and bool(torch.isfinite(item["views"]).all())
    # appearance views share their framing: the same centre box in both
    p = item["params"]
    assert p.crop_top.tolist()[0] == p.crop_top.tolist()[1] and p.crop_height.tolist() == [64, 64]
