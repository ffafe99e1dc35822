"""The deform family: deterministic per grid index; paper mode emulates albumentations' ElasticTransform (random
affine + alpha=1 smoothed noise), corrected mode is an elasticdeform-style control-point grid."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from inv_kernels.transforms import FAMILIES, MODES, apply_transform, clean_view, deform
from inv_kernels.transforms.grids import DEFORM_SEED_BASE

SIZES = {"out_size": 28, "resize_size": 32}
CPU = torch.device("cpu")


def smooth_image(height=60, width=80):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([0.5 + 0.4 * torch.sin(xs / 7 + c) * torch.cos(ys / 9 - c) for c in range(3)])


@pytest.mark.parametrize("mode", MODES)
def test_same_index_same_view_across_calls_and_chunks(mode):
    x = torch.rand(1, 3, 40, 52)
    indices = [3, 100, 255, 31]
    first = apply_transform("deform", x, mode=mode, indices=indices, **SIZES)
    again = apply_transform("deform", x, mode=mode, indices=indices, chunk=1, **SIZES)
    assert torch.equal(first, apply_transform("deform", x, mode=mode, indices=indices, **SIZES))
    assert (first - again).abs().max() <= 1e-6
    alone = apply_transform("deform", x, mode=mode, indices=[100], **SIZES)
    assert (first[:, 1] - alone[:, 0]).abs().max() <= 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_repeats_of_a_grid_value_are_different_draws(mode):
    x = torch.rand(1, 3, 40, 52)
    grid = FAMILIES["deform"].grid(mode)
    assert grid["sigma"][5] == grid["sigma"][13] and grid["points"][5] == grid["points"][13]
    views = apply_transform("deform", x, mode=mode, indices=[5, 13], **SIZES)[0]
    assert (views[0] - views[1]).abs().max() > 1e-2
    assert (views - clean_view(x, **SIZES)).abs().amax(dim=(1, 2, 3)).min() > 1e-2


def test_hash_uniform_is_uniform_and_streams_are_independent():
    u = deform.hash_uniform([1, 2, 3], 200_000, CPU)
    assert u.shape == (3, 200_000) and u.dtype == torch.float32
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert u.mean(1).sub(0.5).abs().max() < 0.005
    assert u.std(1).sub(1 / math.sqrt(12)).abs().max() < 0.005
    assert torch.corrcoef(u).sub(torch.eye(3)).abs().max() < 0.01
    assert torch.equal(deform.hash_uniform([2], 1000, CPU)[0], u[1, :1000])


def test_paper_noise_matches_alpha_1_blurred_uniform_noise():
    sigmas = torch.tensor([10, 15, 21, 27, 32, 38, 44, 50])
    d = deform.paper_noise(torch.arange(8), sigmas, 120, 140, CPU)  # (8, 2, H, W)
    assert d.shape == (8, 2, 120, 140)
    assert float(d.abs().max()) < 1.0  # alpha = 1 times an average of U(-1, 1)
    for i, sigma in enumerate(sigmas.tolist()):
        g = torch.exp(-(torch.arange(-8, 9, dtype=torch.float64) ** 2) / (2 * sigma**2))
        g = g / g.sum()
        expected = (1 / math.sqrt(3)) * float((g**2).sum())  # std of U(-1, 1) through the separable kernel
        assert float(d[i].std()) == pytest.approx(expected, rel=0.2)
    # The fixed 17-tap kernel makes sigma nearly inert (the reference's quirk): sub-pixel noise at every sigma.
    assert 0.02 < float(d.std()) < 0.06


def test_paper_affine_moves_the_anchor_points_by_at_most_alpha_affine():
    height, width = 90, 120
    square = min(height, width) // 3
    c0, c1 = height // 2, width // 2
    pts1 = torch.tensor(
        [[c0 + square, c1 + square], [c0 + square, c1 - square], [c0 - square, c1 - square]], dtype=torch.float64
    )
    for seed in range(5):
        inverse = deform.paper_affine(seed, height, width)
        full = torch.cat([inverse, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
        forward = torch.linalg.inv(full)[:2]
        moved = torch.cat([pts1, torch.ones(3, 1, dtype=torch.float64)], 1) @ forward.T
        shift = moved - pts1
        assert float(shift.abs().max()) <= 50.0 and float(shift.abs().max()) > 1.0
    assert torch.equal(deform.paper_affine(7, height, width), deform.paper_affine(7, height, width))
    assert torch.equal(deform.paper_affine(7, 2, 2), torch.eye(2, 3, dtype=torch.float64))


def test_paper_views_match_a_two_stage_warp_then_remap():
    """albumentations warps (cv2.warpAffine) and then remaps (cv2.remap), both bilinear with reflect-101 borders;
    we compose the two lookups into one, so on a smooth image the results agree up to one interpolation."""
    from scipy import ndimage

    img = smooth_image().numpy()
    height, width = img.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    seeds, sigmas = torch.tensor([11, 12, 13]), torch.tensor([10, 30, 50])
    ours = deform.deform_views(
        torch.tensor(img, dtype=torch.float32), sigmas, torch.tensor([2, 5, 9]), seeds, mode="paper", resize_size=256
    ).numpy()
    noise = deform.paper_noise(seeds, sigmas, height, width, CPU).numpy().astype(np.float64)
    for v in range(3):
        inv = deform.paper_affine(int(seeds[v]), height, width).numpy()
        sx, sy = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
        ref = np.stack(
            [
                ndimage.map_coordinates(
                    ndimage.map_coordinates(img[c], [sy, sx], order=1, mode="mirror"),  # warpAffine
                    [ys + noise[v, 1], xs + noise[v, 0]],
                    order=1,
                    mode="mirror",
                )  # remap
                for c in range(3)
            ]
        )
        diff = np.abs(ours[v] - ref)
        assert diff.mean() < 0.01 and diff.max() < 0.1, (v, diff.mean(), diff.max())
        assert np.abs(ours[v] - img).mean() > 0.05  # and the view is really deformed


def test_corrected_displacement_is_linear_in_sigma_and_rougher_with_more_points():
    a = deform.corrected_displacement(5, 4, 10.0, 50, 60, CPU)
    b = deform.corrected_displacement(5, 4, 30.0, 50, 60, CPU)
    assert a.shape == (2, 50, 60)
    assert (b - 3 * a).abs().max() <= 1e-4

    def roughness(points):
        fields = torch.stack([deform.corrected_displacement(s, points, 10.0, 64, 64, CPU) for s in range(16)])
        return float((fields.diff(dim=-1).abs().mean()) / fields.pow(2).mean().sqrt())

    assert roughness(2) < roughness(5) < roughness(9)


def test_corrected_views_match_torchvision_elastic_with_our_displacement():
    # sigma is in pixels of the Resize(resize_size) frame: a raw image of twice that size gets twice the pixels.
    x = smooth_image(64, 80).float()
    grid = FAMILIES["deform"].grid("corrected")
    indices = [0, 77, 255]
    ours = deform.deform_views(
        x, grid["sigma"][indices], grid["points"][indices], grid["seed"][indices], mode="corrected", resize_size=32
    )
    for j, i in enumerate(indices):
        sigma_px = float(grid["sigma"][i]) * 64 / 32
        d = deform.corrected_displacement(DEFORM_SEED_BASE + i, int(grid["points"][i]), sigma_px, 64, 80, CPU)
        normalised = torch.stack([d[0] * 2 / 80, d[1] * 2 / 64], -1)[None]  # (1, H, W, 2), torchvision's units
        ref = TF.elastic(x, normalised)
        assert (ours[j] - ref).abs().max() <= 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_same_views_on_cpu_and_gpu(mode):
    x = torch.rand(2, 3, 40, 52)
    cpu = apply_transform("deform", x, mode=mode, indices=[0, 50, 255], **SIZES)
    gpu = apply_transform("deform", x.cuda(), mode=mode, indices=[0, 50, 255], **SIZES)
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() <= 1e-4
