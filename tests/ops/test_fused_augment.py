"""fused_augment on every available backend against fused_augment_ref (the torchvision composition) on the same
sampled parameters, view by view: the three recipes, awkward image sizes (1 x N, primes, up- and downscaling crops),
list and padded input, NCHW and NHWC, several views per source, the three output dtypes, both blur kernel rules,
real photographs; properties (identity, flip twice, grayscale, no NaN) and every error path, including the C++ entry
point's own argument checks."""

import dataclasses

import pytest
import torch
from _op_backends import ALL_BACKENDS, BACKENDS, DEVICE
from _op_backends import skip_unavailable as _skip_unavailable

from inv_kernels import _ext
from inv_kernels.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentParams,
    fused_augment_ref,
    sample_augment_params,
)
from inv_kernels.data.folders import decode_rgb
from inv_kernels.ops.fused_augment import FWD_OPS, fused_augment, pack_params

RECIPES = ("default", "spatial", "appearance")
SIZES = (8, 17, 32)
# Sources: 1 x N and N x 1 strips, primes, smaller than S (upscaling crops) and larger (downscaling crops).
SHAPES = [(1, 37), (29, 1), (13, 13), (7, 53), (61, 47), (97, 89)]
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
TOL = 1 / 255  # parity bound in de-normalised units ([0, 1] pixel values)
TOL_HUE = 2 / 255  # views whose jitter (and so hue) is applied
# A backend that follows torch's CPU float32 arithmetic step by step is held to far less (measured: about 1e-6).
TOL_EXACT = {"cpu": 1e-5}
ROUNDING = {torch.float32: 0.0, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}  # >= one ulp, relative


def _images(shapes=SHAPES):
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, device=DEVICE) for h, w in shapes]


def _sizes(images):
    return torch.tensor([tuple(img.shape[1:]) for img in images])


def _force(params: AugmentParams, **values) -> AugmentParams:
    """params with the named fields set to one value for every view."""
    n = len(params)
    fields = {name: torch.full((n,), value, dtype=getattr(params, name).dtype) for name, value in values.items()}
    return dataclasses.replace(params, **fields)


def _denormalise(x: torch.Tensor) -> torch.Tensor:
    return x.cpu().float() * STD + MEAN


def _check_parity(backend, out, sources, params, size, out_dtype=torch.float32, blur_kernel="from_sigma"):
    """out (V, 3, S, S) of ``backend`` against fused_augment_ref on sources[v] (V uint8 images), view by view."""
    assert out.shape == (len(params), 3, size, size) and out.dtype == out_dtype
    assert bool(torch.isfinite(out).all()), f"{backend}: non-finite values"
    ref = fused_augment_ref([s.cpu() for s in sources], params, size, blur_kernel=blur_kernel)  # float32
    got, want = _denormalise(out), _denormalise(ref)
    error = (got - want).abs()  # (V, 3, S, S)
    bound = torch.where(params.jitter_applied, TOL_HUE, TOL).view(-1, 1, 1, 1)
    if backend in TOL_EXACT:
        bound = torch.full_like(bound, TOL_EXACT[backend])
    allowed = bound + ROUNDING[out_dtype] * (ref.abs() * STD)  # the output's own rounding
    bad = error > allowed
    worst = error.amax(dim=(1, 2, 3))
    assert not bool(bad.any()), (
        f"{backend} {out_dtype}: {int(bad.sum())} of {bad.numel()} values differ; views "
        f"{bad.any(dim=(1, 2, 3)).nonzero()[:, 0].tolist()}; worst error per view {worst.tolist()}"
    )


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("recipe", RECIPES)
def test_parity_with_reference_on_awkward_sizes(backend, recipe, size):
    _skip_unavailable(backend)
    images = _images()
    params = sample_augment_params(recipe, _sizes(images))
    out = fused_augment(images, params, size, backend=backend)
    _check_parity(backend, out, images, params, size)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_padded_batch_two_views_per_source(backend, layout):
    _skip_unavailable(backend)
    shapes = [(23, 31), (40, 17), (1, 40), (37, 37)]
    sizes = torch.tensor(shapes)
    batch = torch.randint(0, 256, (len(shapes), 3, 40, 40), dtype=torch.uint8, device=DEVICE)  # padding is random
    index = torch.arange(len(shapes)).repeat(2)  # (8,): view v from source v % 4
    params = sample_augment_params("default", sizes[index])
    images = batch if layout == "NCHW" else batch.permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3)
    out = fused_augment(images, params, 17, sizes=sizes, source_index=index, layout=layout, backend=backend)
    sources = [batch[i, :, :h, :w] for i, (h, w) in zip(index.tolist(), sizes[index].tolist())]
    _check_parity(backend, out, sources, params, 17)
    if layout == "NHWC":  # the same arithmetic whatever the strides
        nchw = fused_augment(batch, params, 17, sizes=sizes, source_index=index, backend=backend)
        assert torch.equal(out, nchw)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_out_dtypes(backend, out_dtype):
    _skip_unavailable(backend)
    images = _images(SHAPES[2:])
    params = sample_augment_params("default", _sizes(images))
    out = fused_augment(images, params, 17, out_dtype=out_dtype, backend=backend)
    _check_parity(backend, out, images, params, 17, out_dtype)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("size", [8, 17])
