"""fused_augment_ref: the torch reference of the fused augmentation (the specification of every backend).

Per view, composed from torchvision.transforms.v2.functional on tensors, in this fixed order:

    x = img[:, top:top+h, left:left+w] / 255             uint8 -> float32 in [0, 1], right after the crop
    x = resize(x, (S, S), bilinear, antialias=True)      torchvision v2's default for tensors (and what PIL does)
    x = hflip(x)                                         if flip
    x = adjust_{brightness,contrast,saturation,hue}(x)   if jitter_applied, in jitter_order (each clamps to [0, 1])
    x = rgb_to_grayscale(x, 3)                           if grayscale
    x = gaussian_blur(x, k, sigma)                       if blur_applied; reflect padding, separable
    out = ((x - mean) / std).to(out_dtype)               (B, 3, S, S)

Everything after the crop stays float32: PIL (the MoCo baseline) rounds to uint8 after the resize, after each jitter
op, after grayscale and after the blur; this reference does not, so it differs from PIL by those roundings (and by
PIL's own filters), within a few 1/255.

Blur kernel size (``blur_kernel``): "from_sigma" gives k = 2 * ceil(3 * sigma) + 1 (covers +-3 sigma: 3..13 for sigma
in [0.1, 2]; MoCo v2 uses PIL's GaussianBlur(radius=sigma), whose extended-box approximation reaches about as far);
an int gives that fixed odd size (23 is the reference code's). Either is clipped to 2 * S - 1, the largest size
reflect padding allows on an S x S view.

For MoCo v2 (default) and spatial recipes this order gives exactly what their torchvision order gives (flip commutes
with the colour ops and the symmetric blur). For the appearance recipe the paper jitters and blurs the full image
before Resize + CenterCrop; here they act on the S x S view (contrast's mean is the view's, sigma is in view pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from inv_kernels._validate import check_fits, check_has_values, check_tensor
from inv_kernels.ops.augment_params import AugmentParams

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MIN_STD = 1e-6  # smallest normalisation std accepted: below it (x - mean) / std is mostly rounding, or overflows
_JITTER_FNS = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
_OP = "fused_augment_ref"


def blur_kernel_size(sigma: float, blur_kernel: str | int, out_size: int) -> int:
    """The odd kernel side used for ``sigma`` on an out_size x out_size view (see the module docstring)."""
    k = 2 * math.ceil(3.0 * sigma) + 1 if blur_kernel == "from_sigma" else int(blur_kernel)
    return min(k, 2 * out_size - 1)


def padded_sizes(op: str, batch: Tensor, sizes: Tensor | None) -> Tensor:
    """The checked (B, 2) int64 CPU (H, W) of each image of a padded (B, 3, Hmax, Wmax) batch; default: the full
    padded size. Raises TypeError / ValueError naming ``op`` for a bad dtype, shape or a size outside [1, max]."""
    check_has_values(op, "images", batch)
    if sizes is None:
        sizes = torch.tensor([batch.shape[2:]] * batch.shape[0], dtype=torch.int64)
    check_tensor(op, "sizes", sizes, ndim=2, layout="(B, 2)", dtypes=(torch.int32, torch.int64))
    sizes = sizes.to("cpu", torch.int64)
    if sizes.shape != (batch.shape[0], 2):
        raise ValueError(f"{op}: sizes must be ({batch.shape[0]}, 2), got {tuple(sizes.shape)}")
    if bool(((sizes <= 0).any(dim=1) | (sizes[:, 0] > batch.shape[2]) | (sizes[:, 1] > batch.shape[3])).any()):
        raise ValueError(f"{op}: sizes must lie in [1, {tuple(batch.shape[2:])}], got {sizes.tolist()}")
    return sizes


def image_list_sizes(op: str, images: Sequence[Tensor]) -> Tensor:
    """The (B, 2) int64 (H, W) of a list of (3, H, W) uint8 tensors on one device, each checked (TypeError /
    ValueError naming ``op`` and the image's position)."""
    for i, img in enumerate(images):
        check_tensor(op, f"images[{i}]", img, ndim=3, layout="(3, H, W)", dtypes=(torch.uint8,))
        if img.shape[0] != 3 or img.shape[1] == 0 or img.shape[2] == 0:
            raise ValueError(f"{op}: images[{i}] must be (3, H, W) with H, W >= 1, got {tuple(img.shape)}")
        if img.device != images[0].device:
            raise ValueError(f"{op}: images[{i}] is on {img.device}, images[0] on {images[0].device}")
        check_has_values(op, f"images[{i}]", img)
    return torch.tensor([tuple(img.shape[1:]) for img in images], dtype=torch.int64).reshape(-1, 2)


def _as_views(images: Sequence[Tensor] | Tensor, sizes: Tensor | None) -> tuple[list[Tensor], Tensor]:
    """The per-view (3, H, W) uint8 tensors and their (B, 2) sizes."""
    if isinstance(images, Tensor):
        check_tensor(_OP, "images", images, ndim=4, layout="(B, 3, Hmax, Wmax)", dtypes=(torch.uint8,))
        if images.shape[1] != 3:
            raise ValueError(f"{_OP}: images must be (B, 3, Hmax, Wmax), got shape {tuple(images.shape)}")
        sizes = padded_sizes(_OP, images, sizes)
        return [images[i, :, : sizes[i, 0], : sizes[i, 1]] for i in range(images.shape[0])], sizes
    if sizes is not None:
        raise ValueError(f"{_OP}: sizes is only for a padded (B, 3, Hmax, Wmax) tensor, not a list of images")
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(
            f"{_OP}: images must be a list of (3, H, W) uint8 tensors or a (B, 3, H, W) uint8 tensor, "
            f"got {type(images).__name__}"
        )
    return list(images), image_list_sizes(_OP, images)


def _channel_values(op: str, name: str, values: object) -> list[float]:
    """The 3 per-channel values of ``mean`` or ``std`` as floats; TypeError / ValueError naming the entry."""
    if isinstance(values, Tensor):
        if values.dim() != 1 or values.is_meta or values.is_complex():
            raise ValueError(f"{op}: {name} must hold 3 real values, got a tensor of shape {tuple(values.shape)}")
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{op}: {name} must be a sequence of 3 numbers (one per channel), got {type(values).__name__}")
    if len(values) != 3:
        raise ValueError(f"{op}: {name} must hold 3 values (one per channel), got {len(values)}: {list(values)}")
    out = []
    for c, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{op}: {name}[{c}] must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{op}: {name}[{c}] must be finite, got {value}")
        out.append(float(value))
    return out


def check_normalisation(op: str, mean: object, std: object, out_dtype: torch.dtype) -> None:
    """Checks the normalisation (x - mean) / std of views x in [0, 1]: 3 finite means, 3 finite stds of at least
    MIN_STD, and normalised values within the range of ``out_dtype`` (a float16 output overflows sooner).

    Raises:
        TypeError: mean or std not a sequence of 3 numbers.
        ValueError: a wrong length, a non-finite value, std below MIN_STD, or values beyond ``out_dtype``'s range;
            the message names the entry (e.g. ``std[1]``) and its value.
    """
    means = _channel_values(op, "mean", mean)
    stds = _channel_values(op, "std", std)
    for c, s in enumerate(stds):
        if not s >= MIN_STD:
            raise ValueError(
                f"{op}: std[{c}] must be finite and at least {MIN_STD:g} (std > 0; a tinier std "
                f"overflows the normalised values), got {s}"
            )
    limit = torch.finfo(out_dtype).max
    for c, (m, s) in enumerate(zip(means, stds)):
        reach = max(abs(m), abs(1.0 - m)) / s  # the largest |(x - m) / s| for x in [0, 1]
        if not reach <= limit:
            raise ValueError(
                f"{op}: mean[{c}] = {m} and std[{c}] = {s} normalise pixels to magnitudes up to "
                f"{reach:.3g}, beyond the range of {out_dtype} ({limit:.5g})"
            )


def _check_view_params(op: str, p: AugmentParams, sizes: Tensor) -> None:
    """Every view's crop box, jitter order and, where applied, jitter factors and blur sigma (p on the CPU)."""
    top, left, h, w = (t.long() for t in (p.crop_top, p.crop_left, p.crop_height, p.crop_width))
    bad = (top < 0) | (left < 0) | (h < 1) | (w < 1) | (top + h > sizes[:, 0]) | (left + w > sizes[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{op}: params: crop box of view {i} (top {int(top[i])}, left {int(left[i])}, "
            f"height {int(h[i])}, width {int(w[i])}) does not fit its image of size "
            f"{tuple(sizes[i].tolist())}"
        )
    order_ok = (p.jitter_order.sort(dim=1).values == torch.arange(4)).all(dim=1)  # (V,)
    if not bool(order_ok.all()):
        i = int((~order_ok).nonzero()[0])
        raise ValueError(
            f"{op}: params.jitter_order of view {i} must be a permutation of 0, 1, 2, 3, "
            f"got {p.jitter_order[i].tolist()}"
        )
    applied = p.jitter_applied
    for name in ("brightness", "contrast", "saturation"):
        value = getattr(p, name)
        _first_bad(
            op, name, applied & ~((value >= 0) & torch.isfinite(value)), value, ">= 0 where jitter_applied (and finite)"
        )
    _first_bad(op, "hue", applied & ~((p.hue >= -0.5) & (p.hue <= 0.5)), p.hue, "in [-0.5, 0.5] where jitter_applied")
    sigma = p.blur_sigma
    _first_bad(
        op,
        "blur_sigma",
        p.blur_applied & ~((sigma > 0) & torch.isfinite(sigma)),
        sigma,
        "> 0 where blur_applied (and finite)",
    )


def _first_bad(op: str, name: str, bad: Tensor, value: Tensor, expected: str) -> None:
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{op}: params.{name} must be {expected}; view {i} has {float(value[i])} ({int(bad.sum())} such view(s))"
        )


def _check_args(
    op: str,
    params: AugmentParams,
    n: int,
    sizes: Tensor,
    out_size: int,
    mean,
    std,
    out_dtype,
    blur_kernel: str | int,
    device: torch.device,
) -> None:
    """Every argument of a fused augmentation of n views onto ``device``, checked once before any backend runs (the
    backends share these checks, so each rejects the same input with the same message)."""
    if not isinstance(params, AugmentParams):
        raise TypeError(f"{op}: params must be AugmentParams, got {type(params).__name__}")
    if n == 0:
        raise ValueError(f"{op}: images must not be empty")
    if len(params) != n:
        raise ValueError(f"{op}: params holds {len(params)} views but images holds {n}")
    if isinstance(out_size, bool) or not isinstance(out_size, int):
        raise TypeError(f"{op}: out_size must be a positive int, got {type(out_size).__name__} {out_size!r}")
    if out_size <= 0:
        raise ValueError(f"{op}: out_size must be a positive int, got {out_size!r}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"{op}: out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")
    check_fits(
        op,
        f"out_size = {out_size} makes an output of {n} x 3 x {out_size} x {out_size} "
        f"{str(out_dtype).removeprefix('torch.')} values",
        n * 3 * out_size**2 * out_dtype.itemsize,
        device,
        advice="use a smaller out_size or fewer views per call",
    )
    check_normalisation(op, mean, std, out_dtype)
    if not (isinstance(blur_kernel, str) and blur_kernel == "from_sigma") and (
        isinstance(blur_kernel, bool) or not isinstance(blur_kernel, int) or blur_kernel < 1 or blur_kernel % 2 == 0
    ):
        raise ValueError(f"{op}: blur_kernel must be 'from_sigma' or an odd positive int, got {blur_kernel!r}")
    if params.crop_top.is_meta:
        raise ValueError(f"{op}: params are on the meta device, which holds no values")
    _check_view_params(op, params.to("cpu"), sizes)


def fused_augment_ref(
    images: Sequence[Tensor] | Tensor,
    params: AugmentParams,
    out_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    out_dtype: torch.dtype = torch.float32,
    blur_kernel: str | int = "from_sigma",
    *,
    sizes: Tensor | None = None,
) -> Tensor:
    """Augments view i of ``images`` with row i of ``params`` (see the module docstring for the exact steps).

    Args:
        images: a list of B (3, H_i, W_i) uint8 tensors, or a padded (B, 3, Hmax, Wmax) uint8 tensor whose image i
            is ``[:, :H_i, :W_i]``.
        params: AugmentParams of B views (crop boxes in each image's pixels).
        out_size: S, the side of the square output views.
        mean, std: 3 finite per-channel values for the normalisation, std >= MIN_STD (ImageNet's by default).
        out_dtype: torch.float32, torch.bfloat16 or torch.float16.
        blur_kernel: "from_sigma" (k = 2 ceil(3 sigma) + 1) or a fixed odd kernel size (e.g. 23).
        sizes: (B, 2) int (H_i, W_i) for a padded tensor (default: the full Hmax, Wmax).

    Returns:
        (B, 3, S, S) tensor of ``out_dtype`` on the images' device: the normalised views.

    Raises:
        TypeError: images not uint8 (or not dense), params not AugmentParams, a bad out_dtype, mean / std not 3
            numbers, a non-int out_size.
        ValueError: wrong shapes, B of params and images differ, images on the meta device, a crop box outside its
            image, a non-positive out_size or an output too large for the memory available, a non-finite mean or
            std, std < MIN_STD, normalised values beyond out_dtype's range, a jitter_order that is not a
            permutation, and where applied: a negative or non-finite jitter factor, a hue shift outside
            [-0.5, 0.5], a blur_sigma not finite and > 0.
    """
    views, sizes = _as_views(images, sizes)
    _check_args(
        _OP,
        params,
        len(views),
        sizes,
        out_size,
        mean,
        std,
        out_dtype,
        blur_kernel,
        views[0].device if views else torch.device("cpu"),
    )
    p = params.as_dict()  # python scalars: one host sync for the whole batch
    out = []
    for i, img in enumerate(views):
        top, left, h, w = p["crop_top"][i], p["crop_left"][i], p["crop_height"][i], p["crop_width"][i]
        x = F.to_dtype(img[:, top : top + h, left : left + w], torch.float32, scale=True)  # (3, h, w) in [0, 1]
        x = F.resize(x, [out_size, out_size], interpolation=InterpolationMode.BILINEAR, antialias=True)  # (3, S, S)
        if p["flip"][i]:
            x = F.horizontal_flip(x)
        if p["jitter_applied"][i]:
            factors = (p["brightness"][i], p["contrast"][i], p["saturation"][i], p["hue"][i])
            for k in p["jitter_order"][i]:
                x = _JITTER_FNS[k](x, factors[k])
        if p["grayscale"][i]:
            x = F.rgb_to_grayscale(x, num_output_channels=3)
        if p["blur_applied"][i]:
            sigma = p["blur_sigma"][i]
            k = blur_kernel_size(sigma, blur_kernel, out_size)
            x = F.gaussian_blur(x, [k, k], [sigma, sigma])
        out.append(x)
    x = torch.stack(out)  # (B, 3, S, S) float32 in [0, 1]
    return F.normalize(x, [float(m) for m in mean], [float(s) for s in std]).to(out_dtype)
