"""The two-view loader factory (``inv_kernels.data.loaders.two_view_loader``): the torchvision and DALI loaders give
batches of the same files in the same order, start an epoch at any step, and name a bad kind."""

import numpy as np
import pytest
import torch
from PIL import Image

from inv_kernels.data.folders import ImageFolderIndex
from inv_kernels.data.loaders import TWO_VIEW_LOADERS, two_view_loader
from inv_kernels.data.sampler import epoch_shares

SETTINGS = dict(out_size=8, batch_size=3, seed=4, rank=0, world_size=1, workers=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> ImageFolderIndex:
    """2 classes x 5 JPEGs of 12 x 10 pixels."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.RandomState(0)
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(5):
            Image.fromarray(rng.randint(0, 256, (10, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    return ImageFolderIndex(root)


def test_the_torchvision_loader_reads_the_sampler_order_and_resumes(index):
    loader = two_view_loader("torchvision", index, "default", **SETTINGS)
    assert loader.kind == "torchvision" and loader.skipped == 0 and loader.batches_per_epoch() == 3
    loader.set_epoch(2)
    batches = list(loader)
    share = epoch_shares(len(index), 1, seed=4, epoch=2)[0]
    assert [b["indices"].tolist() for b in batches] == [share[0:3], share[3:6], share[6:9]]
    assert all(b["views"].shape[1:] == (2, 3, 8, 8) for b in batches)
    loader.set_epoch(2, start_step=1)
    resumed = list(loader)
    assert len(resumed) == 2 and all(torch.equal(a["views"], b["views"]) for a, b in zip(batches[1:], resumed))


@pytest.mark.dali
def test_both_loaders_train_on_the_same_files_in_the_same_order(index):
    torchvision = two_view_loader("torchvision", index, "default", **SETTINGS)
    dali = two_view_loader("dali", index, "default", **SETTINGS)
    assert dali.kind == "dali" and dali.skipped == 0 and dali.batches_per_epoch() == 3
    for loader in (torchvision, dali):
        loader.set_epoch(1, start_step=1)
    paths = [[index.paths[i] for i in b["indices"].tolist()] for b in torchvision]
    dali_paths = [[dali.paths[i] for i in b["indices"].tolist()] for b in dali]
    assert len(paths) == 2 and dali_paths == paths


def test_a_bad_kind_is_named(index):
    assert TWO_VIEW_LOADERS == ("torchvision", "dali")
    with pytest.raises(ValueError, match="unknown loader 'ffcv'; expected one of torchvision, dali"):
        two_view_loader("ffcv", index, "default", **SETTINGS)
