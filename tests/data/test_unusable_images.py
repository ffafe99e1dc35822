"""Unusable images -- smaller than 2 x 2 pixels, or not decodable (a JPEG damaged in the middle of its scan, a file
cut short, a file that is no image) -- are skipped and counted by one rule in every loader: the torchvision two-view
dataset, the DALI two-view loader, the kNN monitor, measurement's clean views and the probes' features;
``pipelines.measure`` and ``pipelines.transfer`` finish, print them and record them in their results files."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from inv_kernels.augment.two_view import TwoViewDataset
from inv_kernels.data.folders import (
    MIN_IMAGE_SIDE,
    ImageFolderIndex,
    UnusableImageError,
    describe_skipped,
    load_image,
    skipped_record,
    unusable_files,
    unusable_reason,
)

# A bogus marker inside the entropy-coded scan: PIL's decoder stops with "broken data stream", DALI's decoder warns
# and carries on. Zeros in the scan are decoded (to wrong pixels) by both.
MARKER_DAMAGE = b"\xff\xb9" * 16
ZERO_DAMAGE = b"\x00" * 32


def jpeg_bytes(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.RandomState(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.randint(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def damaged_jpeg(fill: bytes) -> bytes:
    """A 40 x 40 JPEG whose scan is overwritten with ``fill`` in its middle; SOI, SOS and EOI stay intact."""
    data = jpeg_bytes(40, 40, seed=1)
    middle = (data.index(b"\xff\xda") + len(data)) // 2
    damaged = data[:middle] + fill + data[middle + len(fill) :]
    assert damaged[:2] == b"\xff\xd8" and damaged[-2:] == b"\xff\xd9" and len(damaged) == len(data)
    return damaged


def write_folder(root: Path, extra: dict[str, bytes], per_class: int = 3, side: int = 12) -> Path:
    """root/{a,b}/<i>.jpg: per_class good JPEGs a class, plus ``extra`` files (relative path -> bytes)."""
    for c, name in enumerate("ab"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.jpg").write_bytes(jpeg_bytes(side + i, side, seed=10 * c + i))
    for relative, data in extra.items():
        (root / relative).write_bytes(data)
    return root


TINY = {"a/tiny.jpg": jpeg_bytes(1, 1), "b/thin.jpg": jpeg_bytes(1, 6)}


def test_one_rule_names_the_problem(tmp_path):
    files = {
        "ok.jpg": jpeg_bytes(2, 2),
        "tiny.jpg": jpeg_bytes(1, 1),
        "thin.jpg": jpeg_bytes(1, 6),
        "flat.jpg": jpeg_bytes(7, 1),
        "marker.jpg": damaged_jpeg(MARKER_DAMAGE),
        "cut.jpg": jpeg_bytes(20, 20)[:300],
        "text.jpg": b"a text file with an image's name",
        "empty.jpg": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert MIN_IMAGE_SIDE == 2
    assert unusable_reason(tmp_path / "ok.jpg") is None and load_image(tmp_path / "ok.jpg").shape == (3, 2, 2)
    assert unusable_reason(tmp_path / "tiny.jpg") == "1x1 pixels (under 2x2)"
    assert unusable_reason(tmp_path / "thin.jpg") == "1x6 pixels (under 2x2)"  # width x height
    assert unusable_reason(tmp_path / "flat.jpg") == "7x1 pixels (under 2x2)"
    assert unusable_reason(tmp_path / "marker.jpg").startswith("cannot be decoded (OSError")
    assert "truncated" in unusable_reason(tmp_path / "cut.jpg").lower()
    assert unusable_reason(tmp_path / "text.jpg").startswith("not a JPEG, PNG, BMP, TIFF, WebP or PNM file")
    assert unusable_reason(tmp_path / "empty.jpg") == "empty file"
    with pytest.raises(UnusableImageError, match=r"tiny\.jpg.*1x1 pixels") as caught:
        load_image(tmp_path / "tiny.jpg")
    assert caught.value.path == str(tmp_path / "tiny.jpg") and caught.value.reason == "1x1 pixels (under 2x2)"
    skipped = [(str(tmp_path / n), unusable_reason(tmp_path / n)) for n in ("tiny.jpg", "marker.jpg", "cut.jpg")]
    text = describe_skipped(skipped, limit=2)
    assert text.startswith(f"skipped 3 unusable images: {tmp_path / 'tiny.jpg'} (1x1 pixels (under 2x2)), ")
    assert text.endswith("and 1 more") and "cut.jpg" not in text
    assert describe_skipped([]) == "" and describe_skipped(skipped[:1]).startswith("skipped 1 unusable image: ")
    assert skipped_record(skipped[:1]) == {"count": 1, "files": [{"path": skipped[0][0], "reason": skipped[0][1]}]}


def test_folder_verdicts_are_kept_until_a_file_changes(tmp_path, monkeypatch):
    from inv_kernels.data import folders

    paths = [str(tmp_path / f"{i}.jpg") for i in range(4)]
    for i, path in enumerate(paths):
        Path(path).write_bytes(jpeg_bytes(1, 1) if i == 2 else jpeg_bytes(6, 5, seed=i))
    decodes = []
    real = folders.decode_rgb
    monkeypatch.setattr(folders, "decode_rgb", lambda p: decodes.append(p) or real(p))
    assert unusable_files(paths, threads=2) == [(paths[2], "1x1 pixels (under 2x2)")] and len(decodes) == 4
    assert unusable_files(paths) == [(paths[2], "1x1 pixels (under 2x2)")] and len(decodes) == 4  # remembered
    Path(paths[2]).write_bytes(jpeg_bytes(5, 4))  # another size on disk: the files are checked again
    assert unusable_files(paths) == [] and len(decodes) == 8


def test_two_view_dataset_skips_and_names_tiny_images(tmp_path):
    root = write_folder(tmp_path / "d", TINY)
    dataset = TwoViewDataset(root, "default", 8, seed=0)
    items = [dataset[i] for i in range(len(dataset))]
    markers = {Path(m["path"]).name: m["error"] for m in items if m.get("skipped")}
    assert markers == {"tiny.jpg": "1x1 pixels (under 2x2)", "thin.jpg": "1x6 pixels (under 2x2)"}
    assert dataset.skipped == 2 and sum(1 for m in items if not m.get("skipped")) == 6


@pytest.mark.dali
def test_dali_two_view_loader_skips_and_names_tiny_images(tmp_path):
    from inv_kernels.data.dali.two_view import DaliTwoViewLoader

    root = write_folder(tmp_path / "d", TINY)
    loader = DaliTwoViewLoader(root, "default", 8, 3, seed=0, drop_last=False, backend="reference")
    assert loader.skipped == 2 and len(loader.paths) == 6
    assert {Path(p).name: r for p, r in loader.skipped_files} == {
        "tiny.jpg": "1x1 pixels (under 2x2)",
        "thin.jpg": "1x6 pixels (under 2x2)",
    }
    assert sum(b["views"].shape[0] for b in loader) == 6


@pytest.mark.dali
def test_both_pretraining_loaders_give_a_mid_scan_damaged_jpeg_the_same_verdict(tmp_path):
    from inv_kernels.data.dali.common import decode_images
    from inv_kernels.data.dali.two_view import DaliTwoViewLoader

    root = write_folder(
        tmp_path / "d",
        {
            "a/marker.jpg": damaged_jpeg(MARKER_DAMAGE),
            "b/zeros.jpg": damaged_jpeg(ZERO_DAMAGE),
            "b/tiny.jpg": jpeg_bytes(1, 1),
        },
    )
    # The decoders on their own disagree on the marker-damaged file: PIL refuses it, DALI decodes it.
    with pytest.raises(OSError), Image.open(root / "a" / "marker.jpg") as img:
        img.load()
    assert decode_images([str(root / "a" / "marker.jpg")])[0].shape == (3, 40, 40)

    index = ImageFolderIndex(root)
    dataset = TwoViewDataset(index, "default", 8, seed=0)
    items = [dataset[i] for i in range(len(dataset))]
    torch_skipped = {m["path"] for m in items if m.get("skipped")}
    torch_used = {index.paths[m["index"]] for m in items if not m.get("skipped")}
    loader = DaliTwoViewLoader(index, "default", 8, 2, seed=0, drop_last=False, backend="reference")
    dali_used = {loader.paths[i] for b in loader for i in b["indices"].tolist()}
    assert dataset.skipped == loader.skipped == 2
    assert (
        torch_skipped
        == {p for p, _ in loader.skipped_files}
        == {str(root / "a" / "marker.jpg"), str(root / "b" / "tiny.jpg")}
    )
    assert torch_used == dali_used and str(root / "b" / "zeros.jpg") in dali_used and len(dali_used) == 7


class MeanColour(nn.Module):
    """(B, 3, S, S) -> (B, 3): the mean colour, a backbone for the kNN monitor."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_knn_monitor_skips_and_names_tiny_images(tmp_path):
    from inv_kernels.train.knn import knn_monitor

    train = ImageFolderIndex(write_folder(tmp_path / "train", {"a/tiny.jpg": jpeg_bytes(1, 1)}))
    test = ImageFolderIndex(write_folder(tmp_path / "test", {"b/thin.jpg": jpeg_bytes(1, 6)}, per_class=2))
    result = knn_monitor(MeanColour(), train, test, size=8, device=torch.device("cpu"), k=3)
    assert 0.0 <= result.top1 <= 1.0
    assert result.skipped == {
        "train": [(str(tmp_path / "train" / "a" / "tiny.jpg"), "1x1 pixels (under 2x2)")],
        "test": [(str(tmp_path / "test" / "b" / "thin.jpg"), "1x6 pixels (under 2x2)")],
    }


