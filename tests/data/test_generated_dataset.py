"""The generated datasets on disk: folder layouts and file names, readability by torchvision, the cache location,
reuse, determinism, atomic generation after an interruption, the entry point, and errors for bad settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from inv_kernels.data import SHAPE_NAMES, cache_root, generated_dataset, writers
from inv_kernels.data.cache import MARKER, read_manifest

SIZE = 32


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: these small renders gain nothing from more, and on a shared 2-core machine a second
    thread that has to wait for a busy core makes them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache folder chosen through the environment variable."""
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _names(folder: Path, pattern: str) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.glob(pattern)}


def test_cache_root_follows_env_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("INV_KERNELS_CACHE")
    assert cache_root() == tmp_path / "xdg" / "inv_kernels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "inv_kernels"


def test_classification_layout_and_imagefolder(cache):
    root = generated_dataset("classification", size=SIZE, count=4, progress=False)
    assert root.parent == cache / "generated" and root.name.startswith("classification-32px-")
    train = ImageFolder(str(root / "train"))
    assert train.classes == sorted(SHAPE_NAMES) and len(train) == 4 * len(SHAPE_NAMES)
    assert _names(root / "train", "sphere/*") == {f"sphere/{i:05d}.jpg" for i in range(4)}
    test = ImageFolder(str(root / "test"))
    assert len(test) == 1 * len(SHAPE_NAMES)  # count // 4
    image, label = train[0]
    assert image.size == (SIZE, SIZE) and image.mode == "RGB" and train.classes[label] == "capsule"
    manifest = read_manifest(root)
    assert manifest["counts"] == {"train": 28, "test": 7} and manifest["config"]["size"] == SIZE
    assert manifest["shape_names"] == list(SHAPE_NAMES)


def test_coil_layout(cache):
    root = generated_dataset("coil", size=SIZE, count=2, progress=False)
    expected = {f"obj{o}__{a}.png" for o in (1, 2) for a in range(0, 360, 5)}
    assert _names(root, "*.png") == expected and len(expected) == 144
    views = [np.asarray(Image.open(root / f"obj1__{a}.png")) for a in (0, 5, 180)]
    assert views[0].shape == (SIZE, SIZE, 3)
    assert np.abs(views[0].astype(int) - views[1]).mean() < np.abs(views[0].astype(int) - views[2]).mean()


def test_aloi_layout(cache):
    root = generated_dataset("aloi", size=SIZE, count=2, progress=False)
    for o in ("1", "2"):
        assert _names(root, f"illumination/{o}/*.png") == {f"illumination/{o}/{o}_l{l}c1.png" for l in range(1, 9)}
        codes = (110, 120, 130, 140, 150, 160, 170, 180, 190, 210, 230, 250)
        assert _names(root, f"temperature/{o}/*.png") == {f"temperature/{o}/{o}_i{c}.png" for c in codes}
        assert len(_names(root, f"viewpoint/{o}/{o}_r*.png")) == 72
    # the camera number is the last character of the stem, as the ALOI adapter reads it
    assert {p.stem[-1] for p in (root / "illumination").rglob("*.png")} == {"1"}
    # warmer light is redder on the same object
    warm = np.asarray(Image.open(root / "temperature/1/1_i110.png")).astype(float)
    cool = np.asarray(Image.open(root / "temperature/1/1_i250.png")).astype(float)
    assert (warm[..., 2] - cool[..., 2]).sum() < 0 and np.abs(warm - cool).max() > 10


def test_latents_layout_matches_causal3dident(cache):
    root = generated_dataset("latents", size=SIZE, count=4, progress=False)
    for split, n in (("trainset", 4), ("testset", 1)):
        for c in range(len(SHAPE_NAMES)):
            latents = np.load(root / split / f"latents_{c}.npy")
            raw = np.load(root / split / f"raw_latents_{c}.npy")
            assert latents.shape == (n, 10) and latents.dtype == np.float32 and raw.shape == (n, 10)
            assert np.abs(latents).max() <= 1.0
            assert _names(root / split, f"images_{c}/*") == {f"images_{c}/{i:06d}.png" for i in range(n)}
    # ImageFolder order is the concatenation of latents_0..6 (docs/METHOD.md section 5)
    folder = ImageFolder(str(root / "trainset"))
    assert folder.classes == [f"images_{c}" for c in range(len(SHAPE_NAMES))]
    stems = [int(Path(p).stem) for p, _ in folder.samples]
    assert stems == list(range(4)) * len(SHAPE_NAMES)
    assert [t for _, t in folder.samples] == list(np.repeat(np.arange(len(SHAPE_NAMES)), 4))