@pytest.mark.parametrize("blur_kernel", ["from_sigma", 23])
def test_blur_and_jitter_on_every_view(backend, blur_kernel, size):
    """Blur (23 is clipped to 2 S - 1 = 15 at S = 8) and the whole jitter, hue included, on every view."""
    _skip_unavailable(backend)
    images = _images()
    params = _force(sample_augment_params("default", _sizes(images)), blur_applied=True, jitter_applied=True)
    params = dataclasses.replace(
        params,
        blur_sigma=0.1 + 1.9 * torch.rand(len(params)),
        hue=torch.rand(len(params)) - 0.5,
        brightness=0.6 + 0.8 * torch.rand(len(params)),
    )
    out = fused_augment(images, params, size, blur_kernel=blur_kernel, backend=backend)
    _check_parity(backend, out, images, params, size, blur_kernel=blur_kernel)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("size,blur_kernel", [(45, 23), (77, 41)])
def test_views_of_several_tiles_and_wide_blurs(backend, size, blur_kernel):
    """Views wider than one 32 x 32 tile of the CUDA kernel (partial edge tiles), and a blur of radius 20, beyond
    the tiled path's 11 (the CUDA kernel's wide-blur path), on every view."""
    _skip_unavailable(backend)
    images = _images(SHAPES[2:])
    params = _force(sample_augment_params("default", _sizes(images)), blur_applied=True)
    params = dataclasses.replace(params, blur_sigma=0.1 + 1.9 * torch.rand(len(params)))
    out = fused_augment(images, params, size, blur_kernel=blur_kernel, backend=backend)
    _check_parity(backend, out, images, params, size, blur_kernel=blur_kernel)


@pytest.fixture(scope="module")
def photographs(real_data_cache):
    """Two CIFAR-10 JPEGs (32 x 32) and one Tiny-ImageNet JPEG (64 x 64), decoded to (3, H, W) uint8."""
    paths = [
        sorted((real_data_cache / "cifar10" / "test" / "ship").glob("*.jpg"))[0],
        sorted((real_data_cache / "cifar10" / "test" / "cat").glob("*.jpg"))[1],
        sorted(sorted((real_data_cache / "tinyimagenet100" / "val").iterdir())[3].glob("*.JPEG"))[0],
    ]
    return [decode_rgb(p) for p in paths]


@pytest.mark.realdata
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("recipe", ["default", "appearance"])
def test_real_photographs(backend, recipe, photographs):
    _skip_unavailable(backend)
    images = [p.to(DEVICE) for p in photographs]
    index = torch.arange(len(images)).repeat(2)
    params = sample_augment_params(recipe, _sizes(images)[index])
    out = fused_augment(images, params, 32, source_index=index, backend=backend)
    _check_parity(backend, out, [images[i] for i in index.tolist()], params, 32)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("side", [1, 8, 17])
