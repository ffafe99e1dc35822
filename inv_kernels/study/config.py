"""The study's settings: one dataclass, the single source of defaults for the library and ``python -m pipelines.study``.

The defaults are the smallest pretraining budget at which every model met the training-health criteria on the
built-in generated scenes at 32 px, with three seeds of the default, spatial and appearance models and the random
floor: about 2 hours on 2 CPU cores (docs/STUDY.md has the budgets tried and the measured times; ``--quick`` is the
5-minute first look). ``validate()`` checks every setting and ``check_inputs()`` every input folder before any work.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from inv_kernels.models.backbones import ARCHS
from inv_kernels.transforms import MODES

# The three pretrained models of the paper (docs/METHOD.md section 2) under this project's recipe names.
CORE_MODELS: tuple[str, ...] = ("default", "spatial", "appearance")
WIDE = "wide"  # the capacity control: the default recipe on a larger network
RANDOM = "random"  # the floor: a randomly initialised network, no training
# ``--quick``: a first look in about 5 minutes on 2 CPU cores. One seed has no spread, so it gives no verdict.
QUICK: dict = {"seeds": (0,), "epochs": 5, "num_images": 8, "transfer_count": 40, "group_objects": 10}


def parse_seeds(text: str) -> tuple[int, ...]:
    """ "0,1" -> (0, 1).

    Raises:
        ValueError: an empty list, a non-integer, a negative or a repeated seed (the message quotes the input).
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"--seeds expects comma-separated integers such as '0,1', got {text!r}")
    seeds = []
    for part in parts:
        try:
            seed = int(part)
        except ValueError:
            raise ValueError(
                f"--seeds expects comma-separated integers such as '0,1', got {text!r} ({part!r} is not an integer)"
            ) from None
        if seed < 0:
            raise ValueError(f"--seeds: seeds must be >= 0, got {seed} in {text!r}")
        if seed in seeds:
            raise ValueError(f"--seeds: seed {seed} is given twice in {text!r}")
        seeds.append(seed)
    return tuple(seeds)


def _check_decodable(index, what: str) -> None:
    """Raises ValueError when no image of ``index`` (an ImageFolderIndex) is usable by the loaders' rule (it decodes
    and is at least 2 x 2 pixels: ``data.folders.load_image``); stops at the first that is."""
    from inv_kernels.data.folders import unusable_reason

    for path in index.paths:
        if unusable_reason(path) is None:
            return
    raise ValueError(
        f"{what}: none of its {len(index.paths)} image files is usable (e.g. {index.paths[0]!r}: "
        f"{unusable_reason(index.paths[0])})"
    )


