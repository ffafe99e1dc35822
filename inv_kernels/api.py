"""The one-call Python API: ``measure_invariance`` (a model's invariance to transform families and across real
multi-view groups), ``evaluate_transfer`` (linear-probe transfer of models and their fusions) and ``compare``
(several measurements side by side). They take model objects or checkpoints and images in memory or in folders, run
the same code as ``python -m pipelines.measure`` / ``pipelines.transfer``, and return result objects
(``inv_kernels.results``).

    import inv_kernels, torchvision
    model = torchvision.models.resnet18(num_classes=10)
    result = inv_kernels.measure_invariance(model, images=pil_images, transforms="h_flip")
    result.to_frame(); result.plot()
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from inv_kernels.results import Comparison, MeasureResult, TransferResult

ImagesArg = Any  # a folder, a list of PIL images or (3, H, W) uint8 tensors, or a (N, 3, H, W) uint8 tensor

# MeasureConfig fields that measure_invariance sets from its own arguments, not from **settings
_MEASURE_OWN = {"model", "data", "transforms", "groups", "stats_data", "stats_file", "out", "call", "data_label"}


def _describe(value: Any) -> str:
    """A short readable form of an argument for the recorded call."""
    if isinstance(value, nn.Module):
        return type(value).__name__
    if isinstance(value, torch.Tensor):
        return f"<{str(value.dtype).removeprefix('torch.')} tensor {tuple(value.shape)}>"
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (str, os.PathLike)):
        return f"<{len(value)} {type(value[0]).__name__} images>"
    if type(value).__name__ == "FeatureStats":
        return f"<FeatureStats {value.dim}-d>"
    return repr(str(value) if isinstance(value, os.PathLike) else value)


def _call(function: str, **arguments: Any) -> str:
    shown = ", ".join(f"{k}={_describe(v)}" for k, v in arguments.items() if v is not None)
    return f"inv_kernels.{function}({shown})"


@contextmanager
def _left_as_found(models: Iterable[Any]):
    """Hands every ``nn.Module`` among ``models`` back as it came in: measuring puts a model in eval mode on the
    measurement's device in the forward pass's memory format, on the model itself; afterwards each submodule's
    training flag and each parameter's, gradient's and buffer's tensor are the ones it had before."""
    modules = [m for model in models if isinstance(model, nn.Module) for m in model.modules()]
    flags = [(m, m.training) for m in modules]
    params = [
        (p, p.data, p.grad, None if p.grad is None else p.grad.data)
        for m in modules
        for p in m.parameters(recurse=False)
    ]
    buffers = [(m, name, b) for m in modules for name, b in m.named_buffers(recurse=False)]
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training
        for p, data, grad, grad_data in params:  # conversions swap .data in place, on gradients as well
            p.data = data
            if grad is not None:
                grad.data = grad_data
            p.grad = grad
        for m, name, b in buffers:
            setattr(m, name, b)


def _in_memory(images: ImagesArg) -> bool:
    if isinstance(images, torch.Tensor):
        return True
    return isinstance(images, (list, tuple)) and bool(images) and not isinstance(images[0], (str, os.PathLike))


def _uint8_images(name: str, images: ImagesArg) -> list[torch.Tensor]:
    """(3, H, W) uint8 tensors of a (N, 3, H, W) uint8 tensor or a list of PIL images / (3, H, W) uint8 tensors.

    Raises:
        TypeError: another type or dtype. ValueError: another shape, or no image.
    """
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise TypeError(f"{name}: expected uint8 images (values 0-255), got a {images.dtype} tensor")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: expected a (N, 3, H, W) uint8 tensor, got shape {tuple(images.shape)}")
        images = list(images)
    out = []
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
                raise TypeError(
                    f"{name}[{i}]: expected a (3, H, W) uint8 tensor, got {image.dtype} of shape {tuple(image.shape)}"
                )
            out.append(image.detach().cpu())
        elif hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
            import numpy as np

            array = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
            out.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
        else:
            raise TypeError(
                f"{name}[{i}]: expected a PIL image or a (3, H, W) uint8 tensor, got {type(image).__name__}"
            )
    if not out:
        raise ValueError(f"{name}: expected at least one image, got none")
    return out


