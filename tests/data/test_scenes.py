"""The scene renderer: shapes and ranges, determinism, each latent changing only what it should, smooth sub-pixel
motion (anti-aliasing), latents recoverable from pixels by a small probe, and clear errors for bad input."""

import math

import pytest
import torch

from inv_kernels.data import LATENT_NAMES, SHAPE_NAMES, render_scenes, rgb_to_hue, sample_latents
from inv_kernels.data.render import CAMERA_DISTANCE, FOV_DEGREES
from inv_kernels.data.scenes import POSITION_SCALE, euler_matrix, latents_to_raw

ALL_CLASSES = torch.arange(len(SHAPE_NAMES))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: these small renders gain nothing from more, and on a shared 2-core machine a second
    thread that has to wait for a busy core makes them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _seed() -> int:
    return int(torch.randint(0, 2**31 - 1, ()))  # from the autouse per-test seed


def _mean_object_hue(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,) hue (turns) of the mean colour of the pixels fully covered by the object: the chroma-weighted circular
    mean of their hues, so near-white highlights count little."""
    inside = (masks > 0.99).double()[:, None]  # (N, 1, H, W)
    mean_colour = (images.double() * inside).sum((2, 3)) / inside.sum((2, 3))  # (N, 3)
    return rgb_to_hue(mean_colour)


def _hue_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b + 0.5) % 1 - 0.5).abs()


@pytest.mark.parametrize("size", [16, 33, 64])
def test_shapes_dtypes_ranges(size):
    latents, classes = sample_latents(2 * len(SHAPE_NAMES), _seed(), ALL_CLASSES.repeat(2))
    images, masks = render_scenes(latents, classes, size=size)
    assert images.shape == (14, 3, size, size) and images.dtype == torch.float32
    assert masks.shape == (14, size, size) and masks.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
    # every object is visible, and none fills the frame
    coverage = masks.mean((1, 2))
    assert bool((coverage > 0.01).all()) and bool((coverage < 0.6).all()), coverage


def test_latent_names_and_raw_ranges():
    assert LATENT_NAMES[:3] == ("pos_x", "pos_y", "pos_z") and LATENT_NAMES[7:] == (
        "object_hue",
        "spotlight_hue",
        "background_hue",
    )
    raw = latents_to_raw(torch.tensor([[-1.0] * 10, [1.0] * 10]))
    assert torch.allclose(raw[1, 3:6], torch.full((3,), math.pi)) and torch.allclose(raw[0, 7:], torch.zeros(3))
    rot = euler_matrix(torch.rand(5, 3) * 6 - 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5)


def test_deterministic_by_seed_and_batch_independent():
    seed = _seed()
    la, ca = sample_latents(20, seed)
    lb, cb = sample_latents(20, seed)
    assert torch.equal(la, lb) and torch.equal(ca, cb)
    assert not torch.equal(la, sample_latents(20, seed + 1)[0])
    full, full_masks = render_scenes(la, ca, size=32)
    again, _ = render_scenes(lb, cb, size=32)
    assert torch.equal(full, again)
    # a scene's pixels do not depend on the other scenes in its batch (up to float32 rounding: a batch of another
    # size takes other BLAS blockings; 1.03e-5 has been seen)
    part, part_masks = render_scenes(la[5:9], ca[5:9], size=32)
    torch.testing.assert_close(part, full[5:9], atol=1e-4, rtol=0)
    torch.testing.assert_close(part_masks, full_masks[5:9], atol=1e-4, rtol=0)


@pytest.mark.parametrize("hue_index", [7, 8, 9])
def test_hue_change_keeps_silhouette(hue_index):
    latents, classes = sample_latents(len(SHAPE_NAMES), _seed(), ALL_CLASSES)
    changed = latents.clone()
    changed[:, hue_index] = (changed[:, hue_index] + 2.5) % 2 - 1  # a different hue (a quarter turn on)
    images, masks = render_scenes(latents, classes, size=32)
    images2, masks2 = render_scenes(changed, classes, size=32)
    assert torch.equal(masks, masks2)
    outside, inside = masks == 0, masks == 1
    if hue_index == 9:  # background hue: the object's pixels stay exactly as they were
        assert torch.equal(images.permute(1, 0, 2, 3)[:, inside], images2.permute(1, 0, 2, 3)[:, inside])
    else:  # object or light hue: the background stays exactly as it was
        assert torch.equal(images.permute(1, 0, 2, 3)[:, outside], images2.permute(1, 0, 2, 3)[:, outside])
    assert (images - images2).abs().amax() > 0.1


def test_rotation_keeps_mean_object_hue():
    for shape in range(len(SHAPE_NAMES)):
        latents, classes = sample_latents(1, _seed(), torch.tensor([shape]))
        views = latents.repeat(6, 1)
        views[:, 3:6] = torch.rand(6, 3) * 2 - 1
        images, masks = render_scenes(views, classes.repeat(6), size=48)
        hue = _mean_object_hue(images, masks)
        assert float(_hue_gap(hue, hue[0]).max()) < 0.05, (SHAPE_NAMES[shape], hue)
        # while the hue latent itself moves it a lot
        recoloured = views[:1].clone()
        recoloured[0, 7] = (recoloured[0, 7] + 2.6) % 2 - 1  # 0.3 turns on
        other = _mean_object_hue(*render_scenes(recoloured, classes, size=48))
        assert float(_hue_gap(other, hue[:1])) > 0.1  # less than 0.3: the tinted light pulls hues toward its own


def test_spotlight_angle_and_position_change_what_they_should():
    latents, classes = sample_latents(len(SHAPE_NAMES), _seed(), ALL_CLASSES)
    latents[:, :2] = 0.0
    images, masks = render_scenes(latents, classes, size=48)
    lit = latents.clone()
    lit[:, 6] = -lit[:, 6].sign() * 0.9  # the spotlight to the other side
    images2, masks2 = render_scenes(lit, classes, size=48)
    assert torch.equal(masks, masks2)  # lighting leaves the silhouette alone
    assert float((images - images2).abs().amax()) > 0.05
    moved = latents.clone()
    moved[:, 0] = 0.5  # to the right
    moved[:, 1] = -0.5  # and down
    _, masks3 = render_scenes(moved, classes, size=48)
    grid = torch.arange(48, dtype=torch.float32)
    cx = lambda m: (m.sum(1) * grid).sum(1) / m.sum((1, 2))  # noqa: E731
    cy = lambda m: (m.sum(2) * grid).sum(1) / m.sum((1, 2))  # noqa: E731
    assert bool((cx(masks3) > cx(masks) + 3).all()) and bool((cy(masks3) > cy(masks) + 3).all())


def test_subpixel_shift_changes_image_smoothly():
    """Shifting the object by 0 .. 2 pixels in 1/8-pixel steps: the change grows in proportion to the shift and
    every step changes the image by about the same amount (no aliasing jumps)."""
    size = 32
    px = 2 * CAMERA_DISTANCE * math.tan(math.radians(FOV_DEGREES) / 2) / size / POSITION_SCALE[0]  # latent / pixel
    shifts = torch.arange(17) / 8.0
    for shape in range(len(SHAPE_NAMES)):
        latents, classes = sample_latents(1, _seed(), torch.tensor([shape]))
        views = latents.repeat(17, 1)
        views[:, 0] = shifts * px
        views[:, 2] = 0.0  # depth 0, where px is exact
        images, _ = render_scenes(views, classes.repeat(17), size=size)
        total = (images - images[0]).abs().mean((1, 2, 3))[1:9]  # (8,) shifts of 1/8 .. 1 pixel
        per_shift = total / shifts[1:9]
        assert float(per_shift.max() / per_shift.min()) < 2.5, (SHAPE_NAMES[shape], per_shift)
        # Without anti-aliasing most 1/8-pixel steps would change nothing and a few would jump.
        step = (images[1:] - images[:-1]).abs().mean((1, 2, 3))  # (16,)
        ratios = (float(step.max() / step.median()), float(step.min() / step.median()))
        assert ratios[0] < 3.0 and ratios[1] > 0.4, (SHAPE_NAMES[shape], step)


def _ridge_r2(x_train, y_train, x_test, y_test, lam=1000.0):
    """Test R^2 per target of a ridge probe on standardised features (dual form; n << d)."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    y_mean = y_train.mean(0)
    alpha = torch.linalg.solve(a @ a.T + lam * torch.eye(len(a), dtype=a.dtype), y_train - y_mean)
    pred = b @ (a.T @ alpha) + y_mean
    return 1 - ((y_test - pred) ** 2).sum(0) / ((y_test - y_test.mean(0)) ** 2).sum(0)


