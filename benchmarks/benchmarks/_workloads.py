"""The GPU shapes of the benchmarks and the work of each kernel (bytes it must move, FLOPs it must do): the one home
for the asv suite's GPU cases (bench_*.py), benchmarks/gpu_report_cases.py and benchmarks/gpu_report_goals.py.

Shapes are "x"-separated strings (``dims`` parses them):

    row_cosine              M x D       rows, features
    invariance_scores       n x k x D   images, transformed views per image, features
    group_invariance        G x k x D   groups, images per group, features
    infonce (MoCo)          N x K x D   queries, queue length, features
    ntxent (SimCLR)         N x D       pairs (2N rows), features
    contrastive N x N       N x N x D   the logits of Inf-CL and of NT-Xent at N / 2 pairs
    stats                   N x D       images, features
    fused_augment           B x S x S->O  B sources of S x S pixels, two views each, O x O outputs
"""

from __future__ import annotations

import math

import torch

from inv_kernels.augment import AugmentParams
from inv_kernels.ops.fused_augment_ref import blur_kernel_size

# ---------------------------------------------------------------------------------------------------------------
# GPU shapes
# ---------------------------------------------------------------------------------------------------------------
ROW_COSINE_GPU = ("16384x512", "256x65536")
INVARIANCE_SCORES_GPU = ("1000x256x2048",)  # one 256-value family on 1000 images, ResNet-50 features
GROUP_INVARIANCE_GPU = ("1000x72x2048", "3000x8x2048")  # ALOI viewpoint and ALOI illumination
MOCO_GPU = ("256x65536x128", "4096x65536x128")  # MoCo v2's batch 256 and a large batch, queue 65,536
NTXENT_GPU = ("4096x128", "32768x128")
CONTRASTIVE_NXN_GPU = ("32768x32768x128",)
STATS_GPU = ("50000x2048", "200000x2048")  # ImageNet val's 50,000 images, and four times as many
FUSED_AUGMENT_SOURCE_SIDE = 256  # a typical decoded and resized image
FUSED_AUGMENT_GPU_BATCH = 256  # source images, two views each
FUSED_AUGMENT_OUT_SIZES = (64, 224)
FUSED_AUGMENT_VIEWS_PER_SOURCE = 2
LOGISTIC_CV = {"n": 5000, "d": 512, "classes": 10}  # the probe protocol's features (45 values of C x 5 folds)

# The materialised NT-Xent reference holds the 2N x 2N logits and their gradient: past this N it does not fit an
# 80 GB card.
NTXENT_REFERENCE_MAX_PAIRS = 16384


def dims(shape: str) -> tuple[int, ...]:
    """The integers of a shape string: "1000x256x2048" -> (1000, 256, 2048)."""
    return tuple(int(v) for v in shape.split("x"))


def fused_augment_shape(batch: int, out_size: int, side: int = FUSED_AUGMENT_SOURCE_SIDE) -> str:
    """The fused_augment case name: "256x256x256->224"."""
    return f"{batch}x{side}x{side}->{out_size}"


def fused_augment_dims(shape: str) -> tuple[int, int, int]:
    """(B, S, O) of a fused_augment case name "BxSxS->O"."""
    sources, out_size = shape.split("->")
    batch, side, _ = dims(sources)
    return batch, side, int(out_size)


def fused_augment_views(shape: str) -> int:
    """The number of views a fused_augment case makes: two per source image."""
    return FUSED_AUGMENT_VIEWS_PER_SOURCE * fused_augment_dims(shape)[0]


def ntxent_reference_skip(pairs: int) -> str | None:
    """Why the materialised NT-Xent reference is not run on a GPU at ``pairs`` pairs, or None when it fits."""
    if pairs > NTXENT_REFERENCE_MAX_PAIRS:
        return "the materialised 2N x 2N reference does not fit at this size"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Work: the least traffic to and from memory (bytes) and the arithmetic (FLOPs)
# ---------------------------------------------------------------------------------------------------------------
def row_cosine_bytes(m: int, d: int, element_size: int, backward: bool = False) -> int:
    """Forward reads x and y; the backward reads them again and writes both gradients."""
    return (6 if backward else 2) * m * d * element_size


def row_cosine_flops(m: int, d: int) -> int:
    """Forward and backward: three dot products per row, then the two gradients."""
    return 16 * m * d


def invariance_scores_bytes(n: int, k: int, d: int, element_size: int) -> int:
    """The n clean and n k view features read once, and the float32 D x D whitening matrix."""
    return (n * k + n) * d * element_size + d * d * 4


def invariance_scores_flops(n: int, k: int, d: int) -> int:
    """Whitening dominates: every clean and view feature times the D x D matrix."""
    return 2 * n * (k + 1) * d * d


def group_invariance_bytes(g: int, k: int, d: int) -> int:
    """The G k float32 features read once, and the float32 whitening matrix."""
    return (g * k + d) * d * 4


def group_invariance_flops(g: int, k: int, d: int) -> int:
    """Whitening, then each group's k x k products."""
    return 2 * g * k * d * d + 2 * g * k * k * d


def contrastive_bytes(rows_with_grad: int, rows_without_grad: int, d: int, element_size: int) -> int:
    """Forward and backward of a fused contrastive loss: rows that get a gradient (queries, keys, both NT-Xent views)
    are read twice and their gradient written; the others (a MoCo queue) are read twice."""
    return (3 * rows_with_grad + 2 * rows_without_grad) * d * element_size


def contrastive_flops(rows: int, cols: int, d: int, backward: bool = True) -> int:
    """The rows x cols logits: 2 rows cols D forward; the backward recomputes them and forms both gradients
    (4 rows cols D more)."""
    return (6 if backward else 2) * rows * cols * d


def stats_moments_bytes(n: int, d: int) -> int:
    """The float32 features read once."""
    return n * d * 4


def stats_moments_flops(n: int, d: int) -> int:
    """The float64 centred Gram matrix."""
    return 2 * n * d * d


def stats_whiten_bytes(n: int, d: int) -> int:
    """float32 features read, float64 whitened features written."""
    return n * d * (4 + 8)


def stats_whiten_flops(n: int, d: int) -> int:
    """A product with the triangular whitening factor: half of a full one."""
    return n * d * d


def fused_augment_bytes(params: AugmentParams, out_size: int, out_dtype: torch.dtype) -> int:
    """Every crop box read once (uint8) plus every view written once: the traffic floor of a fused kernel."""
    crop = int((params.crop_height.long() * params.crop_width.long()).sum())
    elem = torch.empty(0, dtype=out_dtype).element_size()
    return 3 * crop + len(params) * 3 * out_size * out_size * elem


def fused_augment_flops(params: AugmentParams, out_size: int) -> int:
    """Multiply-adds of the separable blurs (2 passes of k taps per output value), the largest arithmetic term."""
    ks = [blur_kernel_size(float(s), "from_sigma", out_size) for s in params.blur_sigma[params.blur_applied].tolist()]
    return int(math.fsum(2 * 2 * k * 3 * out_size * out_size for k in ks))
