"""fused_augment: every step of a view's augmentation (crop + antialiased bilinear resize, flip, colour jitter in the
sampled order, grayscale, gaussian blur, normalisation) in one kernel, from uint8 sources to normalised views.

The specification is ``inv_kernels.ops.fused_augment_ref`` (torchvision.transforms.v2.functional composed per
view); csrc/augment/fused_augment.h states the arithmetic and the packed layout every compiled backend reads:

    src      uint8 padded batch (B_src, 3, Hmax, Wmax) or (B_src, Hmax, Wmax, 3), any strides
    sizes    int32 (B_src, 2): (H, W) of each source's valid region
    iparams  int32 (V, 13): source, top, left, h, w, flip, jitter_applied, order[4], grayscale, blur_ksize (0: none)
    fparams  float32 (V, 5): brightness, contrast, saturation, hue, blur sigma
    norm     float32 (6,): mean[3], std[3]
    out      (V, 3, S, S) float32 / bfloat16 / float16

Views name their source by index, so two (or more) views of one decoded image are made in a single launch
(``source_index``). Backends: "reference" (the torch reference, per view), "cpu" (C++ with OpenMP, one view per
thread), "triton" and "cuda".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from inv_kernels import _ext
from inv_kernels._validate import check_tensor
from inv_kernels.backend import resolve_backend
from inv_kernels.ops._fused_augment_triton import fused_augment_triton
from inv_kernels.ops._library import device_guard, register_backends
from inv_kernels.ops.augment_params import AugmentParams
from inv_kernels.ops.fused_augment_ref import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _check_args,
    blur_kernel_size,
    fused_augment_ref,
    image_list_sizes,
    padded_sizes,
)

OP = "fused_augment"
INT_PARAMS = 13  # columns of iparams (csrc/augment/fused_augment.h)
FLOAT_PARAMS = 5  # columns of fparams
LAYOUTS = ("NCHW", "NHWC")


def pack_params(
    params: AugmentParams, source_index: Tensor, out_size: int, blur_kernel: str | int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The packed per-view parameters of the compiled backends.

    Args:
        params: AugmentParams of V views.
        source_index: (V,) int64, the source image of each view.
        out_size: S.
        blur_kernel: "from_sigma" or a fixed odd size (see ``blur_kernel_size``).
        device: where the packed tensors go.

    Returns:
        iparams (V, 13) int32 and fparams (V, 5) float32 on ``device`` (layout in the module docstring).
    """
    p = params.to("cpu")
    sigma = p.blur_sigma.tolist()
    ksize = [
        blur_kernel_size(s, blur_kernel, out_size) if applied else 0
        for s, applied in zip(sigma, p.blur_applied.tolist())
    ]
    ints = torch.stack(
        [
            source_index.to("cpu", torch.int32),
            p.crop_top,
            p.crop_left,
            p.crop_height,
            p.crop_width,
            p.flip.to(torch.int32),
            p.jitter_applied.to(torch.int32),
            *p.jitter_order.to(torch.int32).unbind(1),
            p.grayscale.to(torch.int32),
            torch.tensor(ksize, dtype=torch.int32),
        ],
        dim=1,
    )  # (V, 13)
    floats = torch.stack([p.brightness, p.contrast, p.saturation, p.hue, p.blur_sigma], dim=1)  # (V, 5)
    return ints.contiguous().to(device), floats.contiguous().to(device)