def test_latents_recoverable_by_pixel_probe():
    """A linear ridge probe on raw pixels predicts position x/y and object hue on held-out scenes; with shuffled
    targets it predicts nothing. So these latents really drive the image."""
    n_train, n_test = 800, 300
    latents, classes = sample_latents(n_train + n_test, _seed())
    images, _ = render_scenes(latents, classes, size=32)
    x = images.reshape(len(images), -1).double()
    turn = (latents[:, 7].double() + 1) * math.pi  # object hue as an angle: predict its cos and sin
    y = torch.stack([latents[:, 0].double(), latents[:, 1].double(), turn.cos(), turn.sin()], 1)
    r2 = _ridge_r2(x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    assert float(r2[0]) > 0.3 and float(r2[1]) > 0.3, f"position R^2 {r2[:2].tolist()}"
    assert float(r2[2:].min()) > 0.5, f"object hue R^2 {r2[2:].tolist()}"
    shuffled = y[:n_train][torch.randperm(n_train)]
    assert float(_ridge_r2(x[:n_train], shuffled, x[n_train:], y[n_train:]).max()) < 0.1


def test_classes_by_name_and_overrides():
    latents, _ = sample_latents(3, _seed())
    by_name, _ = render_scenes(latents, ["cube", "torus", "teapot"], size=24)
    by_index, _ = render_scenes(latents, torch.tensor([1, 2, 6]), size=24)
    assert torch.equal(by_name, by_index)
    rot = euler_matrix(latents_to_raw(latents)[:, 3:6])
    overridden, _ = render_scenes(latents, [1, 2, 6], size=24, rotation=rot)
    torch.testing.assert_close(overridden, by_index, atol=1e-5, rtol=0)
    black, masks = render_scenes(latents, [1, 2, 6], size=24, background_rgb=torch.zeros(3, 3))
    assert float(black.permute(1, 0, 2, 3)[:, masks == 0].abs().max()) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(classes=["sphere", "dodecahedron"]), ValueError, "unknown shape 'dodecahedron'; expected one of sphere"),
        (dict(classes=[0, 7]), ValueError, r"classes must be in \[0, 7\)"),
        (dict(classes=[0]), ValueError, "classes must have 2 entries"),
        (dict(size=8), ValueError, r"size must be in \[16, 512\] pixels, got 8"),
        (dict(size=15), ValueError, r"size must be in \[16, 512\] pixels, got 15"),
        (dict(size=513), ValueError, r"size must be in \[16, 512\] pixels, got 513"),
        (dict(size=32.0), TypeError, "size must be an int, got float"),
        (dict(latents=torch.zeros(2, 9)), ValueError, "latents must have 10 columns"),
        (dict(latents=torch.zeros(2, 10, dtype=torch.int64)), TypeError, "latents must have a dtype in"),
        (dict(latents=torch.full((2, 10), 1.5)), ValueError, r"latents must lie in \[-1, 1\]"),
        (dict(latents=torch.full((2, 10), math.nan)), ValueError, "latents contains NaN or Inf"),
        (dict(rotation=torch.zeros(2, 3)), ValueError, "rotation must be 3-D"),
        (dict(light_rgb=torch.zeros(3, 3)), ValueError, r"light_rgb must have shape \(2, 3\)"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"latents": torch.zeros(2, 10), "classes": [0, 1], "size": 32, **kwargs}
    with pytest.raises(error, match=match):
        render_scenes(args.pop("latents"), args.pop("classes"), **args)


def test_bad_counts():
    with pytest.raises(ValueError, match="count must be >= 0, got -3"):
        sample_latents(-3, 0)
    with pytest.raises(TypeError, match="count must be an int"):
        sample_latents(2.5, 0)
    assert sample_latents(0, 0)[0].shape == (0, 10)
