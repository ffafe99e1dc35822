"""The public entry points: shapes, value ranges, inputs (batches, lists of sizes, uint8), chunked streaming,
determinism and the errors raised for bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inv_kernels.transforms import FAMILIES, MODES, apply_transform, clean_view, get_family, iter_views
from inv_kernels.transforms import views as views_module

SIZES = {"out_size": 28, "resize_size": 32}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_shapes_range_and_determinism(name, mode):
    x = torch.rand(1, 3, 36, 44)
    out = apply_transform(name, x, mode=mode, **SIZES)
    assert out.shape == (1, FAMILIES[name].k, 3, 28, 28) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0 and float(out.max()) <= 1 + 1e-6
    assert torch.equal(out, apply_transform(name, x, mode=mode, **SIZES))
    clean = clean_view(x, **SIZES)
    changed = (out - clean[:, None]).abs().amax(dim=(0, 2, 3, 4)) > 1e-3  # (k,)
    # At least half the views differ from the clean one (at these tiny sizes sub-pixel shifts, scales near 1 and
    # small blurs may not); test_realdata.py checks chosen non-identity values one by one.
    assert float(changed.float().mean()) >= 0.5


def test_default_sizes_and_index_subset():
    x = torch.rand(1, 3, 40, 30)
    out = apply_transform("rotation", x, indices=[5, 0, 5])
    assert out.shape == (1, 3, 3, 224, 224)
    assert torch.equal(out[0, 0], out[0, 2])
    assert torch.equal(out[0, 1], clean_view(x)[0])
    assert clean_view(x).shape == (1, 3, 224, 224)
    assert apply_transform("rotation", x, indices=torch.tensor([1, 2])).shape == (1, 2, 3, 224, 224)


def test_list_of_different_sizes_equals_image_by_image():
    images = [torch.rand(3, 30, 41), torch.rand(3, 57, 33), torch.rand(3, 32, 32)]
    for name in ("translation", "resized_crop", "contrast", "blur"):
        for mode in MODES:
            together = apply_transform(name, images, mode=mode, indices=[0, 9, 200], **SIZES)
            for i, image in enumerate(images):
                alone = apply_transform(name, image[None], mode=mode, indices=[0, 9, 200], **SIZES)[0]
                assert torch.equal(together[i], alone), (name, mode, i)
    assert clean_view(images, **SIZES).shape == (3, 3, 28, 28)


def test_uint8_input_is_read_as_x_over_255():
    u = torch.randint(0, 256, (2, 3, 30, 40), dtype=torch.uint8)
    for name in ("hue", "equalize", "posterize", "shear"):
        indices = [i for i in (0, 1, 5) if i < FAMILIES[name].k]
        a = apply_transform(name, u, indices=indices, **SIZES)
        b = apply_transform(name, u.float() / 255, indices=indices, **SIZES)
        assert (a - b).abs().max() <= 1e-6, name
    assert torch.equal(clean_view(u, **SIZES), clean_view(u.float() / 255, **SIZES))


def test_float64_and_half_inputs_are_computed_in_float32():
    x = torch.rand(1, 3, 30, 40)
    ref = apply_transform("saturation", x, indices=[0, 255], **SIZES)
    assert (apply_transform("saturation", x.double(), indices=[0, 255], **SIZES) - ref).abs().max() <= 1e-6
    assert apply_transform("saturation", x.half(), indices=[0], **SIZES).dtype == torch.float32


@pytest.mark.parametrize("name", ["rotation", "deform", "blur", "posterize", "resized_crop"])
def test_chunked_iteration_equals_the_whole(name):
    x = [torch.rand(3, 30, 40), torch.rand(3, 35, 31)]
    indices = list(range(FAMILIES[name].k))[::-19]  # out of order, 14 values at most
    whole = apply_transform(name, x, indices=indices, **SIZES)
    seen = {0: [], 1: []}
    for i, rows, views in iter_views(name, x, indices=indices, chunk=5, **SIZES):
        assert rows.dtype == torch.int64 and views.shape == (rows.numel(), 3, 28, 28) and rows.numel() <= 5
        seen[i].append((rows, views))
    for i in (0, 1):
        rows = torch.cat([r for r, _ in seen[i]])
        assert rows.tolist() == indices
        assert (torch.cat([v for _, v in seen[i]]) - whole[i]).abs().max() <= 1e-6


def test_memory_budget_shrinks_chunks_for_large_images(monkeypatch):
    x = torch.rand(1, 3, 40, 50)
    monkeypatch.setattr(views_module, "MAX_RAW_ELEMENTS", 3 * 40 * 50 * 3)  # room for 3 raw views
    chunks = [rows.numel() for _, rows, _ in iter_views("hue", x, chunk=64, indices=range(10), **SIZES)]
    assert chunks == [3, 3, 3, 1]


def test_iter_views_leaves_grad_mode_alone():
    x = torch.rand(1, 3, 30, 40)
    for _, _, views in iter_views("brightness", x, chunk=8, **SIZES):
        assert torch.is_grad_enabled() and not views.requires_grad
        break


def test_get_family():
    assert get_family("blur") is FAMILIES["blur"]
    assert get_family("rotation").kind == "spatial" and get_family("hue").kind == "appearance"


# ---- bad input ------------------------------------------------------------------------------------------------


def test_unknown_family_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown transform family 'rotate'; expected one of rotation, translation"):
        apply_transform("rotate", torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="posterize"):
        get_family("zoom")
    with pytest.raises(TypeError, match="name must be a str, got int"):
        apply_transform(3, torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (torch.rand(3, 8, 8), ValueError, r"images must be 4-D \(n, 3, H, W\), got a 3-D tensor of shape \(3, 8, 8\)"),
        (torch.rand(2, 4, 8, 8), ValueError, r"images must have 3 \(RGB\) channels in dim 1, got shape \(2, 4, 8, 8\)"),
        (torch.rand(0, 3, 8, 8), ValueError, "images must not be empty"),
        (torch.rand(1, 3, 1, 8), ValueError, "at least 2 x 2 pixels"),
        (torch.ones(1, 3, 8, 8, dtype=torch.int32), TypeError, r"images must have a dtype in \(uint8, float32"),
        (torch.full((1, 3, 8, 8), 255.0), ValueError, r"values in \[0, 1\] \(floating images\), got \[255, 255\]"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "images contains NaN or Inf"),
        ([], ValueError, "images must not be empty, got an empty list"),
        ([torch.rand(3, 8, 8), torch.rand(8, 8)], ValueError, r"images\[1\] must be 3-D \(3, H, W\)"),
        ([torch.rand(3, 8, 8), torch.rand(1, 8, 8)], ValueError, r"images\[1\] must have 3 \(RGB\) channels"),
        ([torch.rand(3, 8, 8), "x"], TypeError, r"images\[1\] must be a torch.Tensor, got str"),
        ("img.jpg", TypeError, "images must be a torch.Tensor or a list of tensors, got str"),
    ],
)
def test_bad_images(images, error, message):
    with pytest.raises(error, match=message):
        apply_transform("rotation", images)
    with pytest.raises(error, match=message.replace("apply_transform", "clean_view")):
        clean_view(images)


def test_bad_indices():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 7\) for 'posterize' \(k=7\), got \[7\]"):
        apply_transform("posterize", x, indices=[0, 7])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 256\).*got \[-1\]"):
        apply_transform("rotation", x, indices=[-1])
    with pytest.raises(ValueError, match="indices must not be empty"):
        apply_transform("rotation", x, indices=[])
    with pytest.raises(TypeError, match="indices must be an integer tensor, got torch.float32"):
        apply_transform("rotation", x, indices=torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"indices must be 1-D, got shape \(1, 1\)"):
        apply_transform("rotation", x, indices=torch.tensor([[1]]))
    with pytest.raises(TypeError, match="indices must hold ints"):
        apply_transform("rotation", x, indices=[1.5])
    with pytest.raises(TypeError, match="indices must be None, a sequence of ints or a 1-D tensor, got int"):
        apply_transform("rotation", x, indices=3)


def test_bad_mode_sizes_and_chunk():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mode must be one of 'paper', 'corrected', got 'fixed'"):
        apply_transform("rotation", x, mode="fixed")
    with pytest.raises(ValueError, match=r"out_size must be <= resize_size \(256\), got 300"):
        apply_transform("rotation", x, out_size=300)
    with pytest.raises(ValueError, match="resize_size must be a finite number > 0, got 0"):
        clean_view(x, resize_size=0)
    with pytest.raises(TypeError, match="out_size must be an int, got float"):
        clean_view(x, out_size=224.0)
    with pytest.raises(ValueError, match="chunk must be a finite number > 0, got 0"):
        iter_views("rotation", x, chunk=0)


def test_iter_views_checks_before_the_first_view():
    with pytest.raises(ValueError, match="unknown transform family"):
        iter_views("nope", torch.rand(1, 3, 8, 8))  # raised at the call, not at the first next()


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(2, 23),
    width=st.integers(2, 23),
    name=st.sampled_from(list(FAMILIES)),
    mode=st.sampled_from(MODES),
    data=st.data(),
)
def test_awkward_sizes_any_family(height, width, name, mode, data):
    index = data.draw(st.integers(0, FAMILIES[name].k - 1))
    x = torch.rand(1, 3, height, width)
    out = apply_transform(name, x, mode=mode, indices=[index], out_size=7, resize_size=11)
    assert out.shape == (1, 1, 3, 7, 7)
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0 and float(out.max()) <= 1 + 1e-6
