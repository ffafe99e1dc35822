"""Downstream tasks (docs/METHOD.md section 6) as adapters of the public folder layouts, and their cached features.

- ``DownstreamTask`` / ``TaskItem``: items (path, target, crop box) of trainval and test, kind, metric, mode.
- Classification: ``image_folder_task`` (any train/ + test/ ImageFolder), ``cifar10_task``,
  ``generated_classification_task``, ``caltech101_task``, ``flowers102_task``.
- Keypoints: ``w300_task`` (300W), ``celeba_task``, ``lsp_task``; latents: ``causal3dident_task``,
  ``generated_latents_task``.
- ``task_features(extractor, task, ...)``: (X_trainval, y_trainval, X_test, y_test) with an fp16 disk cache.
- ``get_task(name, root, **kw)``: an adapter by its key.
"""

from inv_kernels.downstream.common import (
    METRICS,
    MODES,
    DownstreamTask,
    TaskItem,
    centre_square_box,
    landmark_box,
    random_split,
    remap_points,
)
from inv_kernels.downstream.features import TaskFeatures, cache_key, crop_image, default_cache_dir, task_features
from inv_kernels.downstream.folder_classification import (
    caltech101_task,
    cifar10_task,
    flowers102_task,
    generated_classification_task,
    image_folder_task,
)
from inv_kernels.downstream.landmarks import celeba_task, lsp_task, read_pts, w300_task
from inv_kernels.downstream.latents import causal3dident_task, generated_latents_task

ADAPTERS = {
    "folder": image_folder_task,
    "cifar10": cifar10_task,
    "caltech101": caltech101_task,
    "flowers": flowers102_task,
    "300w": w300_task,
    "celeba": celeba_task,
    "leeds_sports_pose": lsp_task,
    "causal3dident": causal3dident_task,
    "generated_classification": generated_classification_task,
    "generated_latents": generated_latents_task,
}


def get_task(name: str, root, **kwargs) -> DownstreamTask:
    """The task ``name`` (a key of ``ADAPTERS``) read from ``root``; kwargs go to its adapter.

    Raises:
        ValueError: an unknown name (the known ones listed).
    """
    if name not in ADAPTERS:
        raise ValueError(f"get_task: unknown task {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name](root, **kwargs)


__all__ = [
    "ADAPTERS",
    "METRICS",
    "MODES",
    "DownstreamTask",
    "TaskFeatures",
    "TaskItem",
    "cache_key",
    "caltech101_task",
    "causal3dident_task",
    "celeba_task",
    "centre_square_box",
    "cifar10_task",
    "crop_image",
    "default_cache_dir",
    "flowers102_task",
    "generated_classification_task",
    "generated_latents_task",
    "get_task",
    "image_folder_task",
    "landmark_box",
    "lsp_task",
    "random_split",
    "read_pts",
    "remap_points",
    "task_features",
    "w300_task",
]