def test_identity_gives_the_normalised_input(backend, side):
    _skip_unavailable(backend)
    images = _images([(side, side)] * 3)
    out = fused_augment(images, AugmentParams.identity(_sizes(images)), side, backend=backend)
    expected = (torch.stack(images).cpu().float() / 255 - MEAN) / STD
    torch.testing.assert_close(out.cpu(), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shape", [(5, 11), (3, 50), (61, 40), (1, 1)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_resize_matches_torch_interpolate(backend, shape):
    """Whole-image views (up-, down- and mixed scaling) against F.interpolate(bilinear, antialias=True)."""
    _skip_unavailable(backend)
    images = _images([shape] * 2)
    out = fused_augment(
        images, AugmentParams.identity(_sizes(images)), 17, mean=(0, 0, 0), std=(1, 1, 1), backend=backend
    )
    x = torch.stack(images).cpu().float() / 255  # (2, 3, H, W)
    expected = torch.nn.functional.interpolate(x, size=(17, 17), mode="bilinear", antialias=True, align_corners=False)
    atol = TOL_EXACT.get(backend, TOL)
    torch.testing.assert_close(out.cpu(), expected, atol=atol, rtol=0)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_flip_twice_gives_the_input(backend):
    _skip_unavailable(backend)
    out_size = 9
    images = _images([(out_size, out_size)] * 2)  # S equal to the image size: the identity framing
    params = _force(AugmentParams.identity(_sizes(images)), flip=True)
    once = fused_augment(images, params, out_size, mean=(0, 0, 0), std=(1, 1, 1), backend=backend)
    flipped = (once * 255).round().to(torch.uint8)  # (2, 3, S, S): exact pixel values
    assert torch.equal(flipped.cpu(), torch.stack(images).cpu().flip(-1))
    twice = fused_augment(list(flipped), params, out_size, mean=(0, 0, 0), std=(1, 1, 1), backend=backend)
    assert torch.equal((twice * 255).round().to(torch.uint8).cpu(), torch.stack(images).cpu())


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_grayscale_has_equal_channels(backend):
    _skip_unavailable(backend)
    images = _images()
    params = _force(sample_augment_params("default", _sizes(images)), grayscale=True)
    out = fused_augment(images, params, 17, mean=(0, 0, 0), std=(1, 1, 1), backend=backend)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_no_nan_on_extreme_inputs(backend):
    """Constant images (hue's max == min case), black and white, zero factors and the largest hue shifts."""
    _skip_unavailable(backend)
    images = [torch.full((3, 11, 13), v, dtype=torch.uint8, device=DEVICE) for v in (0, 255, 128)]
    images += _images([(5, 7), (1, 1)])
    n = len(images)
    base = _force(sample_augment_params("default", _sizes(images)), jitter_applied=True, blur_applied=True)
    for factors in [
        dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5),
        dict(brightness=2.0, contrast=2.0, saturation=2.0, hue=-0.5),
    ]:
        params = dataclasses.replace(_force(base, **factors), blur_sigma=torch.full((n,), 2.0))
        out = fused_augment(images, params, 8, backend=backend)
        assert bool(torch.isfinite(out).all())
        _check_parity(backend, out, images, params, 8)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_dispatcher_errors(backend):
    _skip_unavailable(backend)
    images = _images([(12, 12), (9, 14)])
    params = sample_augment_params("default", _sizes(images))
    with pytest.raises(TypeError, match="images.*uint8"):
        fused_augment([img.float() for img in images], params, 8, backend=backend)
    with pytest.raises(TypeError, match="out_dtype"):
        fused_augment(images, params, 8, out_dtype=torch.float64, backend=backend)
    with pytest.raises(ValueError, match="layout must be one of"):
        fused_augment(images, params, 8, layout="CHW", backend=backend)
    with pytest.raises(ValueError, match="list of images must hold"):
        fused_augment(images, params, 8, layout="NHWC", backend=backend)
    with pytest.raises(ValueError, match=r"source_index must lie in \[0, 2\)"):
        fused_augment(images, params, 8, source_index=torch.tensor([0, 2]), backend=backend)
    with pytest.raises(ValueError, match="source_index holds 3 views"):
        fused_augment(images, params, 8, source_index=torch.tensor([0, 1, 1]), backend=backend)
    outside = dataclasses.replace(params, crop_left=params.crop_left + 15)
    with pytest.raises(ValueError, match="crop box of view 0 .* does not fit"):
        fused_augment(images, outside, 8, backend=backend)
    with pytest.raises(TypeError, match="non-empty list"):
        fused_augment([], params, 8, backend=backend)
    with pytest.raises(ValueError, match="blur_kernel must be"):
        fused_augment(images, params, 8, blur_kernel=4, backend=backend)