def test_reused_and_deterministic(tmp_path, monkeypatch):
    first = generated_dataset("coil", size=SIZE, count=1, cache_dir=tmp_path / "a", progress=False)
    calls = []
    monkeypatch.setitem(writers.WRITERS, "coil", lambda *a, **k: calls.append(1))
    assert generated_dataset("coil", size=SIZE, count=1, cache_dir=tmp_path / "a", progress=False) == first
    assert calls == []  # complete: not generated again
    monkeypatch.undo()
    second = generated_dataset("coil", size=SIZE, count=1, cache_dir=tmp_path / "b", progress=False)
    for name in ("obj1__0.png", "obj1__120.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    other_seed = generated_dataset("coil", size=SIZE, count=1, seed=1, cache_dir=tmp_path / "a", progress=False)
    assert other_seed != first and (first / "obj1__0.png").read_bytes() != (other_seed / "obj1__0.png").read_bytes()


def test_interrupted_generation_is_never_taken_as_complete(cache, monkeypatch):
    real_save, saved = writers._save, []

    def failing_save(pixels, path):
        if len(saved) == 30:
            raise KeyboardInterrupt("simulated interruption")
        saved.append(path)
        real_save(pixels, path)

    monkeypatch.setattr(writers, "_save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        generated_dataset("coil", size=SIZE, count=1, progress=False)
    assert len(saved) == 30
    assert list((cache / "generated").iterdir()) == []  # neither a final folder nor the partial one is left
    monkeypatch.setattr(writers, "_save", real_save)
    root = generated_dataset("coil", size=SIZE, count=1, progress=False)
    assert len(list(root.glob("*.png"))) == 72 and read_manifest(root) is not None


def test_killed_generation_leftovers_are_replaced(cache):
    """A process killed mid-generation leaves its partial folder (and perhaps a manifest-less final folder):
    neither is used, the stale partial is cleaned up and the set is generated again."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    final = generated_dataset("coil", size=SIZE, count=1, progress=False)
    manifest = (final / "manifest.json").read_text()
    (final / "manifest.json").unlink()
    (final / "obj1__0.png").unlink()
    stale = final.with_name(f"{final.name}.partial-{dead.pid}")
    stale.mkdir()
    (stale / MARKER).write_text("")  # a partial folder is marked as the project's as soon as it is made
    (stale / "obj1__0.png").write_bytes(b"half")
    assert read_manifest(final) is None
    again = generated_dataset("coil", size=SIZE, count=1, progress=False)
    assert again == final and (final / "obj1__0.png").is_file() and not stale.exists()
    assert json.loads((final / "manifest.json").read_text())["config"] == json.loads(manifest)["config"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kind="imagenet"), ValueError, "kind must be one of classification, coil, aloi, latents, got 'imagenet'"),
        (dict(size=8), ValueError, r"size must be in \[16, 512\] pixels, got 8"),
        (dict(size=600), ValueError, r"size must be in \[16, 512\] pixels, got 600"),
        (dict(count=-5), ValueError, "count must be >= 1, got -5"),
        (dict(count=0), ValueError, "count must be >= 1, got 0"),
        (dict(count=2.0), TypeError, "count must be an int, got float"),
        (dict(seed="0"), TypeError, "seed must be an int, got str"),
    ],
)
def test_bad_settings(cache, kwargs, error, match):
    args = {"kind": "coil", "size": SIZE, "count": 1, **kwargs}
    with pytest.raises(error, match=match):
        generated_dataset(args.pop("kind"), progress=False, **args)
    assert not (cache / "generated").exists() or list((cache / "generated").iterdir()) == []


def test_entry_point_writes_sets_and_contact_sheet(tmp_path):
    from pipelines.generate import main

    sheet = tmp_path / "sheet.png"
    summary = main(
        [
            "--kinds",
            "coil",
            "--count",
            "1",
            "--size",
            str(SIZE),
            "--out",
            str(tmp_path / "out"),
            "--contact-sheet",
            str(sheet),
            "--sheet-size",
            "24",
            "--no-progress",
            "--json",
            str(tmp_path / "summary.json"),
        ]
    )
    assert summary["sets"]["coil"]["counts"]["images"] == 72
    assert len(list((tmp_path / "out" / "coil").glob("obj1__*.png"))) == 72
    with Image.open(sheet) as image:
        assert image.mode == "RGB" and image.width > 12 * 24 and image.height == 10 * 26
    assert json.loads((tmp_path / "summary.json").read_text())["contact_sheet"] == str(sheet)
    assert sorted(os.listdir(tmp_path / "out")) == ["coil", "generate_config.yaml"]  # nothing partial beside them