def _as_padded(images: Sequence[Tensor] | Tensor, sizes: Tensor | None, layout: str) -> tuple[Tensor, Tensor]:
    """A padded NCHW-indexed uint8 batch (possibly a strided view of NHWC memory) and its (B, 2) int64 CPU sizes."""
    if layout not in LAYOUTS:
        raise ValueError(f"{OP}: layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(images, Tensor):
        check_tensor(
            OP,
            "images",
            images,
            ndim=4,
            layout="(B, 3, Hmax, Wmax)" if layout == "NCHW" else "(B, Hmax, Wmax, 3)",
            dtypes=(torch.uint8,),
        )
        batch = images if layout == "NCHW" else images.permute(0, 3, 1, 2)  # (B, 3, Hmax, Wmax) view
        if batch.shape[1] != 3:
            raise ValueError(f"{OP}: images must have 3 channels in layout {layout}, got shape {tuple(images.shape)}")
        if batch.shape[0] == 0 or batch.shape[2] == 0 or batch.shape[3] == 0:
            raise ValueError(f"{OP}: images must not be empty, got shape {tuple(images.shape)}")
        return batch, padded_sizes(OP, batch, sizes)
    if sizes is not None:
        raise ValueError(f"{OP}: sizes is only for a padded tensor, not a list of images")
    if layout != "NCHW":
        raise ValueError(f"{OP}: a list of images must hold (3, H, W) tensors (layout 'NCHW')")
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence) or len(images) == 0:
        raise TypeError(
            f"{OP}: images must be a non-empty list of (3, H, W) uint8 tensors or a padded uint8 batch, "
            f"got {type(images).__name__}"
        )
    sizes = image_list_sizes(OP, images)  # (B, 2)
    h_max, w_max = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    batch = images[0].new_zeros((len(images), 3, h_max, w_max))
    for i, img in enumerate(images):
        batch[i, :, : img.shape[1], : img.shape[2]] = img
    return batch, sizes


def _check_source_index(source_index: Tensor | None, n_views: int, n_sources: int) -> Tensor:
    if source_index is None:
        if n_views != n_sources:
            raise ValueError(
                f"{OP}: params holds {n_views} views but images holds {n_sources}; pass source_index "
                f"to make several views of one image"
            )
        return torch.arange(n_sources)
    check_tensor(OP, "source_index", source_index, ndim=1, layout="(V,)", dtypes=(torch.int32, torch.int64))
    index = source_index.to("cpu", torch.int64)
    if index.shape[0] != n_views:
        raise ValueError(f"{OP}: source_index holds {index.shape[0]} views but params holds {n_views}")
    if bool(((index < 0) | (index >= n_sources)).any()):
        raise ValueError(f"{OP}: source_index must lie in [0, {n_sources}), got {index.tolist()}")
    return index


def _launch_cpu(batch, sizes32, iparams, fparams, norm, out) -> None:
    _ext.C.cpu.fused_augment(
        batch.data_ptr(),
        *batch.stride(),
        sizes32.data_ptr(),
        batch.shape[0],
        iparams.data_ptr(),
        fparams.data_ptr(),
        norm.data_ptr(),
        out.data_ptr(),
        out.shape[0],
        out.shape[-1],
        _ext.dtype_code(out.dtype),
    )


def _launch_cuda(batch, sizes32, iparams, fparams, norm, out) -> None:
    workspace = torch.empty(out.shape[0], dtype=torch.float32, device=out.device)  # (V,) contrast means
    _ext.C.cuda.fused_augment(
        batch.data_ptr(),
        *batch.stride(),
        sizes32.data_ptr(),
        batch.shape[0],
        iparams.data_ptr(),
        fparams.data_ptr(),
        norm.data_ptr(),
        out.data_ptr(),
        workspace.data_ptr(),
        out.shape[0],
        out.shape[-1],
        _ext.dtype_code(out.dtype),
        out.device.index,
        _ext.cuda_stream_handle(out.device),
    )


def _launch_triton(batch, sizes32, iparams, fparams, norm, out) -> None:
    with device_guard(out):
        fused_augment_triton(batch, sizes32, iparams, fparams, norm, out)


# ----------------------------------------------------------------------------------------------------------------
# torch.library registration: one forward custom op per compiled backend (no backward: uint8 inputs)
# ----------------------------------------------------------------------------------------------------------------
_FWD_SCHEMA = (
    "(Tensor batch, Tensor sizes32, Tensor iparams, Tensor fparams, Tensor norm, int out_size, ScalarType out_dtype)"
    " -> Tensor"
)


def _new_views(iparams: Tensor, out_size: int, out_dtype: torch.dtype) -> Tensor:
    return iparams.new_empty((iparams.shape[0], 3, out_size, out_size), dtype=out_dtype)  # (V, 3, S, S)


def _fwd(launch, batch, sizes32, iparams, fparams, norm, out_size: int, out_dtype: torch.dtype) -> Tensor:
    out = _new_views(iparams, out_size, out_dtype)
    launch(batch, sizes32, iparams, fparams, norm, out)
    return out