def test_pretraining_summary_records_the_knn_folders_skipped_images(tmp_path):
    from inv_kernels.data import write_dataset
    from inv_kernels.train import PretrainConfig, Trainer

    data = write_dataset("classification", tmp_path / "scenes", size=32, count=3, progress=False)
    train_class, test_class = sorted((data / "train").iterdir())[0], sorted((data / "test").iterdir())[-1]
    (train_class / "tiny.jpg").write_bytes(jpeg_bytes(1, 1))
    (test_class / "thin.jpg").write_bytes(jpeg_bytes(1, 6))
    config = PretrainConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        image_size=16,
        batch_size=8,
        bn_splits=2,
        queue_size=64,
        moco_dim=16,
        workers=0,
        epochs=1,
        max_steps=1,
        knn_every=0,
        loader="torchvision",
    )
    summary = Trainer(config, progress=False).run()
    assert summary["final_knn_top1"] is not None
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())["knn_skipped_images"]
    assert recorded == {
        "train": {"count": 1, "files": [{"path": str(train_class / "tiny.jpg"), "reason": "1x1 pixels (under 2x2)"}]},
        "test": {"count": 1, "files": [{"path": str(test_class / "thin.jpg"), "reason": "1x6 pixels (under 2x2)"}]},
    }


def test_measure_cli_finishes_and_records_skipped_images(tmp_path, capsys):
    from pipelines import measure as measure_cli

    root = write_folder(tmp_path / "d", TINY, side=20)
    out = tmp_path / "out"
    code = measure_cli.main(
        [
            "--model",
            "random:resnet18",
            "--data",
            str(root),
            "--num-images",
            "20",
            "--mode",
            "corrected",
            "--transforms",
            "invert",
            "--crop-size",
            "16",
            "--resize-size",
            "16",
            "--workers",
            "0",
            "--shrinkage",
            "ledoit_wolf",
            "--quiet",
            "--out",
            str(out),
            "--no-cache",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    results = json.loads((out / "results.json").read_text())
    expected = {
        "count": 2,
        "files": [
            {"path": str(root / "a" / "tiny.jpg"), "reason": "1x1 pixels (under 2x2)"},
            {"path": str(root / "b" / "thin.jpg"), "reason": "1x6 pixels (under 2x2)"},
        ],
    }
    assert results["skipped_images"] == {"statistics": expected, "images": expected}
    assert results["settings"]["num_images"] == 6 and results["undecodable_images"] == 4
    assert "statistics: skipped 2 unusable images: " in printed.out and "tiny.jpg (1x1 pixels" in printed.out


def test_transfer_cli_finishes_and_records_skipped_images(tmp_path, capsys, monkeypatch):
    from pipelines import transfer

    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    write_folder(
        root / "train", {"a/tiny.jpg": jpeg_bytes(1, 1), "b/marker.jpg": damaged_jpeg(MARKER_DAMAGE)}, per_class=4
    )
    write_folder(root / "test", {"b/thin.jpg": jpeg_bytes(1, 6)}, per_class=2)
    args = [
        "--models",
        "a=random:resnet18",
        "--task",
        f"folder:{root}",
        "--image-size",
        "16",
        "--folds",
        "2",
        "--combos",
        "none",
        "--out",
        str(tmp_path / "out"),
    ]
    code = transfer.main(args)
    printed = capsys.readouterr()
    assert code == 0, printed.err
    recorded = json.loads((tmp_path / "out" / "transfer.json").read_text())["skipped_images"]
    assert {split: rec["count"] for split, rec in recorded["set"].items()} == {"trainval": 2, "test": 1}
    assert [Path(f["path"]).name for f in recorded["set"]["trainval"]["files"]] == ["tiny.jpg", "marker.jpg"]
    assert recorded["set"]["trainval"]["files"][1]["reason"].startswith("cannot be decoded")
    assert "set trainval: skipped 2 unusable images: " in printed.out and "thin.jpg (1x6 pixels" in printed.out
