"""What a network pretrained on the built-in scenes learned: its features against those of the same network untrained.

The kNN top-1 on the scenes' seven shapes barely moves in a short run, while the networks learn colour and position.
This monitor shows it. On held-out scenes (drawn from their own seeds, not the training images), rendered at the run's
image size:

- a linear probe per known factor of the scenes (docs/METHOD.md section 5), fitted on the features of the trained and
  of the untrained network: the shape (logistic regression, test accuracy), and the object hue, background hue,
  position, rotation and light (ridge regression, test R^2 averaged over outputs). Circular latents (hues, Euler
  angles) are regressed as the (cos, sin) of their angle, so that -1 and +1 are the same value. Features are
  standardised on the probe's training scenes, so both networks are probed on the same scale. A factor is "kept" when
  the trained network's score exceeds the untrained one's by more than ``threshold``, "discarded" when it falls short
  of it by more than that, and "unchanged" otherwise;
- the invariance of both networks to the transform families of the run's own augmentations (crop: resized_crop and
  scale; flip: h_flip; colour jitter: brightness, contrast, saturation, hue; grayscale; blur), as the measurement
  scores it (docs/METHOD.md section 4: whitened cosine of clean and transformed views, ``corrected`` mode), on a few
  images and a few values of each family's grid, with Ledoit-Wolf statistics of the probe's training features.

``factor_monitor`` returns a plain (JSON-ready) dict; ``factor_table`` and ``factor_sentence`` put it in words.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from inv_kernels.augment.recipes import Recipe, get_recipe
from inv_kernels.data.scenes import LATENT_NAMES, render_scenes, sample_latents
from inv_kernels.data.shapes import SHAPE_NAMES
from inv_kernels.data.writers import sub_seed
from inv_kernels.measure.model import FeatureExtractor, ModelInfo
from inv_kernels.models.backbones import build_backbone
from inv_kernels.ops.invariance_scores import invariance_scores
from inv_kernels.probes import fit_logistic_cv, fit_ridge_cv
from inv_kernels.stats import FeatureStats
from inv_kernels.transforms import apply_transform, clean_view, get_family


@dataclass(frozen=True)
class Factor:
    """A known factor of the scenes: its name and the latents a probe regresses (none: the shape class)."""

    name: str
    latents: tuple[str, ...]


FACTORS: tuple[Factor, ...] = (
    Factor("shape", ()),
    Factor("object hue", ("object_hue",)),
    Factor("background hue", ("background_hue",)),
    Factor("position", ("pos_x", "pos_y", "pos_z")),
    Factor("rotation", ("rot_alpha", "rot_beta", "rot_gamma")),
    Factor("light", ("spotlight_angle", "spotlight_hue")),
)
# Latents whose -1 and +1 are the same value: hues (turns) and Euler angles (pi * u radians).
CIRCULAR_LATENTS: tuple[str, ...] = (
    "rot_alpha",
    "rot_beta",
    "rot_gamma",
    "object_hue",
    "spotlight_hue",
    "background_hue",
)
# The transform families that measure the invariance each augmentation op trains for.
OP_FAMILIES: dict[str, tuple[str, ...]] = {
    "random_resized_crop": ("resized_crop", "scale"),
    "horizontal_flip": ("h_flip",),
    "color_jitter": ("brightness", "contrast", "saturation", "hue"),
    "grayscale": ("grayscale",),
    "gaussian_blur": ("blur",),
}
THRESHOLD = 0.05  # |trained - untrained| above which a factor counts as kept or discarded
MODE = "corrected"  # the transform families' mode
SHRINKAGE = "ledoit_wolf"
FOLDS = 3
LOGISTIC_CS = np.logspace(-2, 1, 4)
RIDGE_ALPHAS = np.logspace(-2, 4, 13)
_MIN_TRAIN = FOLDS * len(SHAPE_NAMES)  # every shape in every fold of the shape probe


def untrained_backbone(arch: str, *, cifar_stem: bool, seed: int) -> nn.Module:
    """The backbone a pretraining run with ``seed`` starts from (``Trainer`` seeds torch, then builds the MoCo model,
    whose first draws are the backbone's), rebuilt without touching the caller's random state.

    Returns:
        The module: images (B, 3, S, S), normalised -> features (B, feature_dim).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_backbone(arch, cifar_stem=cifar_stem).module


def recipe_families(recipe: str | Recipe) -> list[tuple[str, str]]:
    """(op name, transform family) for each augmentation the recipe applies (probability > 0; colour-jitter factors
    of strength > 0), in the recipe's order."""
    chosen = []
    for op in get_recipe(recipe).ops:
        if getattr(op, "p", 1.0) <= 0:
            continue
        for family in OP_FAMILIES.get(op.name, ()):
            if op.name == "color_jitter" and getattr(op, family) <= 0:
                continue
            chosen.append((op.name, family))
    return chosen


def factor_targets(latents: Tensor, factor: Factor) -> Tensor:
    """A factor's regression targets.

    Args:
        latents: (N, 10) normalised latents, ordered as ``LATENT_NAMES``.
        factor: a factor with latents.

    Returns:
        (N, T) float64: per latent its value, or for a circular one the cos and sin of its angle pi * (u + 1).
    """
    columns = []
    for name in factor.latents:
        value = latents[:, LATENT_NAMES.index(name)].double()  # (N,)
        if name in CIRCULAR_LATENTS:
            angle = math.pi * (value + 1.0)
            columns += [torch.cos(angle), torch.sin(angle)]
        else:
            columns.append(value)
    return torch.stack(columns, dim=1)


def verdict(trained: float, untrained: float, threshold: float = THRESHOLD) -> str:
    """ "kept", "discarded" or "unchanged": whether ``trained - untrained`` is above ``threshold``, below
    ``-threshold``, or neither."""
    difference = trained - untrained
    if difference > threshold:
        return "kept"
    return "discarded" if difference < -threshold else "unchanged"


@dataclass
class Scenes:
    """Rendered scenes with their factors."""

    images: Tensor  # (N, 3, S, S) float32 in [0, 1], on the monitor's device
    latents: Tensor  # (N, 10) CPU
    classes: Tensor  # (N,) int64 CPU


def _scenes(count: int, seed: int, split: str, size: int, device: torch.device) -> Scenes:
    """``count`` scenes with the shapes in turn (every shape as often as the count allows)."""
    classes = torch.arange(count) % len(SHAPE_NAMES)
    latents, classes = sample_latents(count, sub_seed(seed, "factor_monitor", split), classes)
    images, _ = render_scenes(latents, classes, size=size, device=device)
    return Scenes(images, latents, classes)


def _features(extractor: FeatureExtractor, images: Tensor, batch_size: int) -> Tensor:
    """(N, D) float32 CPU features of images (N, 3, S, S) in [0, 1]."""
    return torch.cat([extractor(images[i : i + batch_size]).cpu() for i in range(0, images.shape[0], batch_size)])


def _standardised(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Both (N, D) float64, centred and scaled by the training rows' mean and standard deviation."""
    mean, std = train.double().mean(dim=0), train.double().std(dim=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train.double() - mean) / std, (test.double() - mean) / std


def probe_factors(train_features: Tensor, train: Scenes, test_features: Tensor, test: Scenes) -> dict[str, float]:
    """Test score of a linear probe per factor: shape accuracy, else R^2 (uniform over outputs)."""
    x_train, x_test = _standardised(train_features, test_features)
    scores = {}
    for factor in FACTORS:
        if not factor.latents:
            result = fit_logistic_cv(
                x_train, train.classes, LOGISTIC_CS, FOLDS, X_test=x_test, y_test=test.classes, stratify=True
            )
            scores[factor.name] = result.test_metrics["accuracy"]
        else:
            y_train, y_test = factor_targets(train.latents, factor), factor_targets(test.latents, factor)
            result = fit_ridge_cv(x_train, y_train, RIDGE_ALPHAS, FOLDS, X_test=x_test, Y_test=y_test)
            scores[factor.name] = result.test_metrics["r2"]
    return scores


def _value_indices(family: str, values: int) -> list[int]:
    """Grid rows to measure: the "on" view of a binary family, else ``values`` rows spread evenly over the grid."""
    k = get_family(family).k
    if k == 2:
        return [1]
    return sorted({round(i * (k - 1) / max(values - 1, 1)) for i in range(min(values, k))})


def family_invariance(
    extractor: FeatureExtractor,
    images: Tensor,
    clean: Tensor,
    stats: FeatureStats,
    family: str,
    *,
    values: int,
    batch_size: int,
) -> float:
    """A family's whitened-cosine invariance (mean over values of the mean over images) on a few grid values.

    Args:
        images: (n, 3, S, S) float32 in [0, 1]; views are made at S px (Resize(S) + CenterCrop(S)).
        clean: (n, D) features of their clean views.
        stats: the extractor's feature statistics.
    """
    size = images.shape[-1]
    rows = _value_indices(family, values)
    views = apply_transform(family, images, mode=MODE, indices=rows, out_size=size, resize_size=size)  # (n, p, 3, S, S)
    n, p = views.shape[:2]
    features = _features(extractor, views.flatten(0, 1), batch_size).view(n, p, -1)  # (n, p, D)
    return invariance_scores(clean, features, stats).cosine_mean


def _check_count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"factor_monitor: {name} must be an int, got {type(value).__name__}")
    if value < least:
        raise ValueError(f"factor_monitor: {name} must be >= {least}, got {value}")
    return value


def factor_monitor(
    trained: nn.Module,
    untrained: nn.Module,
    *,
    recipe: str | Recipe,
    image_size: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    train_scenes: int = 384,
    test_scenes: int = 192,
    invariance_images: int = 12,
    values_per_family: int = 4,
    threshold: float = THRESHOLD,
    amp: bool = False,
    batch_size: int = 256,
) -> dict:
    """Probes and invariances of a trained network against the same network untrained (module docstring).

    Args:
        trained, untrained: backbones, images (B, 3, S, S) ImageNet-normalised -> features (B, D); put in eval mode
            on ``device`` while they are measured, then back in their mode.
        recipe: the augmentation recipe of the run (its ops choose the transform families).
        image_size: S, the side of the rendered scenes (the run's view size), in [16, 512].
        seed: the seed the held-out scenes are drawn from (the same scenes for every run by default).
        train_scenes, test_scenes: scenes to fit the probes on (>= 21: every shape in each of 3 folds) and to score
            them on (>= 2).
        invariance_images: test scenes whose transformed views are scored (1 .. test_scenes).
        values_per_family: grid values per family (binary families: the transformed view alone).
        threshold: the score difference beyond which a factor is kept or discarded.
        amp: bf16 autocast on CUDA.

    Returns:
        {"factors": [{"factor", "metric", "trained", "untrained", "difference", "verdict"}, ...] in ``FACTORS``
        order, "invariance": [{"augmentation", "family", "trained", "untrained", "difference"}, ...] (whitened
        cosine: higher is more invariant), "threshold", "settings" (the scenes, counts and measurement choices),
        "time_s"}.

    Raises:
        TypeError, ValueError: counts that are not ints or too small, an image size outside [16, 512], an unknown
            recipe, a threshold that is not a finite number >= 0.
    """
    started = time.time()
    _check_count("train_scenes", train_scenes, _MIN_TRAIN)
    _check_count("test_scenes", test_scenes, 2)
    _check_count("invariance_images", invariance_images, 1)
    _check_count("values_per_family", values_per_family, 1)
    _check_count("batch_size", batch_size, 1)
    if invariance_images > test_scenes:
        raise ValueError(
            f"factor_monitor: invariance_images must be <= test_scenes ({test_scenes}), got {invariance_images}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < math.inf:
        raise ValueError(f"factor_monitor: threshold must be a finite number >= 0, got {threshold!r}")
    families = recipe_families(recipe)
    device = torch.device(device)
    train = _scenes(train_scenes, seed, "train", image_size, device)
    test = _scenes(test_scenes, seed, "test", image_size, device)
    scores, invariance = {}, {}
    for name, module in (("trained", trained), ("untrained", untrained)):
        was_training = module.training
        extractor = FeatureExtractor(module, ModelInfo(name, "", 0, image_size, None), device, amp=amp)
        try:
            train_features = _features(extractor, train.images, batch_size)
            scores[name] = probe_factors(train_features, train, _features(extractor, test.images, batch_size), test)
            stats = FeatureStats.from_features(train_features.double(), SHRINKAGE)
            images = test.images[:invariance_images]
            clean = _features(extractor, clean_view(images, out_size=image_size, resize_size=image_size), batch_size)
            invariance[name] = [
                family_invariance(extractor, images, clean, stats, f, values=values_per_family, batch_size=batch_size)
                for _, f in families
            ]
        finally:
            module.train(was_training)
    return {
        "factors": [
            _comparison({"factor": f.name, "metric": "r2" if f.latents else "accuracy"}, scores, f.name, threshold)
            for f in FACTORS
        ],
        "invariance": [
            _comparison({"augmentation": op, "family": family}, invariance, i)
            for i, (op, family) in enumerate(families)
        ],
        "threshold": threshold,
        "settings": {
            "image_size": image_size,
            "scene_seed": seed,
            "train_scenes": train_scenes,
            "test_scenes": test_scenes,
            "probe_folds": FOLDS,
            "invariance_images": invariance_images,
            "values_per_family": values_per_family,
            "mode": MODE,
            "shrinkage": SHRINKAGE,
        },
        "time_s": time.time() - started,
    }


def _comparison(record: dict, scores: dict, key, threshold: float | None = None) -> dict:
    trained, untrained = float(scores["trained"][key]), float(scores["untrained"][key])
    record.update(trained=trained, untrained=untrained, difference=trained - untrained)
    if threshold is not None:
        record["verdict"] = verdict(trained, untrained, threshold)
    return record


def _metric_name(metric: str) -> str:
    return "R^2" if metric == "r2" else metric


def factor_sentence(result: dict) -> str:
    """One line: "this model kept background hue (R^2 0.91 vs 0.62 untrained), discarded position (...); unchanged:
    shape, ..."."""
    parts = []
    for word in ("kept", "discarded"):
        named = [
            f"{f['factor']} ({_metric_name(f['metric'])} {f['trained']:.2f} vs {f['untrained']:.2f} untrained)"
            for f in result["factors"]
            if f["verdict"] == word
        ]
        if named:
            parts.append(f"{word} {', '.join(named)}")
    same = [f["factor"] for f in result["factors"] if f["verdict"] == "unchanged"]
    sentence = "this model " + ("; ".join(parts) if parts else "kept and discarded no factor")
    if same:
        sentence += f"; unchanged (within {result['threshold']:.2f}): {', '.join(same)}"
    return sentence


def factor_table(result: dict) -> str:
    """The factors and the invariances, trained against untrained, as aligned text lines."""
    rows = [("factor", "metric", "trained", "untrained", f"verdict (threshold {result['threshold']:.2f})")]
    rows += [
        (f["factor"], _metric_name(f["metric"]), f"{f['trained']:.2f}", f"{f['untrained']:.2f}", f["verdict"])
        for f in result["factors"]
    ]
    lines = _aligned(rows)
    if result["invariance"]:
        rows = [("invariance to", "augmentation", "trained", "untrained", "(whitened cosine; higher: more invariant)")]
        rows += [
            (i["family"], i["augmentation"], f"{i['trained']:.2f}", f"{i['untrained']:.2f}", "")
            for i in result["invariance"]
        ]
        lines += [""] + _aligned(rows)
    return "\n".join(lines)


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