FWD_OPS, _ = register_backends(
    OP,
    {"cpu": (_launch_cpu,), "cuda": (_launch_cuda,), "triton": (_launch_triton,)},
    fwd=_fwd,
    fwd_schema=_FWD_SCHEMA,
    fwd_fake=lambda batch, sizes32, iparams, fparams, norm, out_size, out_dtype: _new_views(
        iparams, out_size, out_dtype
    ),
)


def fused_augment(
    images: Sequence[Tensor] | Tensor,
    params: AugmentParams,
    out_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    out_dtype: torch.dtype = torch.float32,
    blur_kernel: str | int = "from_sigma",
    *,
    sizes: Tensor | None = None,
    source_index: Tensor | None = None,
    layout: str = "NCHW",
    backend: str = "auto",
) -> Tensor:
    """Augments view v from source ``source_index[v]`` of ``images`` with row v of ``params``.

    Args:
        images: a list of B (3, H_i, W_i) uint8 tensors, or a padded uint8 batch (B, 3, Hmax, Wmax) (``layout``
            "NCHW") or (B, Hmax, Wmax, 3) ("NHWC", as DALI decodes) whose image i is its top-left (H_i, W_i).
        params: AugmentParams of V views, crop boxes in their source's pixels.
        out_size: S, the side of the square output views.
        mean, std: 3 finite per-channel normalisation values, std >= 1e-6 (ImageNet's by default).
        out_dtype: torch.float32, torch.bfloat16 or torch.float16.
        blur_kernel: "from_sigma" (k = 2 ceil(3 sigma) + 1) or a fixed odd kernel size (23 is the reference code's).
        sizes: (B, 2) int (H_i, W_i) of a padded batch (default: the full padded size).
        source_index: (V,) int, the source of each view (default: view i from image i, V = B). Two views per image:
            ``torch.arange(B).repeat(2)``.
        layout: "NCHW" or "NHWC" for a padded batch.
        backend: "auto" (the ``INV_KERNELS_BACKEND`` variable, else the fastest available), "reference", "cpu",
            "triton" or "cuda".

    Returns:
        (V, 3, S, S) tensor of ``out_dtype`` on the images' device.

    Raises:
        TypeError: non-uint8 (or sparse) images, params not AugmentParams, a bad out_dtype, mean / std not 3
            numbers, a non-int out_size.
        ValueError: wrong shapes, images on the meta device, a source index or crop box out of range, a bad
            blur_kernel or layout, out_size not positive or an output too large for the memory available; a
            non-finite mean or std, std < MIN_STD (1e-6), normalised values beyond out_dtype's range; a jitter_order
            that is not a permutation, and where applied a negative or non-finite jitter factor, a hue shift outside
            [-0.5, 0.5] or a blur_sigma not finite and > 0. Every backend rejects the same input with the same
            message: the checks run once, before the backend is chosen.
        RuntimeError: an explicitly requested backend that cannot run here.
    """
    batch, sizes = _as_padded(images, sizes, layout)
    if not isinstance(params, AugmentParams):
        raise TypeError(f"{OP}: params must be AugmentParams, got {type(params).__name__}")
    index = _check_source_index(source_index, len(params), batch.shape[0])
    _check_args(OP, params, len(params), sizes[index], out_size, mean, std, out_dtype, blur_kernel, batch.device)
    chosen = resolve_backend(backend, batch.device, op=OP)
    if chosen == "reference":
        views = [batch[int(i), :, : int(sizes[i, 0]), : int(sizes[i, 1])] for i in index]
        return fused_augment_ref(views, params, out_size, mean, std, out_dtype, blur_kernel)
    device = batch.device
    iparams, fparams = pack_params(params, index, out_size, blur_kernel, device)
    norm = torch.tensor([*map(float, mean), *map(float, std)], dtype=torch.float32, device=device)  # (6,)
    sizes32 = sizes.to(device=device, dtype=torch.int32).contiguous()  # (B, 2)
    return FWD_OPS[chosen](batch, sizes32, iparams, fparams, norm, out_size, out_dtype)
