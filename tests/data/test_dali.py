"""The DALI two-view loader on real photographs, CPU path (device_id=None): batches against the torch reference
applied with the returned parameters, order / sharding / resume, skipped files, bad input."""

import logging
import shutil
from pathlib import Path

import pytest
import torch

from inv_kernels import _ext
from inv_kernels.augment import IMAGENET_STD, fused_augment_ref
from inv_kernels.data.dali.common import check_folder, decode_images
from inv_kernels.data.dali.two_view import DaliTwoViewLoader
from inv_kernels.data.sampler import ResumableBatchSampler

pytestmark = pytest.mark.dali

# The C++ kernel is what "auto" picks on the CPU; before it is built into _C, the torch reference stands in.
BACKEND = "auto" if _ext.C is not None and hasattr(_ext.C.cpu, "fused_augment") else "reference"
STD255 = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255  # normalised units -> 1/255 steps


@pytest.fixture(scope="module")
def photos(real_data_cache, tmp_path_factory) -> Path:
    """2 classes x 16 real JPEGs: Tiny-ImageNet (64 x 64) and CIFAR-10 (32 x 32), so batches mix sizes."""
    root = tmp_path_factory.mktemp("photos")
    tiny = sorted((real_data_cache / "tinyimagenet100" / "train" / "n01443537").glob("*.JPEG"))[:16]
    cifar = sorted((real_data_cache / "cifar10" / "test" / "frog").glob("*.jpg"))[:16]
    for name, files in (("fish", tiny), ("frog", cifar)):
        (root / name).mkdir()
        for f in files:
            (root / name / f.name).symlink_to(f)
    return root


def _loader(root, **kw):
    kw = {"recipe": "default", "out_size": 32, "batch_size": 8, "seed": 3, "backend": BACKEND, **kw}
    return DaliTwoViewLoader(root, kw.pop("recipe"), kw.pop("out_size"), kw.pop("batch_size"), **kw)


@pytest.mark.realdata
def test_two_views_equal_the_reference_on_dali_decoded_photos(photos):
    loader = _loader(photos)
    assert len(loader) == loader.batches_per_epoch() == 4 and loader.skipped == 0
    seen = []
    for batch in loader:
        views, params, idx = batch["views"], batch["params"], batch["indices"]
        assert views.shape == (8, 2, 3, 32, 32) and views.dtype == torch.float32 and len(params) == 16
        assert not torch.equal(views[:, 0], views[:, 1])  # two different views of each image
        assert {(32, 32), (64, 64)} >= {tuple(s) for s in batch["sizes"].tolist()}
        paths = [loader.paths[i] for i in idx.tolist()]
        assert batch["labels"].tolist() == [0 if "/fish/" in p else 1 for p in paths]
        images = decode_images(paths)  # (3, H, W) uint8 each, DALI's CPU decoder as in the loader
        assert batch["sizes"].tolist() == [list(im.shape[1:]) for im in images]
        sources = [im for im in images for _ in range(2)]  # view 2i + v comes from image i
        ref = fused_augment_ref(sources, params, 32, blur_kernel=loader.blur_kernel)  # (16, 3, 32, 32)
        err = ((views.reshape(16, 3, 32, 32) - ref).abs() * STD255).max()
        assert err <= 1.001, f"views differ from the reference by {err:.3f} / 255"
        seen += idx.tolist()
    assert sorted(seen) == list(range(32))  # one epoch = every image once


@pytest.mark.realdata
def test_epoch_order_matches_the_torch_sampler_and_resumes_at_a_step(photos):
    loader = _loader(photos, recipe="spatial")
    loader.set_epoch(1)
    full = list(loader)
    sampler = ResumableBatchSampler(32, 8, seed=3)
    sampler.set_epoch(1)
    assert [b["indices"].tolist() for b in full] == list(sampler)  # the same batches as the torchvision loader
    loader.set_epoch(0)
    assert next(iter(loader))["indices"].tolist() != full[0]["indices"].tolist()
    loader.set_epoch(1, start_step=2)
    assert len(loader) == 2
    resumed = list(loader)
    for a, b in zip(full[2:], resumed, strict=True):
        assert torch.equal(a["indices"], b["indices"]) and torch.equal(a["views"], b["views"])
        assert a["params"].as_dict() == b["params"].as_dict()
    with pytest.raises(ValueError, match="start_step must be an int in"):
        loader.set_epoch(1, start_step=5)


@pytest.mark.realdata
def test_two_shards_are_disjoint_and_cover_the_epoch(photos):
    shards = [
        [i for b in _loader(photos, batch_size=4, rank=r, world_size=2) for i in b["indices"].tolist()]
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 16
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(32))


