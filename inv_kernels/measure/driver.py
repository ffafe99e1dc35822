"""The measurement driver: a model and image folders -> feature statistics, synthetic invariance per transform
family and real-world group invariance, written as JSON, CSV and a plot. ``python -m pipelines.measure`` wraps it.

Without folders it measures on the built-in generated scenes: statistics and synthetic transforms on the
classification set, real-world groups on the turntable (COIL-style) and lighting (ALOI-style) sets.

Under ``torchrun`` (several processes: NCCL on GPUs, gloo on the CPU) every feature pass is split: each process takes
a contiguous block of the images, the statistics pass merges the blocks' float64 moments exactly, and the feature
blocks are gathered on the main process in order, which scores them and alone writes files. Features are cached on
disk (``measure.cache``) so a rerun reads them instead of running the model again.
"""

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from inv_kernels.backend import BACKENDS
from inv_kernels.data.folders import ImageFolderIndex, skipped_among, skipped_record, split_folders
from inv_kernels.distributed import DistContext, all_gather_objects, broadcast_object, gather_rows, shard
from inv_kernels.feature_cache import default_cache_dir, digest_tensors
from inv_kernels.hashing import digest_lines
from inv_kernels.io import check_output_dir, check_output_file
from inv_kernels.measure.cache import STORAGE, MeasureCache, auto_storage
from inv_kernels.measure.features import folder_moments, load_images, path_features, sample_indices
from inv_kernels.measure.model import load_extractor
from inv_kernels.measure.report import write_results
from inv_kernels.measure.synthetic import family_features, sample_images, score_family
from inv_kernels.provenance import provenance
from inv_kernels.stats import FeatureStats, RunningMoments
from inv_kernels.transforms import APPEARANCE_FAMILIES, FAMILIES, MODES, SPATIAL_FAMILIES, get_family

GENERATED_NUM_IMAGES = 32
PAPER_NUM_IMAGES = 1000