@dataclass
class StudyConfig:
    """Every setting of one study. ``data=None`` uses the built-in generated scenes.

    Built-in data: the models are pretrained (and their synthetic invariance measured) on the generated
    classification set (``train_count`` images per shape class, scene seed 0). Transfer and latent regression use
    separate generated sets drawn with scene seed 1 (``transfer_count`` images per class), so the probes never see a
    pretraining image. Real-world groups are the generated turntables (COIL- and ALOI-style) and lighting groups (ALOI
    illumination and colour temperature), ``group_objects`` objects each, plus any ``groups`` folder given.
    """

    data: str | None = None  # folder with train/ and test/ (or val/) class folders; None: the built-in scenes
    out: str = "runs/study"
    seeds: tuple[int, ...] = (0, 1, 2)
    wide: bool = False  # also pretrain the capacity control (the default recipe on wide_arch)
    random: bool = True  # also measure and probe a randomly initialised network (the floor)
    arch: str = "resnet18"
    wide_arch: str | None = None  # None: resnet50 (resnet50w3, the paper's, when arch is resnet50)
    cifar_stem: bool = False  # the random floor always has the standard stem, so keep False to compare like with like
    image_size: int | None = None  # None: 32 on the built-in data, 64 with --data
    # pretraining (MoCo v2, docs/METHOD.md 2.1, scaled down)
    epochs: int = 160  # every model healthy on the built-in scenes (40: spatial only, 80: not default)
    batch_size: int = 128
    bn_splits: int = 8  # split-batch BN groups (MoCo's shuffle BN on one process); batch_size must be a multiple
    base_lr: float = 0.06  # scaled by batch / 256 (0.03 at batch 128), cosine schedule; chosen by training health
    queue_size: int = 1024
    moco_momentum: float = 0.99
    temperature: float = 0.2
    max_steps: int | None = None  # cap on steps per model (smoke runs and tests)
    knn: bool = True  # kNN top-1 of each model after pretraining (built-in data or --data's test split)
    # built-in data
    train_count: int = 300  # generated training images per class for pretraining (7 classes)
    transfer_count: int = 100  # generated images per class for the transfer and latent sets (test: a quarter)
    group_objects: int = 20  # objects per generated turntable / lighting set
    # measurement (docs/METHOD.md section 4)
    num_images: int = 16  # images per synthetic transform family (each gives 3,089 views over the 18 families)
    stats_images: int | None = None  # cap on the statistics pass (None: the whole training split)
    shrinkage: str = "ledoit_wolf"  # covariance: none (a ridge with a warning when singular), ledoit_wolf, or a number
    mode: str = "paper"  # transforms, probes and group layouts: the reference code's quirks, or "corrected"
    groups: tuple[str, ...] = ()  # extra multi-view folders as PATH or PATH:LAYOUT
    # latent regression (docs/METHOD.md section 5) and transfer (sections 6-7)
    latent_trainval: int | None = None  # cap on kernel-ridge training images (None: the whole generated split)
    tasks: tuple[str, ...] = ()  # extra transfer tasks as NAME:ROOT (see pipelines.transfer)
    folds: int = 5
    # run
    device: str = "auto"
    workers: int = 1
    jobs: int = 0  # pretrainings run at once, each in its own process; 0: one per CPU core (at most 4), 1 on a GPU
    eval_batch_size: int = 256
    progress: bool = True
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def builtin(self) -> bool:
        return self.data is None

    @property
    def size(self) -> int:
        """The image side every stage uses."""
        return self.image_size or (32 if self.builtin else 64)

    @property
    def wide_arch_resolved(self) -> str:
        return self.wide_arch or ("resnet50w3" if self.arch == "resnet50" else "resnet50")

    @property
    def trained_models(self) -> tuple[str, ...]:
        """The models that are pretrained, in report order."""
        return CORE_MODELS + ((WIDE,) if self.wide else ())

    @property
    def models(self) -> tuple[str, ...]:
        """Every model measured and probed, in report order."""
        return self.trained_models + ((RANDOM,) if self.random else ())

    # ------------------------------------------------------------------------------------------------ checks
    def validate(self) -> StudyConfig:
        """Checks every setting that needs no file; returns self.

        Raises:
            ValueError: naming the setting, what it must be and what it is.
        """
        if not self.seeds:
            raise ValueError("seeds: give at least one seed (two or more show the spread over seeds)")
        if len(set(self.seeds)) != len(self.seeds) or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        for name in ("arch", "wide_arch"):
            arch = getattr(self, name)
            if arch is not None and arch not in ARCHS and not arch.startswith("timm:"):
                raise ValueError(
                    f"{name}: unknown architecture {arch!r}; expected one of {', '.join(ARCHS)} or timm:<name>"
                )
        positive = (
            "epochs",
            "batch_size",
            "queue_size",
            "train_count",
            "transfer_count",
            "group_objects",
            "num_images",
            "eval_batch_size",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.bn_splits < 1 or self.batch_size % self.bn_splits:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of bn_splits {self.bn_splits} (>= 1)")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        for name in ("max_steps", "stats_images", "latent_trainval"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {value}")
        if self.image_size is not None and not 16 <= self.image_size <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {self.image_size}")
        if not self.base_lr > 0 or not self.temperature > 0:
            raise ValueError(f"base_lr and temperature must be > 0, got {self.base_lr} and {self.temperature}")
        if not 0 <= self.moco_momentum < 1:
            raise ValueError(f"moco_momentum must be in [0, 1), got {self.moco_momentum}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.shrinkage not in ("none", "ledoit_wolf"):
            try:
                ridge = float(self.shrinkage)
            except ValueError:
                ridge = math.nan
            if not (math.isfinite(ridge) and ridge >= 0):
                raise ValueError(f"shrinkage must be none, ledoit_wolf or a finite ridge >= 0, got {self.shrinkage!r}")
        for name in ("workers", "jobs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:<i>, got {self.device!r}")
        from inv_kernels.downstream import ADAPTERS

        for spec in self.tasks:
            name, _, root = spec.partition(":")
            if not root:
                raise ValueError(f"task {spec!r}: expected NAME:ROOT (the dataset's folder)")
            if name not in ADAPTERS:
                raise ValueError(f"task {spec!r}: unknown task {name!r}; known: {', '.join(ADAPTERS)}")
        return self

    def check_inputs(self) -> None:
        """Checks the input folders (``data``, ``groups``, ``tasks``) exist and have the expected layout.

        Raises:
            FileNotFoundError, NotADirectoryError, ValueError: naming the folder and what is wrong with it.
        """
        if self.data is not None:
            root = Path(self.data)
            if not root.exists():
                raise FileNotFoundError(f"--data folder {str(root)!r} does not exist")
            if not root.is_dir():
                raise NotADirectoryError(f"--data {str(root)!r} is not a folder")
            held_out = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
            if not (root / "train").is_dir() or held_out is None:
                raise ValueError(
                    f"--data folder {str(root)!r} must hold train/ and test/ (or val/) class folders "
                    "(train/ is pretrained on and measured; both feed the classification transfer task)"
                )
            from inv_kernels.data.folders import ImageFolderIndex

            for split in (root / "train", held_out):
                # raises, naming the folder, when it has no class subfolders or images, or no image decodes
                _check_decodable(ImageFolderIndex(split), f"--data split {str(split)!r}")
        if self.groups:
            from inv_kernels.measure.driver import _parse_group_spec
            from inv_kernels.measure.realworld import find_groups

            for spec in self.groups:
                path, layout = _parse_group_spec(spec)
                if not Path(path).is_dir():
                    raise FileNotFoundError(f"--groups folder {path!r} does not exist")
                find_groups(path, layout)
        for spec in self.tasks:
            root = spec.partition(":")[2]
            if not Path(root).exists():
                raise FileNotFoundError(f"--task {spec!r}: folder {root!r} does not exist")
            if not Path(root).is_dir():
                raise NotADirectoryError(f"--task {spec!r}: {root!r} is not a folder")

    # ------------------------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        values = asdict(self)
        values["seeds"] = list(self.seeds)
        values["groups"], values["tasks"] = list(self.groups), list(self.tasks)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> StudyConfig:
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        for name in ("seeds", "groups", "tasks"):
            if name in kept:
                kept[name] = tuple(kept[name])
        return cls(**kept)

    def with_(self, **changes) -> StudyConfig:
        return replace(self, **changes)

    def describe(self) -> str:
        """One JSON line of the settings (for logs)."""
        return json.dumps(self.to_dict(), sort_keys=True)