def _image_folder(name: str, images: ImagesArg, stack: ExitStack) -> str:
    """A folder holding ``images``: the folder itself, or images in memory written losslessly (PNG) to a temporary
    class folder that lives as long as ``stack``, so they are read as any image folder is."""
    if not _in_memory(images):
        if not isinstance(images, (str, os.PathLike)):
            raise TypeError(
                f"{name}: expected an image folder, a list of PIL images or uint8 tensors, or a (N, 3, H, W) uint8 "
                f"tensor, got {type(images).__name__}"
            )
        return str(images)
    from PIL import Image

    tensors = _uint8_images(name, images)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inv_kernels_images_"))) / "images"
    folder.mkdir()
    for i, image in enumerate(tensors):
        Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(folder / f"{i:06d}.png")
    return str(folder.parent)


def _check_settings(function: str, settings: dict, allowed: Iterable[str]) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise TypeError(
            f"{function}: unknown setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}"
        )


def measure_invariance(
    model: nn.Module | str | os.PathLike,
    images: ImagesArg = None,
    transforms: str | Iterable[str] = "all",
    groups: str | os.PathLike | Iterable[str] = (),
    stats: Any = None,
    *,
    out: str | os.PathLike | None = None,
    **settings: Any,
) -> MeasureResult:
    """Measures a model's invariance (docs/METHOD.md sections 3-4) in one call.

    Args:
        model: an ``nn.Module`` taking (B, 3, S, S) ImageNet-normalised images to (B, D) features (measured in eval
            mode on the device, and handed back as it came: training flags, device, memory format), a checkpoint
            path, or ``"random:<arch>"``.
        images: the images the families transform, and by default the statistics images: an image folder (class
            subfolders), a list of PIL images or (3, H, W) uint8 tensors, or a (N, 3, H, W) uint8 tensor (each image
            in memory is measured once unless num_images / same_images say otherwise); None: the built-in
            generated scenes.
        transforms: a family name, ``"all"``, ``"spatial"``, ``"appearance"``, a comma list, or a list of them.
        groups: a multi-view folder ``"PATH"`` or ``"PATH:LAYOUT"``, or a list of them.
        stats: the feature statistics that whiten: None (computed on ``images``), an ``inv_kernels.FeatureStats``
            of this model, a statistics file, or images as ``images`` takes them for the statistics pass.
        out: a folder to keep the results files in (results.json, CSV, PNG, feature_stats.pt); None keeps none.
        **settings: other ``MeasureConfig`` settings: mode, num_images, device, batch_size, out_size, seed,
            shrinkage, use_cache, progress, ...

    Returns:
        MeasureResult.

    Raises:
        TypeError: an unknown setting, or an argument of another type. ValueError, FileNotFoundError: a bad
        setting or input, named.
    """
    from inv_kernels.measure.driver import MeasureConfig, Measurement
    from inv_kernels.stats import FeatureStats

    allowed = {f.name for f in fields(MeasureConfig)} - _MEASURE_OWN
    _check_settings("measure_invariance", settings, allowed)
    call = _call(
        "measure_invariance", model=model, images=images, transforms=transforms, groups=groups or None, stats=stats
    )
    if not isinstance(model, (nn.Module, str, os.PathLike)):
        raise TypeError(
            f"measure_invariance: model must be an nn.Module, a checkpoint path or random:<arch>, got "
            f"{type(model).__name__}"
        )
    if not isinstance(transforms, str):
        transforms = tuple(transforms)
    groups = (str(groups),) if isinstance(groups, (str, os.PathLike)) else tuple(str(g) for g in groups)
    with ExitStack() as stack:
        data = None if images is None else _image_folder("images", images, stack)
        stats_object, stats_data, stats_file = None, None, None
        if isinstance(stats, FeatureStats):
            stats_object = stats
        elif isinstance(stats, (str, os.PathLike)) and not Path(stats).is_dir():
            stats_file = str(stats)
        elif stats is not None:
            stats_data = _image_folder("stats", stats, stack)
        if in_memory := _in_memory(images):
            settings.setdefault("use_cache", False)  # the temporary folder's paths will never be seen again
            settings.setdefault("num_images", len(images))  # each image given is measured once
            settings.setdefault("same_images", True)
        target = str(out) if out is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="inv_m_"))
        config = MeasureConfig(
            model=model if isinstance(model, nn.Module) else str(model),
            data=data,
            transforms=transforms,
            groups=groups,
            stats_data=stats_data,
            stats_file=stats_file,
            out=target,
            call=call,
            data_label=f"{len(images)} images given in memory" if in_memory else None,
            **settings,
        )
        with _left_as_found([model]):
            results = Measurement(config, stats=stats_object).run()
        if out is None:
            results.pop("files", None)  # written to a temporary folder, gone with it
    return MeasureResult(results)


