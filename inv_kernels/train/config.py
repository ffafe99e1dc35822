"""The pretraining configuration: one dataclass, the single source of defaults for the library and the CLI."""

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from inv_kernels.data.loaders import TWO_VIEW_LOADERS
from inv_kernels.models.backbones import ARCHS
from inv_kernels.models.moco import OBJECTIVES
from inv_kernels.precision import PRECISIONS

BUILTIN_RECIPES = ("default", "spatial", "appearance")
LOADERS = ("auto", *TWO_VIEW_LOADERS)  # "auto": dali when NVIDIA DALI is installed, else torchvision
# The settings a resumed run may give other values than its checkpoint's: where it writes, which checkpoint it reads
# and whether it trusts it, how many loader workers or threads it uses, on which device it runs, where it stops and
# how often it logs and checkpoints, and the arithmetic's precision and threads, which a change of device changes too.
# Every other setting decides what the run computes and must match.
RESUME_MAY_CHANGE = (
    "out",
    "resume",
    "trust_checkpoint",
    "workers",
    "threads",
    "device",
    "amp",
    "precision",
    "max_steps",
    "log_every_steps",
    "save_every_steps",
    "factor_monitor",
)
_PATH_SETTINGS = ("data", "knn_data")  # the same folder may be named differently


@dataclass
class PretrainConfig:
    """MoCo v2 pretraining settings (docs/METHOD.md 2.1 defaults; smaller ones suit the built-in data on a CPU).

    ``data`` is an image folder with class subfolders (labels are ignored for training), or None for the built-in
    generated scenes. ``recipe`` is "default", "spatial", "appearance" or a custom spec (see inv_kernels.augment).
    """

    data: str | None = None
    out: str = "runs/pretrain"
    recipe: str = "default"
    arch: str = "resnet18"
    cifar_stem: bool | None = None  # None: on for images of 32 px or less
    image_size: int | None = None  # None: 64 on the built-in data, else 224
    epochs: int = 200
    batch_size: int = 256
    base_lr: float = 0.03  # scaled by batch / 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    cosine: bool = True
    warmup_steps: int = 0  # the learning rate rises linearly over the first steps; 0: none
    objective: str = "moco"
    moco_dim: int = 128
    queue_size: int = 65536
    moco_momentum: float = 0.999
    temperature: float = 0.2
    mlp: bool = True
    bn_splits: int = 8  # one process only; under torch.distributed, batches are shuffled across processes
    workers: int = 2
    # "dali": DALI decoding + one fused_augment call per batch (data/dali/two_view.py); "torchvision": the
    # DataLoader baseline; "auto": dali when NVIDIA DALI is installed, else torchvision
    loader: str = "auto"
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # False: float32 everywhere, whatever ``precision`` says
    precision: str = "auto"  # one of PRECISIONS; "auto": bf16 autocast on CUDA and bf16-capable CPUs, else fp32
    channels_last: bool = True  # the model and the views in channels-last memory (CUDA and CPU)
    threads: int = 0  # torch's intra-op threads; 0: torch's default
    compile: bool = False
    save_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
    log_every_steps: int = 10
    knn_every: int = 0  # epochs; 0: only after the last epoch; < 0: never
    knn_data: str | None = None  # folder with train/ and test/ class subfolders; None: the built-in data's
    knn_k: int = 200
    knn_max_images: int | None = None  # cap on train and test images for the monitor
    # after the last epoch, probe the built-in scenes' factors and the recipe's invariances against the untrained network
    # (train.factor_monitor); None: on for the built-in data (it needs the scenes' latents), off for a data folder
    factor_monitor: bool | None = None
    max_steps: int | None = None  # stop after this many steps in total (tests, smoke runs)
    resume: str | None = None  # "auto": the output folder's last checkpoint, or a checkpoint path
    trust_checkpoint: bool = False  # resume from a checkpoint only full unpickling reads (it could run code from it)
    extra: dict = field(default_factory=dict)

    def validate(self) -> "PretrainConfig":
        """Checks every setting that can be checked without touching data; returns self. Raises ValueError."""
        if self.arch not in ARCHS and not self.arch.startswith("timm:"):
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHS)} or timm:<name>")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; expected one of {', '.join(OBJECTIVES)}")
        for name in ("epochs", "batch_size", "moco_dim", "queue_size", "knn_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("base_lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.moco_momentum < 1:
            raise ValueError(f"moco_momentum must be in [0, 1), got {self.moco_momentum}")
        if self.image_size is not None and not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [16, 1024], got {self.image_size}")
        if self.bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {self.bn_splits}")
        if self.loader not in LOADERS:
            raise ValueError(f"unknown loader {self.loader!r}; expected one of {', '.join(LOADERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        if self.precision == "bf16" and not self.amp:
            raise ValueError("precision 'bf16' contradicts amp=False (float32 everywhere); give one of them")
        for name in ("workers", "threads", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.factor_monitor and self.data is not None:
            raise ValueError(
                f"factor_monitor needs the built-in scenes (their factors are known); it cannot run on data {self.data}"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PretrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def resume_differences(saved: dict, config: PretrainConfig) -> list[str]:
    """The settings of ``config`` that differ from ``saved`` (a checkpoint's ``config.to_dict()``), other than
    ``RESUME_MAY_CHANGE``, each as ``"name: saved <value>, given <value>"``; settings only one side knows count too,
    except a setting the checkpoint does not record (an earlier version's) given at its default.
    Folders (``data``, ``knn_data``) are the same when they resolve to the same path."""
    known = [f.name for f in fields(config)]
    differences = []
    for name in (name for name in known if name not in RESUME_MAY_CHANGE):
        given = getattr(config, name)
        if name not in saved:
            default = _DEFAULTS.get(name, _NO_DEFAULT)
            if given != default:
                then = f" (its default {default!r} then)" if default is not _NO_DEFAULT else ""
                differences.append(f"{name}: not recorded in the checkpoint{then}, given {given!r}")
        elif not _same_setting(name, saved[name], given):
            differences.append(f"{name}: saved {saved[name]!r}, given {given!r}")
    for name in sorted(set(saved).difference(known)):
        differences.append(f"{name}: saved {saved[name]!r}, unknown to this version")
    return differences


_NO_DEFAULT = object()
# A setting that a checkpoint of an earlier version does not record had, in effect, its default value there.
_DEFAULTS = {f.name: f.default for f in fields(PretrainConfig) if f.default is not MISSING}


def _same_setting(name: str, saved, given) -> bool:
    if saved == given:
        return True
    if name in _PATH_SETTINGS and isinstance(saved, str) and isinstance(given, str):
        return Path(saved).expanduser().resolve() == Path(given).expanduser().resolve()
    return False