@pytest.mark.realdata
def test_drop_last(photos):
    dropped = _loader(photos, batch_size=5)
    kept = _loader(photos, batch_size=5, drop_last=False)
    assert (len(dropped), len(kept)) == (6, 7)
    sizes = [b["views"].shape[0] for b in kept]
    assert sizes == [5] * 6 + [2] and len({i for b in kept for i in b["indices"].tolist()}) == 32


def test_folder_check_leaves_out_what_pil_refuses_and_keeps_padded_files(tmp_path):
    from PIL import Image

    (tmp_path / "c").mkdir()
    Image.new("RGB", (9, 7), (200, 10, 30)).save(tmp_path / "c" / "ok.jpg")
    Image.new("RGB", (9, 7)).save(tmp_path / "c" / "ok.png")
    data = (tmp_path / "c" / "ok.jpg").read_bytes()
    # padded.jpg has 4 KiB after its EOI marker: both decoders read it.
    cases = {
        "cut.jpg": data[: len(data) // 2],
        "cut.png": (tmp_path / "c" / "ok.png").read_bytes()[:40],
        "text.jpg": b"hello, not an image",
        "empty.jpg": b"",
        "padded.jpg": data + bytes(4096),
    }
    for name, content in cases.items():
        (tmp_path / "c" / name).write_bytes(content)
    folder = check_folder(tmp_path, owner="test")
    reasons = {Path(p).name: r for p, r in folder.skipped}
    assert sorted(Path(p).name for p in folder.paths) == ["ok.jpg", "ok.png", "padded.jpg"]
    assert "truncated" in reasons["cut.jpg"].lower() and reasons["cut.jpg"].startswith("cannot be decoded")
    assert reasons["cut.png"].startswith("cannot be decoded")
    assert reasons["text.jpg"].startswith("not a JPEG") and reasons["empty.jpg"] == "empty file"
    assert decode_images([str(tmp_path / "c" / "padded.jpg")])[0].shape == (3, 7, 9)


@pytest.mark.realdata
def test_truncated_and_foreign_files_are_skipped_and_counted(photos, tmp_path, caplog):
    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(photos, root, symlinks=True)
    good = sorted((root / "fish").iterdir())[0].read_bytes()
    (root / "fish" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "frog" / "notes.jpg").write_text("a text file with an image's name")
    Image.new("RGB", (40, 30), (0, 90, 200)).save(root / "frog" / "png_inside.jpg", format="PNG")  # kept
    with caplog.at_level(logging.WARNING, logger="inv_kernels.data.dali"):
        loader = _loader(root, batch_size=11)
    assert loader.skipped == 2 and len(loader.paths) == 33
    reasons = dict(loader.skipped_files)
    assert "truncated" in reasons[str(root / "fish" / "truncated.jpg")].lower()
    assert "not a JPEG" in reasons[str(root / "frog" / "notes.jpg")]
    assert "skipped 2 unusable images: " in caplog.text and "(of 35 files in" in caplog.text
    batches = list(loader)  # the whole epoch decodes: nothing bad reaches DALI
    assert sum(b["views"].shape[0] for b in batches) == 33
    assert (30, 40) in {tuple(s) for b in batches for s in b["sizes"].tolist()}


def test_bad_input_fails_before_any_dali_work(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe op 'sepia'"):
        DaliTwoViewLoader(tmp_path / "missing", [{"op": "sepia"}], 32)  # the recipe is checked before the folder
    with pytest.raises(ValueError, match=r"probability p must be a number in \[0, 1\], got 1.5"):
        DaliTwoViewLoader(tmp_path, [{"op": "grayscale", "p": 1.5}], 32)
    with pytest.raises(ValueError, match="is empty"):
        DaliTwoViewLoader(tmp_path, "default", 32)
    (tmp_path / "loose.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    with pytest.raises(ValueError, match="has no class subfolders"):
        DaliTwoViewLoader(tmp_path, "default", 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DaliTwoViewLoader(tmp_path / "missing", "default", 32)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.jpg").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="none of the 1 files .* is a usable image"):
        DaliTwoViewLoader(tmp_path, "default", 32)
    with pytest.raises(ValueError, match="unknown backend backend='fast'"):
        DaliTwoViewLoader(tmp_path, "default", 32, backend="fast")
    with pytest.raises(ValueError, match="rank must be an int in"):
        DaliTwoViewLoader(tmp_path, "default", 32, rank=2, world_size=2)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device_id=0 needs CUDA GPU 0"):
            DaliTwoViewLoader(tmp_path, "default", 32, device_id=0)


@pytest.mark.realdata
def test_batch_larger_than_the_folder(photos):
    with pytest.raises(ValueError, match=r"batch size 17 x 2 process\(es\) is larger than the dataset \(32 images\)"):
        _loader(photos, batch_size=17, world_size=2)
