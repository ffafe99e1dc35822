"""The study's inputs, resolved once per run: the pretraining / measurement folder, the real-world view groups (with
the factor each varies), the generated latent set and the transfer tasks. Generated sets are rendered into the
cache on first use (``inv_kernels.data.generated_dataset``) and reused after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inv_kernels.study.config import StudyConfig

PRETRAIN_SCENE_SEED = 0  # scenes the models are pretrained and measured on
PROBE_SCENE_SEED = 1  # scenes of the transfer and latent sets: never seen in pretraining

# The factor a multi-view layout varies (docs/METHOD.md 4.3): viewpoint groups probe spatial invariance, the others
# appearance invariance.
VIEWPOINT_LAYOUTS = ("coil", "aloi_viewpoint", "alot_viewpoint", "flickr1024")
APPEARANCE_LAYOUTS = (
    "aloi_illumination",
    "aloi_temperature",
    "alot_illumination",
    "alot_temperature",
    "exposure_errors",
    "dali",
    "realblur",
)

# Regression targets of the built-in transfer tasks on the generated latent set (inv_kernels.data.LATENT_NAMES).
LATENT_TASKS: dict[str, list[int]] = {"position": [0, 1, 2], "rotation": [3, 4, 5], "hue": [7, 8, 9]}


@dataclass(frozen=True)
class GroupSet:
    """One real-world group folder: ``spec`` as pipelines.measure takes it (PATH:LAYOUT), its display name, and the
    factor its groups vary ("viewpoint", "appearance" or "unknown")."""

    name: str
    spec: str
    factor: str


@dataclass
class StudyInputs:
    """Everything the stages read. ``identity`` is what the stage settings record about the data."""

    train_root: Path  # holds train/ and test/ (or val/) class folders
    group_sets: list[GroupSet]
    latents_root: Path
    tasks: list  # DownstreamTask
    identity: dict


def _factor(layout: str) -> str:
    if layout in VIEWPOINT_LAYOUTS:
        return "viewpoint"
    if layout in APPEARANCE_LAYOUTS:
        return "appearance"
    return "unknown"


def _user_group_sets(specs: tuple[str, ...]) -> list[GroupSet]:
    from inv_kernels.measure.driver import _parse_group_spec
    from inv_kernels.measure.realworld import find_groups

    sets = []
    for spec in specs:
        path, layout = _parse_group_spec(spec)
        found = find_groups(path, layout)  # detects "auto" layouts
        sets.append(GroupSet(f"{Path(path).name}:{found.layout}", f"{path}:{found.layout}", _factor(found.layout)))
    return sets


def resolve_inputs(cfg: StudyConfig) -> StudyInputs:
    """Renders (or finds in the cache) the generated sets and builds the transfer tasks.

    Raises:
        ValueError, FileNotFoundError: from the task adapters, naming the folder.
    """
    from inv_kernels.data import generated_dataset
    from inv_kernels.downstream import causal3dident_task, get_task, image_folder_task

    size, progress = cfg.size, cfg.progress
    if cfg.builtin:
        train_root = generated_dataset(
            "classification", size=size, count=cfg.train_count, seed=PRETRAIN_SCENE_SEED, progress=progress
        )
    else:
        train_root = Path(cfg.data).resolve()
    coil = generated_dataset("coil", size=size, count=cfg.group_objects, seed=PRETRAIN_SCENE_SEED, progress=progress)
    aloi = generated_dataset("aloi", size=size, count=cfg.group_objects, seed=PRETRAIN_SCENE_SEED, progress=progress)
    group_sets = [
        GroupSet("generated turntable (COIL-style)", f"{coil}:coil", "viewpoint"),
        GroupSet("generated turntable (ALOI-style)", f"{aloi / 'viewpoint'}:aloi_viewpoint", "viewpoint"),
        GroupSet("generated light direction (ALOI-style)", f"{aloi / 'illumination'}:aloi_illumination", "appearance"),
        GroupSet("generated light colour (ALOI-style)", f"{aloi / 'temperature'}:aloi_temperature", "appearance"),
    ] + _user_group_sets(cfg.groups)
    probe_cls = generated_dataset(
        "classification", size=size, count=cfg.transfer_count, seed=PROBE_SCENE_SEED, progress=progress
    )
    latents = generated_dataset(
        "latents", size=size, count=cfg.transfer_count, seed=PROBE_SCENE_SEED, progress=progress
    )
    sizes = {"mode": cfg.mode, "out_size": size, "resize_size": size}
    tasks = [image_folder_task(probe_cls, name="shape", **sizes)]
    tasks += [
        causal3dident_task(latents, target=cols, name=name, max_trainval=None, **sizes)
        for name, cols in LATENT_TASKS.items()
    ]
    if not cfg.builtin:
        tasks.insert(0, image_folder_task(train_root, name=train_root.name, **sizes))
    for spec in cfg.tasks:
        name, _, root = spec.partition(":")
        tasks.append(get_task(name, root, **sizes))
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"two transfer tasks are named {', '.join(duplicates)}: rename the folder given to --data or --task"
        )
    identity = {
        "train_root": str(train_root),
        "latents_root": str(latents),
        "size": size,
        "groups": [g.spec for g in group_sets],
    }
    return StudyInputs(Path(train_root), group_sets, Path(latents), tasks, identity)


def task_identity(task) -> dict:
    """What a transfer stage's settings record about its task."""
    return {
        "name": task.name,
        "root": task.root,
        "kind": task.kind,
        "metric": task.metric,
        "mode": task.mode,
        "trainval": len(task.trainval),
        "test": len(task.test),
        "targets": list(task.target_names),
        "out_size": task.out_size,
    }
