"""Image folders (``inv_kernels.data.folders``): ImageFolderIndex scanning and its errors, decoding to RGB, the
train/held-out split of a folder; the clean-view dataset that measurement, the kNN monitor and the probes read."""

import pytest
import torch
from fixtures.image_folders import class_folder, write_image

from inv_kernels.data.clean_views import CleanViewDataset, collate_skipping
from inv_kernels.data.folders import ImageFolderIndex, decode_rgb, split_folders


@pytest.fixture
def folder(tmp_path):
    """root/{cat,dog}/: 3 + 2 small images and a stray text file (tests/fixtures/image_folders.py)."""
    return class_folder(tmp_path)


def test_index_scans_sorted_case_insensitive(folder):
    index = ImageFolderIndex(folder)
    assert index.classes == ("cat", "dog") and len(index) == 5
    assert [p.rsplit("/", 1)[1] for p in index.paths] == ["a.jpg", "b.PNG", "c.jpeg", "d.JPEG", "e.jpg"]
    assert index.labels == (0, 0, 0, 1, 1)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderIndex(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        ImageFolderIndex(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        ImageFolderIndex(tmp_path / "empty")
    flat = tmp_path / "flat"
    flat.mkdir()
    write_image(flat / "x.jpg", 8, 8)
    with pytest.raises(ValueError, match=r"has no class subfolders .*'x.jpg'"):
        ImageFolderIndex(flat)
    (flat / "a").mkdir()
    (flat / "b").mkdir()
    write_image(flat / "a" / "y.jpg", 8, 8)
    (flat / "b" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="class folder.s. with no images .* b$"):
        ImageFolderIndex(flat)


def test_decode_rgb_converts_greyscale(folder):
    img = decode_rgb(folder / "cat" / "c.jpeg")
    assert img.shape == (3, 20, 20) and img.dtype == torch.uint8
    assert bool((img[0] == img[1]).all() and (img[1] == img[2]).all())


def test_split_folders_finds_train_beside_test_or_val(tmp_path):
    assert split_folders(tmp_path) == (tmp_path, None)
    (tmp_path / "train").mkdir()
    assert split_folders(tmp_path) == (tmp_path, None)  # train/ alone: the folder is one ImageFolder
    (tmp_path / "val").mkdir()
    assert split_folders(tmp_path) == (tmp_path / "train", tmp_path / "val")
    (tmp_path / "test").mkdir()
    assert split_folders(tmp_path) == (tmp_path / "train", tmp_path / "test")


def test_clean_views_leave_unusable_images_out(folder):
    (folder / "dog" / "tiny.jpg").write_bytes(b"not an image")
    index = ImageFolderIndex(folder)
    dataset = CleanViewDataset(index.paths, index.labels, out_size=8, resize_size=10)
    items = [dataset[i] for i in range(len(dataset))]
    assert sum(item is None for item in items) == 1
    views, labels, positions = collate_skipping(items)
    assert views.shape == (5, 3, 8, 8) and views.dtype == torch.float32 and float(views.max()) <= 1
    assert labels.tolist() == [0, 0, 0, 1, 1] and positions.tolist() == [0, 1, 2, 3, 4]
    assert collate_skipping([None, None]) is None