def evaluate_transfer(
    models: nn.Module | str | os.PathLike | dict[str, Any] | list,
    tasks: Any = None,
    *,
    arch: str | dict[str, str] | None = None,
    layer: str | dict[str, str] | None = None,
    mean: Iterable[float] | None = None,
    std: Iterable[float] | None = None,
    precision: str | None = None,
    **settings: Any,
) -> TransferResult:
    """Linear-probe transfer (docs/METHOD.md sections 6-7) of models and their fusions, in one call.

    Args:
        models: one model (an ``nn.Module``, a checkpoint path or ``"random:<arch>"``), a list of them (named by
            their file stems, or model0, model1, ... for objects), or a dict name -> model. Model objects are
            handed back as they came (training flags, device, memory format).
        tasks: ``inv_kernels.downstream.DownstreamTask`` objects, ``"NAME:ROOT"`` specs of public datasets (one or a
            list), or None: the built-in generated classification and latent-regression sets.
        arch: the architecture of checkpoints that do not record it (``resnet18``, ``timm:vit_small_patch16_224``):
            one for every model, or a dict model name -> arch.
        layer: measure this module's output, pooled: one for every model, or a dict model name -> layer.
        mean, std: the normalisation (3 numbers each) of every model (None: a timm model's own, else ImageNet's).
        precision: ``fp32``, ``bf16`` or ``auto`` for every model's forward pass (None: bf16 autocast on a GPU).
        **settings: other ``TransferConfig`` settings: fusions, combos, mode, folds, device, batch_size, seed,
            image_size (the side of the task images and the models' input: default 224 for specs, 64 for the
            built-in sets, the tasks' own ``out_size`` for task objects), progress, ...

    Returns:
        TransferResult.

    Raises:
        TypeError: an unknown setting, or an argument of another type. ValueError, FileNotFoundError: a bad
        setting, model or task, named.
    """
    from inv_kernels.transfer import (
        TransferConfig,
        build_tasks,
        load_models,
        model_load_options,
        task_image_size,
    )
    from inv_kernels.transfer import evaluate_transfer as run

    allowed = {f.name for f in fields(TransferConfig)} - {"models", "tasks", "call", "load_options"} | {"image_size"}
    _check_settings("evaluate_transfer", settings, allowed)
    image_size = settings.pop("image_size", None)
    for name in ("fusions",):
        if isinstance(settings.get(name), str):
            settings[name] = tuple(s.strip() for s in settings[name].split(",") if s.strip())
    named = _named_models(models)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks or [])
    from_specs = all(isinstance(t, str) for t in tasks)
    image_size = task_image_size(tasks, image_size)
    options = model_load_options(
        named,
        image_size=image_size,
        arch=arch,
        layer=layer,
        mean=mean,
        std=std,
        precision=precision,
    )
    config = TransferConfig(
        models=named,
        tasks=[],
        load_options=options,
        call=_call("evaluate_transfer", models=models, tasks=tasks),
        **settings,
    ).validate()
    with _left_as_found(named.values()):
        extractors = load_models(config)
        config.tasks = build_tasks(tasks, config.mode, image_size, config.progress) if from_specs else list(tasks)
        return TransferResult(run(config, extractors))


def _named_models(models: Any) -> dict[str, Any]:
    if isinstance(models, dict):
        return {str(k): v if isinstance(v, nn.Module) else str(v) for k, v in models.items()}
    if isinstance(models, (nn.Module, str, os.PathLike)):
        models = [models]
    named: dict[str, Any] = {}
    for i, model in enumerate(models):
        if isinstance(model, nn.Module):
            name = f"model{i}"
        elif isinstance(model, (str, os.PathLike)):
            model = str(model)
            name = model if model.startswith("random:") else Path(model).name.split(".")[0]
        else:
            raise TypeError(
                f"evaluate_transfer: models[{i}] must be an nn.Module, a checkpoint path or random:<arch>, got "
                f"{type(model).__name__}"
            )
        if name in named:
            raise ValueError(f"evaluate_transfer: two models are named {name!r}; pass a dict name -> model")
        named[name] = model
    return named


def compare(results: list, names: list[str] | None = None) -> Comparison:
    """Several measurements side by side: MeasureResult objects, results dicts, or results.json paths
    (``NAME=PATH`` names a model). Returns a Comparison (``heatmap()``, ``curves()``, ``groups()``,
    ``write(out)``)."""
    if all(isinstance(r, (str, os.PathLike)) for r in results):
        return Comparison.load(results, names)
    return Comparison(results, names)
