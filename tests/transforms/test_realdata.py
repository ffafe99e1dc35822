"""Every family on real photographs (CIFAR-10 and Tiny-ImageNet JPEGs), at the paper's sizes (Resize 256,
CenterCrop 224): finite outputs in [0, 1], and every non-identity grid value changes the image."""

import numpy as np
import pytest
import torch
from PIL import Image

from inv_kernels.transforms import FAMILIES, MODES, clean_view, iter_views

# Grid values far from the identity, per family (identity-like values are tested in test_modes.py).
NON_IDENTITY = {
    "rotation": [32, 128, 200],
    "translation": [0, 255, 17],
    "scale": [0, 255],
    "shear": [0, 100, 255],
    "resized_crop": [0, 100, 255],
    "h_flip": [1],
    "v_flip": [1],
    "deform": [0, 100, 255],
    "grayscale": [1],
    "brightness": [0, 255],
    "contrast": [0, 255],
    "saturation": [0, 255],
    "hue": [0, 64, 200],
    "blur": [100, 255],
    "sharpness": [255],
    "invert": [1],
    "equalize": [1],
    "posterize": [0, 3],
}


def load(path):
    with Image.open(path) as image:
        array = np.array(image.convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # (3, H, W) uint8


@pytest.fixture(scope="module")
def photos(real_data_cache):
    paths = [
        sorted((real_data_cache / "cifar10" / "test" / "automobile").glob("*.jpg"))[0],
        sorted((real_data_cache / "cifar10" / "test" / "frog").glob("*.jpg"))[0],
        sorted(next(iter(sorted((real_data_cache / "tinyimagenet100" / "val").iterdir()))).glob("*.JPEG"))[0],
    ]
    return [load(p) for p in paths]


@pytest.mark.realdata
def test_every_family_on_real_photographs(photos):
    assert [tuple(p.shape) for p in photos] == [(3, 32, 32), (3, 32, 32), (3, 64, 64)]
    clean = clean_view(photos)  # (3, 3, 224, 224)
    assert bool(torch.isfinite(clean).all()) and clean.min() >= 0 and clean.max() <= 1
    for name in FAMILIES:
        assert name in NON_IDENTITY
        for mode in MODES:
            for i, rows, views in iter_views(name, photos, mode=mode, indices=NON_IDENTITY[name]):
                assert views.shape == (rows.numel(), 3, 224, 224)
                assert bool(torch.isfinite(views).all()), (name, mode)
                assert float(views.min()) >= 0 and float(views.max()) <= 1 + 1e-6, (name, mode)
                change = (views - clean[i]).abs().amax(dim=(1, 2, 3))  # (p,)
                assert bool((change > 0.02).all()), (name, mode, i, rows.tolist(), change.tolist())