@dataclass
class MeasureConfig:
    """Settings of one measurement run (docs/METHOD.md sections 3-4 defaults where they apply)."""

    # a checkpoint path (ours, official MoCo, the paper's, an export, torchvision), random:<arch>, or an nn.Module
    # taking (B, 3, S, S) ImageNet-normalised images to (B, D) features (put in eval mode on the run's device)
    model: str | nn.Module
    arch: str | None = None  # for checkpoints that do not record it
    data: str | None = None  # image folder (class subfolders, or train/ and test/ ones); None: built-in data
    stats_data: str | None = None  # folder for the statistics pass; default: data
    stats_images: int | None = None  # cap on statistics images (None: all)
    num_images: int | None = None  # images per family (None: 1000, or 32 on the built-in data)
    same_images: bool = False  # both modes draw the same images (without replacement; paper mode's own draw repeats)
    transforms: tuple[str, ...] = ("all",)  # family names, or "all" / "spatial" / "appearance"; or one comma list
    mode: str = "paper"
    groups: tuple[str, ...] = ()  # multi-view folders as "PATH" or "PATH:LAYOUT" (one string: one folder)
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
    cache_dir: str | None = None  # feature cache folder; None: inv_kernels.feature_cache.default_cache_dir()
    use_cache: bool = True  # False: compute every feature, read and write no cache
    cache_precision: str = "auto"  # dtype of cached features: "float16", "float32", or "auto" (by conditioning)
    trust_checkpoint: bool = False  # read a checkpoint only full unpickling reads (it could run code from the file)
    call: str | None = None  # the Python call recorded in the results' provenance (None: the command line)
    data_label: str | None = None  # how the results name the images (None: their folder)
    layer: str | None = None  # measure this module's output, pooled (None: the model's pooled output)
    mean: tuple[float, float, float] | None = None  # normalisation (None: a timm model's own, else ImageNet's)
    std: tuple[float, float, float] | None = None
    # fp32, bf16 autocast, or auto: bf16 autocast on a GPU and on CPUs with bfloat16 instructions, else fp32 (None: bf16
    # autocast on a GPU, fp32 on the CPU)
    precision: str | None = "auto"
    channels_last: bool = True  # the forward pass's memory format (False: contiguous)
    fold_batchnorm: bool = True  # fold BatchNorm layers into the preceding convolutions (where the model traces)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One string names one thing: "h_flip,rotation" is two families, not a sequence of letters.
        if isinstance(self.transforms, str):
            self.transforms = tuple(t.strip() for t in self.transforms.split(",") if t.strip())
        if isinstance(self.groups, (str, Path)):
            self.groups = (str(self.groups),)

    def validate(self) -> "MeasureConfig":
        """Checks every setting that needs no file; returns self.

        Raises:
            ValueError: naming the setting, what it must be and what it is.
        """
        if not isinstance(self.model, (str, nn.Module)) or not self.model:
            raise TypeError(
                f"model must be a checkpoint path, random:<arch> or a torch.nn.Module, got {type(self.model).__name__}"
            )
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        for name, low in (("num_images", 1), ("stats_images", 1), ("out_size", 16), ("resize_size", 16)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an integer >= {low} (or None for the default), got {value!r}")
        if self.out_size and self.resize_size and self.resize_size < self.out_size:
            raise ValueError(
                f"resize_size must be >= out_size {self.out_size} (the crop is taken from the resized "
                f"image), got {self.resize_size}"
            )
        for name, low in (("batch_size", 1), ("workers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        ridge = self.shrinkage
        if ridge not in ("none", "ledoit_wolf") and (
            isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not math.isfinite(ridge) or ridge < 0
        ):
            raise ValueError(f"shrinkage must be none, ledoit_wolf or a finite ridge >= 0, got {ridge!r}")
        if self.backend != "auto" and self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; expected auto or one of {', '.join(BACKENDS)}")
        if self.cache_precision not in ("auto", *STORAGE):
            raise ValueError(f"cache_precision must be auto, float16 or float32, got {self.cache_precision!r}")
        if not self.transforms:
            raise ValueError("transforms names no transform family; expected all, spatial, appearance or family names")
        return self


def resolve_families(names) -> list[str]:
    """Expands "all" / "spatial" / "appearance" and checks family names (ValueError lists the valid ones)."""
    groups = {"all": list(FAMILIES), "spatial": list(SPATIAL_FAMILIES), "appearance": list(APPEARANCE_FAMILIES)}
    chosen: list[str] = []
    for name in names:
        for family in groups.get(name, [name]):
            if family not in FAMILIES:
                raise ValueError(
                    f"unknown transform family {family!r}; expected all, spatial, appearance or one of "
                    f"{', '.join(FAMILIES)}"
                )
            if family not in chosen:
                chosen.append(family)
    return chosen


def _default_groups(size: int, progress: bool) -> list[tuple[str, str]]:
    from inv_kernels.data import generated_dataset

    coil = generated_dataset("coil", size=size, progress=progress)
    aloi = generated_dataset("aloi", size=size, progress=progress)
    return [
        (str(coil), "coil"),
        (str(aloi / "illumination"), "aloi_illumination"),
        (str(aloi / "temperature"), "aloi_temperature"),
    ]


def parameter_values(grid: dict[str, torch.Tensor]) -> list[dict]:
    """The parameter values of each grid row: [{name: number or list}, ...], k rows (the grid's first dimension)."""
    names = sorted(grid)
    return [{name: grid[name][j].tolist() for name in names} for j in range(len(grid[names[0]]) if names else 0)]


def _parse_group_spec(spec: str) -> tuple[str, str]:
    path, _, layout = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "auto")
    return path, layout or "auto"


class Measurement:
    """Validates the settings and inputs on construction (before any work; nothing is created: the output folder is
    made when the first result is written); ``run()`` measures.

    Under torchrun the process group is joined here (``DistContext.from_environment``); every process must construct
    and run the same configuration.
    """

    def __init__(self, config: MeasureConfig, stats: FeatureStats | None = None):
        """``stats``: statistics of this model to use instead of a statistics pass (their dimension is checked)."""
        self.config = config.validate()
        self.families = resolve_families(config.transforms)
        self.out = check_output_dir(config.out)
        if config.stats_file and not Path(config.stats_file).is_file():
            check_output_file(config.stats_file, "statistics file")
        if config.use_cache and config.cache_dir:
            check_output_dir(config.cache_dir, "feature cache folder")
        self.ctx = DistContext.from_environment(config.device)
        self.device = self.ctx.device
        self.extractor = load_extractor(
            config.model,
            device=self.device,
            arch=config.arch,
            seed=config.seed,
            trust=config.trust_checkpoint,
            image_size=config.out_size,
            layer=config.layer,
            mean=config.mean,
            std=config.std,
            precision=config.precision,
            channels_last=config.channels_last,
            fold_bn=config.fold_batchnorm,
        )
        trained = self.extractor.info.image_size
        self.out_size = config.out_size or trained or 224
        self.resize_size = config.resize_size or round(self.out_size * 256 / 224)
        self.saved_stats = self._given_stats(stats)
        if stats is None and config.stats_file and Path(config.stats_file).is_file():
            self.saved_stats = FeatureStats.load(
                config.stats_file,
                expected_model_id=self.extractor.info.model_id,
                expected_dim=self.extractor.info.feature_dim,
            )
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
        folder = (config.cache_dir or default_cache_dir()) if config.use_cache else None
        base = {
            "model_id": self.extractor.info.model_id,
            "out_size": self.out_size,
            "resize_size": self.resize_size,
            "precision": "bf16-autocast" if self.extractor.amp else "float32",
            **({"batchnorm": "folded"} if self.extractor.info.batchnorm_folded else {}),
        }
        storage = "float16" if config.cache_precision == "auto" else config.cache_precision
        self.cache = MeasureCache(folder, base, self.ctx, verbose=config.progress, storage=storage)
        self.progress = config.progress and self.ctx.is_main
        self.undecodable = 0
        self.skipped: dict[str, dict] = {}  # per image set read: its unusable images (skipped_record)

    def _given_stats(self, stats: FeatureStats | None) -> FeatureStats | None:
        if stats is None:
            return None
        if not isinstance(stats, FeatureStats):
            raise TypeError(f"stats must be an inv_kernels.FeatureStats, got {type(stats).__name__}")
        if stats.dim != self.extractor.info.feature_dim:
            raise ValueError(
                f"stats: statistics of {stats.dim}-d features, but the model gives "
                f"{self.extractor.info.feature_dim}-d features"
            )
        return stats

    def _find_group_sets(self, specs):
        if not specs:
            return []
        from inv_kernels.measure.realworld import find_groups

        found = [(path, find_groups(path, layout)) for path, layout in specs]
        return [(path, groups.layout, groups) for path, groups in found]  # "auto" named by the layout it detected

    def statistics(self) -> FeatureStats | None:
        """The model's feature statistics: read from ``stats_file``, or from the cached moments of the statistics
        images, else computed over all processes. Returns them on the main process (None on the others), where they
        are also saved (``stats_file``, default out/feature_stats.pt)."""
        cfg = self.config
        model_id = self.extractor.info.model_id
        if self.saved_stats is not None:
            return self.saved_stats
        chosen = sample_indices(len(self.stats_index), cfg.stats_images, seed=cfg.seed, with_replacement=False)
        paths = [self.stats_index.paths[i] for i in chosen]

        def compute():
            moments, skipped = folder_moments(
                self.extractor,
                paths,
                out_size=self.out_size,
                resize_size=self.resize_size,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                progress=self.progress,
                ctx=self.ctx,
            )
            if not self.ctx.is_main:
                return None
            if moments.count < 2:
                raise ValueError(
                    f"only {moments.count} of the {len(paths)} statistics images of "
                    f"{self.stats_index.root} could be decoded; the covariance needs at least 2"
                )
            state = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in moments.state_dict().items()}
            return {"moments": state, "undecodable": len(skipped), "skipped": [list(pair) for pair in skipped]}

        key = {"images": digest_lines(paths), "entry_format": 2}  # (2: the entry names its skipped images)
        entry = self.cache.get("measure-moments", key, compute, features=False)
        if entry is None:
            return None
        self.undecodable += entry["undecodable"]
        self.skipped["statistics"] = skipped_record([tuple(pair) for pair in entry["skipped"]])
        moments = RunningMoments.from_state_dict(entry["moments"])
        stats = FeatureStats.from_moments(moments, cfg.shrinkage, model_id=model_id)
        stats.save(cfg.stats_file or self.out / "feature_stats.pt")
        return stats

    def run(self) -> dict:
        """Measures: statistics, synthetic families, real-world group sets. Returns the results dict on every process
        (computed by the main process, which also writes them under ``config.out``)."""
        cfg, started = self.config, time.time()
        self.undecodable, self.skipped = 0, {}
        stats = self.statistics()
        stats = stats.to(self.device) if stats is not None else None
        if cfg.cache_precision == "auto":
            self.cache.storage = broadcast_object(self.ctx, auto_storage(stats.condition_number) if stats else None)
            if self.cache.storage == "float32" and self.cache.folder is not None:
                self.cache.say(
                    f"statistics condition number {stats.condition_number:.3g}: caching features in float32 "
                    f"(whitening would amplify fp16 rounding)"
                )
        chosen, sampling = sample_images(
            len(self.index), self.num_images, mode=cfg.mode, seed=cfg.seed, same_images=cfg.same_images
        )
        paths = [self.index.paths[i] for i in chosen]
        block = shard(self.ctx, len(paths))  # one image at a time: a family's views are batched image by image
        images, _ = load_images([paths[i] for i in block])
        if sum(all_gather_objects(self.ctx, len(images))) == 0:
            raise ValueError(f"none of the {len(chosen)} sampled images of {self.index.root} could be decoded")
        images = [im.to(self.device) for im in images]  # the transforms run where the model does
        images_key = {"images": digest_lines(paths), "seed": cfg.seed}
        clean = self._path_entry("measure-clean", images_key, paths, "clean views")
        if clean is not None:
            self.skipped["images"] = skipped_record(skipped_among(paths, clean["positions"].tolist()))
        clean = None if clean is None else clean["features"].float()  # (n, D), n decodable images
        synthetic, grids = [], []
        for family in tqdm(self.families, desc="transform families", unit="family", disable=not self.progress):
            grid = get_family(family).grid(cfg.mode, out_size=self.out_size, resize_size=self.resize_size)
            grids.append(grid)
            key = {**images_key, "family": family, "mode": cfg.mode, "grid": digest_tensors(grid)}
            views = self._features(
                f"measure-{family}",
                key,
                lambda f=family: family_features(
                    self.extractor,
                    images,
                    f,
                    mode=cfg.mode,
                    out_size=self.out_size,
                    resize_size=self.resize_size,
                    batch_size=cfg.batch_size,
                    progress=self.progress,
                ),
            )
            if self.ctx.is_main:
                synthetic.append(
                    score_family(
                        clean,
                        views,
                        stats,
                        family,
                        mode=cfg.mode,
                        backend=cfg.backend,
                        out_size=self.out_size,
                        resize_size=self.resize_size,
                    )
                )
        realworld = [self._measure_groups(path, layout, groups, stats) for path, layout, groups in self.group_sets]
        results = None
        if self.ctx.is_main:
            results = {
                "model": asdict(self.extractor.info),
                "settings": {
                    "mode": cfg.mode,
                    "out_size": self.out_size,
                    "resize_size": self.resize_size,
                    "num_images": clean.shape[0],
                    "families": self.families,
                    "data": cfg.data_label or str(self.index.root),
                    "backend": cfg.backend,
                    "device": str(self.device),
                    "world_size": self.ctx.world_size,
                },
                "sampling": sampling,
                "statistics": stats.summary(),
                # each per-value score beside the transform parameters it was measured at
                "synthetic": [{**r.to_dict(), "values": parameter_values(g)} for r, g in zip(synthetic, grids)],
                "realworld": realworld,
                "undecodable_images": self.undecodable + len(paths) - clean.shape[0],
                "skipped_images": self.skipped,
                "feature_cache": self.cache.summary(),
                "time_s": time.time() - started,
                "provenance": provenance(
                    device=self.device,
                    call=cfg.call,
                    model_hash=self.extractor.info.model_id,
                    condition_number=stats.condition_number,
                ),
            }
            results["files"] = {k: str(v) for k, v in write_results(results, self.out).items()}
        return broadcast_object(self.ctx, results)

    def _path_entry(self, name: str, key: dict, paths: list[str], desc: str) -> dict | None:
        """Clean-view features of image files (``path_features``, split over the processes), cached under ``name``:
        the entry {"features" (N', D), "positions" (N',) of the decodable files} on the main process, else None."""

        def compute():
            found = path_features(
                self.extractor,
                paths,
                out_size=self.out_size,
                resize_size=self.resize_size,
                batch_size=self.config.batch_size,
                workers=self.config.workers,
                desc=desc,
                progress=self.progress,
                ctx=self.ctx,
            )
            return None if found is None else {"features": found[0], "positions": found[1]}

        return self.cache.get(name, key, compute)

    def _features(self, name: str, key: dict, compute_block) -> torch.Tensor | None:
        """Rows of features of the synthetic images, cached under ``name``; ``compute_block()`` gives this
        process's block (its decodable images). Returns all rows (float32, CPU) on the main process, else None."""

        def compute():
            rows = gather_rows(self.ctx, compute_block())
            return None if rows is None else {"features": rows}

        entry = self.cache.get(name, key, compute)
        return None if entry is None else entry["features"].float()

    def _measure_groups(self, path: str, layout: str, groups, stats) -> dict | None:
        from inv_kernels.measure.realworld_measure import group_paths, score_groups

        name = f"{Path(path).name}:{layout}"
        paths = group_paths(groups)
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{Path(path).name}-{layout}")
        entry = self._path_entry(f"measure-groups-{label}", {"images": digest_lines(paths)}, paths, f"groups {name}")
        if entry is None:
            return None
        self.skipped[f"groups {name}"] = skipped_record(skipped_among(paths, entry["positions"].tolist()))
        return score_groups(
            entry["features"].float(), entry["positions"], groups, stats, backend=self.config.backend, name=name
        )


def measure(config: MeasureConfig) -> dict:
    """Measurement(config).run(): the results dict, also written under ``config.out``."""
    return Measurement(config).run()