NAN, INF = float("nan"), float("inf")
# (id, fused_augment keywords, fields forced on every view, error, message): bad numbers, rejected before dispatch.
BAD_NUMBERS = [
    ("std-nan", dict(std=(0.2, NAN, 0.2)), {}, ValueError, r"fused_augment: std\[1\] must be finite, got nan$"),
    ("std-inf", dict(std=(INF, 0.2, 0.2)), {}, ValueError, r"std\[0\] must be finite, got inf"),
    (
        "std-tiny",
        dict(std=(0.2, 0.2, 1e-30)),
        {},
        ValueError,
        r"std\[2\] must be finite and at least 1e-06 \(std > 0; .*\), got 1e-30$",
    ),
    ("std-denormal", dict(std=(1e-40, 0.2, 0.2)), {}, ValueError, r"std\[0\] must be .* at least 1e-06 .*got 1e-40"),
    ("std-zero", dict(std=(0.2, 0.0, 0.2)), {}, ValueError, r"std\[1\] must be .* got 0.0$"),
    ("std-negative", dict(std=(0.2, 0.2, -0.5)), {}, ValueError, r"std\[2\] must be .* got -0.5$"),
    ("mean-inf", dict(mean=(0.4, INF, 0.4)), {}, ValueError, r"fused_augment: mean\[1\] must be finite, got inf$"),
    ("mean-nan", dict(mean=(NAN, 0.4, 0.4)), {}, ValueError, r"mean\[0\] must be finite, got nan$"),
    ("std-length", dict(std=(0.2, 0.2)), {}, ValueError, r"std must hold 3 values \(one per channel\), got 2"),
    ("std-string", dict(std="0.2"), {}, TypeError, r"std must be a sequence of 3 numbers .*got str"),
    ("mean-entry", dict(mean=(0.4, None, 0.4)), {}, TypeError, r"mean\[1\] must be a number, got NoneType None"),
    (
        "float16-range",
        dict(mean=(0.0, 0.0, 0.0), std=(1e-5, 1.0, 1.0), out_dtype=torch.float16),
        {},
        ValueError,
        r"mean\[0\] = 0.0 and std\[0\] = 1e-05 normalise pixels to magnitudes up to 1e\+05, beyond the range of "
        r"torch.float16 \(65504\)",
    ),
    ("out-size-zero", dict(out_size=0), {}, ValueError, r"out_size must be a positive int, got 0$"),
    ("out-size-float", dict(out_size=8.0), {}, TypeError, r"out_size must be a positive int, got float 8.0"),
    (
        "out-size-huge",
        dict(out_size=10**6),
        {},
        ValueError,
        r"out_size = 1000000 makes an output of 2 x 3 x 1000000 x 1000000 float32 values \(2.24e\+04 GiB\), more than "
        r"the .*; use a smaller out_size",
    ),
    (
        "brightness-nan",
        {},
        dict(jitter_applied=True, brightness=NAN),
        ValueError,
        r"params.brightness must be >= 0 where jitter_applied \(and finite\); view 0 has nan \(2 such view\(s\)\)",
    ),
    (
        "contrast-negative",
        {},
        dict(jitter_applied=True, contrast=-0.5),
        ValueError,
        r"params.contrast must be >= 0 where jitter_applied \(and finite\); view 0 has -0.5",
    ),
    (
        "saturation-inf",
        {},
        dict(jitter_applied=True, saturation=INF),
        ValueError,
        r"params.saturation must be >= 0 .*; view 0 has inf",
    ),
    (
        "hue-range",
        {},
        dict(jitter_applied=True, hue=0.75),
        ValueError,
        r"params.hue must be in \[-0.5, 0.5\] where jitter_applied; view 0 has 0.75",
    ),
    ("hue-nan", {}, dict(jitter_applied=True, hue=NAN), ValueError, r"params.hue must be in .*; view 0 has nan"),
    (
        "blur-sigma-inf",
        {},
        dict(blur_applied=True, blur_sigma=INF),
        ValueError,
        r"params.blur_sigma must be > 0 where blur_applied \(and finite\); view 0 has inf",
    ),
    ("blur-sigma-nan", {}, dict(blur_applied=True, blur_sigma=NAN), ValueError, r"params.blur_sigma .* view 0 has nan"),
]


