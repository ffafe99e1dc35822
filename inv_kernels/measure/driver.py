"""The measurement driver: a model and image folders -> feature statistics, synthetic invariance per transform
family and real-world group invariance, written as JSON, CSV and a plot. ``python -m pipelines.measure`` wraps it.

Without folders it measures on the built-in generated scenes: statistics and synthetic transforms on the
classification set, real-world groups on the turntable (COIL-style) and lighting (ALOI-style) sets.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from inv_kernels.augment.folder import ImageFolderIndex, split_folders
from inv_kernels.io import check_writable_dir
from inv_kernels.measure.features import folder_statistics, load_images, sample_indices
from inv_kernels.measure.model import load_extractor
from inv_kernels.measure.report import write_results
from inv_kernels.measure.synthetic import measure_synthetic
from inv_kernels.stats import FeatureStats
from inv_kernels.train.distributed import resolve_device
from inv_kernels.transforms import APPEARANCE_FAMILIES, FAMILIES, MODES, SPATIAL_FAMILIES

GENERATED_NUM_IMAGES = 32
PAPER_NUM_IMAGES = 1000


@dataclass
class MeasureConfig:
    """Settings of one measurement run (PAPER.md sections 3-4 defaults where they apply)."""

    model: str  # a checkpoint path (ours, official MoCo, the paper's, an export, torchvision) or random:<arch>
    arch: str | None = None  # for checkpoints that do not record it
    data: str | None = None  # image folder (class subfolders, or train/ and test/ ones); None: built-in data
    stats_data: str | None = None  # folder for the statistics pass; default: data
    stats_images: int | None = None  # cap on statistics images (None: all)
    num_images: int | None = None  # images per family (None: 1000, or 32 on the built-in data)
    transforms: tuple[str, ...] = ("all",)  # family names, or "all" / "spatial" / "appearance"
    mode: str = "paper"
    groups: tuple[str, ...] = ()  # multi-view folders as "PATH" or "PATH:LAYOUT"
    out: str = "runs/measure"
    device: str = "auto"
    batch_size: int = 256
    out_size: int | None = None  # None: the checkpoint's training size, else 224
    resize_size: int | None = None  # None: out_size * 256 / 224
    shrinkage: str = "none"
    stats_file: str | None = None  # reuse statistics saved by an earlier run of the same model
    backend: str = "auto"
    workers: int = 2
    seed: int = 0
    progress: bool = True
    extra: dict = field(default_factory=dict)


def resolve_families(names) -> list[str]:
    """Expands "all" / "spatial" / "appearance" and checks family names (ValueError lists the valid ones)."""
    groups = {"all": list(FAMILIES), "spatial": list(SPATIAL_FAMILIES), "appearance": list(APPEARANCE_FAMILIES)}
    chosen: list[str] = []
    for name in names:
        for family in groups.get(name, [name]):
            if family not in FAMILIES:
                raise ValueError(f"unknown transform family {family!r}; expected all, spatial, appearance or one of "
                                 f"{', '.join(FAMILIES)}")  # fmt: skip
            if family not in chosen:
                chosen.append(family)
    return chosen


def _default_groups(size: int, progress: bool) -> list[tuple[str, str]]:
    from inv_kernels.data import generated_dataset

    coil = generated_dataset("coil", size=size, progress=progress)
    aloi = generated_dataset("aloi", size=size, progress=progress)
    return [(str(coil), "coil"), (str(aloi / "illumination"), "aloi_illumination"),
            (str(aloi / "temperature"), "aloi_temperature")]  # fmt: skip


def _parse_group_spec(spec: str) -> tuple[str, str]:
    path, _, layout = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "auto")
    return path, layout or "auto"


class Measurement:
    """Validates the settings and inputs on construction (before any work); ``run()`` measures."""

    def __init__(self, config: MeasureConfig):
        self.config = config
        if config.mode not in MODES:
            raise ValueError(f"unknown mode {config.mode!r}; expected one of {', '.join(MODES)}")
        self.families = resolve_families(config.transforms)
        self.out = check_writable_dir(config.out)
        self.device = resolve_device(config.device)
        self.extractor = load_extractor(config.model, device=self.device, arch=config.arch, seed=config.seed)
        trained = self.extractor.info.image_size
        self.out_size = config.out_size or trained or 224
        self.resize_size = config.resize_size or round(self.out_size * 256 / 224)
        builtin = config.data is None
        if builtin:
            from inv_kernels.data import generated_dataset

            data = generated_dataset("classification", size=max(16, self.out_size), progress=config.progress)
        else:
            data = Path(config.data)
        self.index = ImageFolderIndex(split_folders(data)[0])
        stats_root = Path(config.stats_data) if config.stats_data else Path(data)
        self.stats_index = ImageFolderIndex(split_folders(stats_root)[0])
        self.num_images = config.num_images or (GENERATED_NUM_IMAGES if builtin else PAPER_NUM_IMAGES)
        specs = [_parse_group_spec(s) for s in config.groups]
        if builtin and not specs:
            specs = _default_groups(max(16, self.out_size), config.progress)
        self.group_sets = self._find_group_sets(specs)

    def _find_group_sets(self, specs):
        if not specs:
            return []
        from inv_kernels.measure.realworld import find_groups

        return [(path, layout, find_groups(path, layout)) for path, layout in specs]

    def statistics(self) -> FeatureStats:
        cfg = self.config
        model_id = self.extractor.info.model_id
        if cfg.stats_file and Path(cfg.stats_file).exists():
            return FeatureStats.load(cfg.stats_file, expected_model_id=model_id, expected_dim=self.extractor.info.feature_dim)
        stats, failed = folder_statistics(
            self.extractor, self.stats_index, out_size=self.out_size, resize_size=self.resize_size,
            max_images=cfg.stats_images, seed=cfg.seed, shrinkage=cfg.shrinkage, batch_size=cfg.batch_size,
            workers=cfg.workers, progress=cfg.progress,
        )  # fmt: skip
        self.undecodable = failed
        stats.save(cfg.stats_file or self.out / "feature_stats.pt")
        return stats

    def run(self) -> dict:
        cfg, started = self.config, time.time()
        self.undecodable = 0
        stats = self.statistics().to(self.device)
        chosen = sample_indices(len(self.index), self.num_images, seed=cfg.seed, with_replacement=cfg.mode == "paper")
        images, failed = load_images([self.index.paths[i] for i in chosen])
        if not images:
            raise ValueError(f"none of the {len(chosen)} sampled images of {self.index.root} could be decoded")
        synthetic = measure_synthetic(
            self.extractor, [im.to(self.device) for im in images], stats, self.families, mode=cfg.mode,
            out_size=self.out_size, resize_size=self.resize_size, batch_size=cfg.batch_size, backend=cfg.backend,
            progress=cfg.progress,
        )  # fmt: skip
        realworld = [self._measure_groups(path, layout, groups, stats) for path, layout, groups in self.group_sets]
        results = {
            "model": asdict(self.extractor.info),
            "settings": {"mode": cfg.mode, "out_size": self.out_size, "resize_size": self.resize_size,
                         "num_images": len(images), "families": self.families, "data": str(self.index.root),
                         "backend": cfg.backend, "device": str(self.device)},  # fmt: skip
            "statistics": stats.summary(),
            "synthetic": [r.to_dict() for r in synthetic],
            "realworld": realworld,
            "undecodable_images": self.undecodable + len(failed),
            "time_s": time.time() - started,
        }
        results["files"] = {k: str(v) for k, v in write_results(results, self.out).items()}
        return results

    def _measure_groups(self, path: str, layout: str, groups, stats) -> dict:
        from inv_kernels.measure.realworld_measure import measure_groups

        return measure_groups(
            self.extractor, groups, stats, out_size=self.out_size, resize_size=self.resize_size,
            batch_size=self.config.batch_size, workers=self.config.workers, backend=self.config.backend,
            progress=self.config.progress, name=f"{Path(path).name}:{layout}",
        )  # fmt: skip


def measure(config: MeasureConfig) -> dict:
    """Measurement(config).run(): the results dict, also written under ``config.out``."""
    return Measurement(config).run()
