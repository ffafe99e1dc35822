"""fused_augment's Triton backend on what the all-backend parity test does not reach: several tiles per view (tile
edges, flipped columns across tiles, the contrast mean summed over tiles, blur halos crossing tiles), extreme
down- and upscaling, hue at its sector edges and on gray pixels, and the low-precision outputs. Compared with the
torch reference in de-normalised units (x * std + mean, i.e. [0, 1] pixel values)."""

import dataclasses

import pytest
import torch
from _op_backends import DEVICE

import inv_kernels.ops._fused_augment_triton as triton_backend
from inv_kernels.augment import AugmentParams, sample_augment_params
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.triton

ATOL = 1e-5  # float32 views, [0, 1] units: observed ~1e-6


def _images(b: int, h: int, w: int, levels: int = 256) -> torch.Tensor:
    """(b, 3, h, w) uint8: noise, or noise on ``levels`` gray levels (ties between channels, gray pixels)."""
    x = torch.randint(0, levels, (b, 3, h, w))
    return (x * (255 // max(levels - 1, 1))).to(torch.uint8).to(DEVICE)


def _every_op(params: AugmentParams, blur_sigma: float = 1.3) -> AugmentParams:
    """``params`` with jitter and blur on every view, grayscale and flip on alternate views."""
    n = len(params)
    alternate = torch.arange(n) % 2 == 1
    return dataclasses.replace(
        params,
        jitter_applied=torch.ones(n, dtype=torch.bool),
        flip=alternate,
        grayscale=~alternate & (torch.arange(n) % 3 == 0),
        blur_applied=torch.ones(n, dtype=torch.bool),
        blur_sigma=torch.full((n,), blur_sigma),
    )


def _denormalised_error(images, params, size, *, out_dtype=torch.float32, **kwargs) -> torch.Tensor:
    """|triton - reference| per element in [0, 1] units, (V, 3, S, S) float32."""
    got = fused_augment(images, params, size, out_dtype=out_dtype, backend="triton", **kwargs).float()
    want = fused_augment(images, params, size, backend="reference", **kwargs)
    std = torch.tensor(IMAGENET_STD, device=got.device)[:, None, None]
    return ((got - want) * std).abs()


def _report(err: torch.Tensor, atol: float) -> str:
    bad = (err > atol).nonzero()
    return f"max error {err.max().item():.3g}, {bad.shape[0]} elements above {atol:g}, first at {bad[:5].tolist()}"


def test_several_tiles_per_view(monkeypatch):
    monkeypatch.setattr(triton_backend, "_blocks", lambda size: (4, 8))  # 11 x 11 -> 3 x 2 tiles of 4 x 8
    images = _images(2, 29, 22).permute(0, 2, 3, 1).contiguous()  # NHWC
    index = torch.tensor([0, 1, 0])
    params = _every_op(sample_augment_params("default", torch.tensor([[29, 22]] * 3)))
    # a 21-tap blur on an 11 x 11 view: every tile's halo reaches across the view, reflected at both ends
    err = _denormalised_error(images, params, 11, blur_kernel=21, source_index=index, layout="NHWC")
    assert err.max() <= ATOL, _report(err, ATOL)


@pytest.mark.parametrize(("height", "width", "size"), [(84, 61, 6), (3, 4, 16), (9, 40, 12)])
def test_extreme_scales(height, width, size):
    # scale 14 (29 taps a side), pure upscaling (2 taps), and down along one axis while up along the other
    images = _images(1, height, width)
    sizes = torch.tensor([[height, width]] * 2)
    params = dataclasses.replace(AugmentParams.identity(sizes), flip=torch.tensor([False, True]))
    err = _denormalised_error(images, params, size, source_index=torch.zeros(2, dtype=torch.long))
    assert err.max() <= ATOL, _report(err, ATOL)


def test_padded_batch_with_sizes():
    images = _images(3, 30, 26)
    sizes = torch.tensor([[30, 26], [17, 9], [5, 26]])
    index = torch.tensor([2, 1, 0, 1, 2])
    params = _every_op(sample_augment_params("default", sizes[index]), blur_sigma=0.6)
    err = _denormalised_error(images, params, 10, sizes=sizes, source_index=index)
    assert err.max() <= ATOL, _report(err, ATOL)


@pytest.mark.parametrize("hue", [0.5, -0.5, 0.25, -1 / 6])
def test_hue_edges_and_gray_pixels(hue):
    # three gray levels: many pixels with max == min or tied channels, and hue shifts to sector boundaries
    images = _images(2, 15, 15, levels=3)
    params = _every_op(sample_augment_params("default", torch.tensor([[15, 15]] * 4)))
    params = dataclasses.replace(
        params,
        hue=torch.full((4,), hue),
        blur_applied=torch.zeros(4, dtype=torch.bool),
        grayscale=torch.zeros(4, dtype=torch.bool),
    )
    err = _denormalised_error(images, params, 15, source_index=torch.arange(2).repeat(2))
    assert err.max() <= 2 / 255, _report(err, 2 / 255)
    assert (err > 1e-4).float().mean() < 0.01, _report(err, 1e-4)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16])
def test_low_precision_output(out_dtype):
    images = _images(2, 21, 18)
    params = _every_op(sample_augment_params("appearance", torch.tensor([[21, 18]] * 4)), blur_sigma=0.9)
    index = torch.arange(2).repeat(2)
    got = fused_augment(images, params, 9, out_dtype=out_dtype, backend="triton", source_index=index)
    want = fused_augment(images, params, 9, out_dtype=out_dtype, backend="reference", source_index=index)
    assert got.dtype == out_dtype
    # both round the same float32 value: at most one unit in the last place apart
    ulp = torch.finfo(out_dtype).eps * want.float().abs().clamp_min(1.0)
    diff = (got.float() - want.float()).abs()
    assert bool((diff <= ulp).all()), f"max difference {diff.max().item():.3g} (ulp {ulp.max().item():.3g})"


def test_views_without_blur_leave_no_trace_of_the_workspace():
    # one blurred and one unblurred view of the same image: the unblurred one equals the identity pipeline's
    images = _images(1, 11, 11)
    sizes = torch.tensor([[11, 11]] * 2)
    params = dataclasses.replace(
        AugmentParams.identity(sizes), blur_applied=torch.tensor([True, False]), blur_sigma=torch.tensor([2.0, 0.0])
    )
    out = fused_augment(images, params, 11, backend="triton", source_index=torch.zeros(2, dtype=torch.long))
    mean = torch.tensor(IMAGENET_MEAN, device=out.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=out.device)[:, None, None]
    plain = (images[0].float() / 255 - mean) / std
    assert torch.allclose(out[1], plain, atol=1e-6)
    assert not torch.allclose(out[0], plain, atol=1e-3)