def _bad_number_call(backend, kwargs, forced):
    images = _images([(12, 12), (9, 14)])
    params = _force(sample_augment_params("default", _sizes(images)), **forced)
    return fused_augment(images, params, **{"out_size": 8, **kwargs}, backend=backend)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize(
    "kwargs, forced, error, message", [pytest.param(*case[1:], id=case[0]) for case in BAD_NUMBERS]
)
def test_bad_numbers_are_rejected_by_name(backend, kwargs, forced, error, message):
    """NaN / Inf / tiny normalisation values and bad view parameters: the reference made all-NaN views (std NaN) or
    accepted them (mean Inf, NaN factors), the compiled backends raised their own messages or computed garbage."""
    _skip_unavailable(backend)
    with pytest.raises(error, match=message):
        _bad_number_call(backend, kwargs, forced)


@pytest.mark.parametrize(
    "kwargs, forced, error, message",
    [pytest.param(*case[1:], id=case[0]) for case in BAD_NUMBERS[:4] + BAD_NUMBERS[14:17]],
)
def test_bad_numbers_give_one_message_on_every_backend(kwargs, forced, error, message):
    messages = set()
    for backend in BACKENDS:
        with pytest.raises(error) as info:
            _bad_number_call(backend, kwargs, forced)
        messages.add(str(info.value))
    assert len(messages) == 1, messages


def test_jitter_order_must_be_a_permutation_on_every_backend():
    images = _images([(12, 12), (9, 14)])
    params = sample_augment_params("default", _sizes(images))
    order = params.jitter_order.clone()
    order[1] = torch.tensor([0, 1, 1, 3])
    bad = dataclasses.replace(params, jitter_order=order, jitter_applied=torch.tensor([False, False]))
    for backend in BACKENDS:
        with pytest.raises(
            ValueError,
            match=r"params.jitter_order of view 1 must be a permutation of 0, 1, 2, 3, "
            r"got \[0, 1, 1, 3\]",
        ):
            fused_augment(images, bad, 8, backend=backend)


def test_meta_and_sparse_images_are_rejected():
    images = _images([(12, 12), (9, 14)])
    params = sample_augment_params("default", _sizes(images))
    with pytest.raises(ValueError, match=r"images\[0\] is on the meta device, which holds no values"):
        fused_augment([img.to("meta") for img in images], params, 8)
    with pytest.raises(ValueError, match=r"images\[1\] is on meta, images\[0\] on cpu"):
        fused_augment([images[0].cpu(), images[1].to("meta")], params, 8)
    padded = torch.zeros(2, 3, 12, 14, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"images is on the meta device"):
        fused_augment(padded.to("meta"), params, 8)
    with pytest.raises(TypeError, match=r"images must be a dense \(strided\) tensor"):
        fused_augment(padded.to_sparse(), params, 8)


def _abi_call(**change):
    """Calls _C.cpu.fused_augment on one valid 6 x 7 source and one view (S = 4), with ``change`` applied."""
    src = torch.randint(0, 256, (1, 3, 6, 7), dtype=torch.uint8)
    sizes = torch.tensor([[6, 7]], dtype=torch.int32)
    params = sample_augment_params("default", sizes)
    iparams, fparams = pack_params(params, torch.zeros(1, dtype=torch.int64), 4, 3, torch.device("cpu"))
    for column, value in change.pop("iparams", {}).items():
        iparams[0, column] = value
    for column, value in change.pop("fparams", {}).items():
        fparams[0, column] = value
    norm = torch.tensor([0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    out = torch.empty(1, 3, 4, 4)
    args = dict(
        src=src.data_ptr(),
        s_b=src.stride(0),
        s_c=src.stride(1),
        s_h=src.stride(2),
        s_w=src.stride(3),
        sizes=sizes.data_ptr(),
        B_src=1,
        iparams=iparams.data_ptr(),
        fparams=fparams.data_ptr(),
        norm=norm.data_ptr(),
        out=out.data_ptr(),
        V=1,
        S=4,
        dtype=0,
    )
    args.update(change)
    _ext.C.cpu.fused_augment(**args)
    return out


@pytest.mark.skipif(_ext.C_MISSING is not None, reason=f"the C++ extension is missing: {_ext.C_MISSING}")
@pytest.mark.parametrize(
    "change, message",
    [
        (dict(src=0), "src is a null pointer"),
        (dict(out=0), "out is a null pointer"),
        (dict(V=0), "V must be positive, got 0"),
        (dict(S=-1), "S must be positive, got -1"),
        (dict(dtype=1), "out dtype must be float32"),
        (dict(dtype=9), "unknown dtype code 9"),
        (dict(iparams={0: 1}), r"source index 1 is outside \[0, 1\)"),
        (dict(iparams={2: 5, 4: 3}), "crop box .* does not fit its source of size"),
        (dict(iparams={12: 4}), "blur kernel size must be 0 .* odd in \\[1, 7\\].* got 4"),
        (dict(iparams={12: 9}), "blur kernel size .* got 9"),
        (dict(iparams={7: 1, 8: 1}), "jitter order must be a permutation"),
        (dict(iparams={6: 1}, fparams={3: 0.75}), r"hue shift must lie in \[-0.5, 0.5\], got 0.75"),
        (dict(iparams={12: 3}, fparams={4: 0.0}), "blur sigma must be > 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_cpu_entry_point_checks(change, message):
    assert bool(torch.isfinite(_abi_call()).all())
    with pytest.raises(ValueError, match=f"fused_augment \\(cpu\\): .*{message}"):
        _abi_call(**change)


def _packed_inputs(backend):
    """The custom op's inputs for 3 views of 2 sources (two views of the first), and the expected output."""
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, device=DEVICE) for h, w in ((13, 17), (9, 11))]
    index = torch.tensor([0, 1, 0])
    params = sample_augment_params("default", _sizes(images)[index])
    batch = torch.zeros((2, 3, 13, 17), dtype=torch.uint8, device=DEVICE)
    for i, img in enumerate(images):
        batch[i, :, : img.shape[1], : img.shape[2]] = img
    iparams, fparams = pack_params(params, index, 8, "from_sigma", batch.device)
    norm = torch.tensor([*IMAGENET_MEAN, *IMAGENET_STD], dtype=torch.float32, device=DEVICE)  # (6,)
    sizes32 = _sizes(images).to(device=DEVICE, dtype=torch.int32)  # (2, 2)
    expected = fused_augment(images, params, 8, source_index=index, backend=backend)
    return (batch, sizes32, iparams, fparams, norm, 8, torch.float32), expected


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b.values[0] != "reference"])
def test_opcheck(backend):
    _skip_unavailable(backend)
    args, expected = _packed_inputs(backend)
    torch.library.opcheck(FWD_OPS[backend], args, test_utils=("test_schema", "test_faketensor"))
    torch.testing.assert_close(FWD_OPS[backend](*args), expected, atol=0, rtol=0)


def test_meta_device_shape_through_fake_kernel():
    batch = torch.empty((2, 3, 13, 17), dtype=torch.uint8, device="meta")
    sizes32 = torch.empty((2, 2), dtype=torch.int32, device="meta")
    iparams = torch.empty((5, 13), dtype=torch.int32, device="meta")
    fparams, norm = torch.empty((5, 5), device="meta"), torch.empty(6, device="meta")
    out = FWD_OPS["cpu"](batch, sizes32, iparams, fparams, norm, 8, torch.bfloat16)
    assert out.shape == (5, 3, 8, 8) and out.dtype == torch.bfloat16


def test_torch_compile_fullgraph():
    """The registered op inside a compiled graph ("aot_eager": the graph is traced with the fake kernel, then run)."""
    backend = "cuda" if "cuda" in BACKENDS else "cpu"
    if backend not in BACKENDS:
        pytest.skip("no compiled backend available")
    torch._dynamo.reset()
    op = FWD_OPS[backend]

    def augment_and_scale(batch, sizes32, iparams, fparams, norm):
        return op(batch, sizes32, iparams, fparams, norm, 8, torch.float32) * 2.0

    args, expected = _packed_inputs(backend)
    compiled = torch.compile(augment_and_scale, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args[:5]), expected * 2.0, atol=0, rtol=0)
