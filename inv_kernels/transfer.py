"""Transfer evaluation (docs/METHOD.md sections 6-7): every model and every fusion of models, on every task, by
cross-validated linear probes: multinomial logistic regression for classification, multi-output ridge for
regression (keypoints, latents). ``python -m pipelines.transfer`` wraps ``evaluate_transfer``.

A fusion ``a+b`` concatenates (``cat``), adds or averages the members' features as the paper does, or weights
standardised blocks by cross-validation (``weighted``, this project's method). The regularisation grid shifts with
the number of fused models as in the reference code (``probes.grid``).
"""

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch.nn as nn
from tqdm import tqdm

from inv_kernels.data.folders import skipped_record
from inv_kernels.downstream import DownstreamTask, task_features
from inv_kernels.fusion import fuse, weighted_fusion
from inv_kernels.measure.model import FeatureExtractor, load_extractor
from inv_kernels.models.backbones import check_arch
from inv_kernels.probes import fit_logistic_cv, fit_ridge_cv, logistic_Cs, ridge_alphas
from inv_kernels.provenance import provenance

FUSIONS = ("cat", "add", "mean", "weighted")
BUILTIN_TASK_SIZE = 64  # the image side of the built-in generated tasks, unless a size is given
PAPER_TASK_SIZE = 224  # the image side of NAME:ROOT tasks, unless a size is given (the paper's Resize + CenterCrop)


@dataclass
class TransferConfig:
    models: dict[str, str | nn.Module]  # name -> checkpoint path, random:<arch> or a model object
    tasks: list[DownstreamTask]
    fusions: tuple[str, ...] = ("cat",)
    combos: str = "all"  # "all": every subset of 2 or more models; "none"; or "a+b,a+b+c"
    mode: str = "paper"
    folds: int = 5
    device: str = "auto"
    batch_size: int = 64
    workers: int = 0
    seed: int = 0
    progress: bool = True
    trust_checkpoint: bool = False  # read checkpoints only full unpickling reads (they could run code from the file)
    # model name -> keywords of measure.model.load_extractor (arch, image_size, layer, mean, std, precision)
    load_options: dict[str, dict] = field(default_factory=dict)
    call: str | None = None  # the Python call recorded in the results' provenance (None: the command line)
    extra: dict = field(default_factory=dict)

    def validate(self) -> "TransferConfig":
        """Checks every setting that needs no file (the tasks may still be empty); returns self.

        Raises:
            ValueError: naming the setting, what it must be and what it is.
        """
        from inv_kernels.transforms import MODES

        if not self.models:
            raise ValueError("models names no model")
        for name, spec in self.models.items():
            if isinstance(spec, nn.Module) and name:
                continue
            if not name or not spec or not isinstance(spec, str):
                raise ValueError(f"model {name!r}={spec!r}: expected NAME=CHECKPOINT or NAME=random:<arch>")
            if spec.startswith("random:"):
                try:
                    check_arch(spec.removeprefix("random:"))
                except ValueError as error:
                    raise ValueError(f"model {name!r}: {error} (in {spec!r})") from None
        if not self.fusions:
            raise ValueError(f"fusions names no fusion; expected one or more of {', '.join(FUSIONS)}")
        for fusion in self.fusions:
            if fusion not in FUSIONS:
                raise ValueError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
        model_combinations(list(self.models), self.combos)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        for name, low in (("folds", 2), ("batch_size", 1), ("workers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        return self


def model_combinations(names: list[str], combos: str) -> list[tuple[str, ...]]:
    """Single models, then the requested fusions' member lists (ValueError for an unknown member)."""
    singles = [(name,) for name in names]
    if combos == "none":
        return singles
    if combos == "all":
        return singles + [c for r in range(2, len(names) + 1) for c in itertools.combinations(names, r)]
    chosen = []
    for combo in combos.split(","):
        members = tuple(m.strip() for m in combo.split("+") if m.strip())
        unknown = [m for m in members if m not in names]
        if unknown or len(members) < 2:
            raise ValueError(f"fusion {combo!r}: needs 2 or more of the models {', '.join(names)}")
        chosen.append(members)
    return singles + chosen


def parse_tasks(specs: list[str]) -> list[tuple[str, str]]:
    """(name, root) of each task spec NAME:ROOT; ValueError / FileNotFoundError / NotADirectoryError name the spec
    with an unknown name or a root that is not an existing folder (nothing is read)."""
    from inv_kernels.downstream import ADAPTERS

    parsed = []
    for spec in specs:
        name, _, root = spec.partition(":")
        if not root:
            raise ValueError(f"--task {spec!r}: expected NAME:ROOT (the dataset's folder)")
        if name not in ADAPTERS:
            raise ValueError(f"--task {spec!r}: unknown task {name!r}; known: {', '.join(ADAPTERS)}")
        if not Path(root).exists():
            raise FileNotFoundError(f"--task {spec!r}: folder {root} does not exist")
        if not Path(root).is_dir():
            raise NotADirectoryError(f"--task {spec!r}: {root} is not a folder")
        parsed.append((name, root))
    return parsed


def task_image_size(tasks, size: int | None) -> int | None:
    """The side of the task images, which is also the models' input size.

    Args:
        tasks: NAME:ROOT specs (a list, possibly empty for the built-in sets) or ``DownstreamTask`` objects.
        size: the side asked for, or None.

    Returns:
        ``size`` when given; else the tasks' common ``out_size`` for task objects (None when they differ),
        ``PAPER_TASK_SIZE`` for specs, ``BUILTIN_TASK_SIZE`` for the built-in sets.
    """
    if size:
        return size
    if not tasks:
        return BUILTIN_TASK_SIZE
    if all(isinstance(t, str) for t in tasks):
        return PAPER_TASK_SIZE
    sides = {t.out_size for t in tasks}
    return sides.pop() if len(sides) == 1 else None


def build_tasks(specs: list[str], mode: str, size: int | None, progress: bool) -> list[DownstreamTask]:
    """The tasks of NAME:ROOT specs, or without specs the built-in generated classification and latent-regression
    sets; images at ``task_image_size(specs, size)``."""
    from inv_kernels.downstream import get_task

    size = task_image_size(specs, size)
    if not specs:
        from inv_kernels.data import generated_dataset

        return [
            get_task(
                f"generated_{kind}",
                generated_dataset(kind, size=size, progress=progress),
                mode=mode,
                out_size=size,
                resize_size=size,
            )
            for kind in ("classification", "latents")
        ]
    return [get_task(name, root, mode=mode, out_size=size, resize_size=size) for name, root in parse_tasks(specs)]


def _probe(task: DownstreamTask, X, y, X_test, y_test, members: int, wide: bool, cfg: TransferConfig, kept=None):
    """The task's probe; ``kept``: the (trainval, test) positions of the rows, which select the rows of the targets'
    visibility where the task records it (LSP in corrected mode: hidden keypoints are left out of fit and score)."""
    if task.kind == "classification":
        result = fit_logistic_cv(
            X,
            y,
            logistic_Cs(members, wide, cfg.mode),
            cfg.folds,
            X_test=X_test,
            y_test=y_test,
            metric=task.metric,
            seed=cfg.seed,
            source=task.name,
        )
    else:
        visible = [task.visibility(split) for split in ("trainval", "test")]
        masks = [v if v is None or rows is None else v[rows.numpy()] for v, rows in zip(visible, kept or (None, None))]
        result = fit_ridge_cv(
            X,
            y,
            ridge_alphas(members, wide, cfg.mode),
            cfg.folds,
            X_test=X_test,
            Y_test=y_test,
            mask=masks[0],
            mask_test=masks[1],
            mode=cfg.mode,
            seed=cfg.seed,
            source=task.name,
        )
    return result


def model_load_options(
    models, *, image_size: int | None = None, arch=None, layer=None, mean=None, std=None, precision=None
) -> dict[str, dict]:
    """``TransferConfig.load_options`` for the models named ``models``: ``arch`` and ``layer`` are one value for every
    model or a dict name -> value (models not in it get None); ``image_size``, ``mean``, ``std`` and ``precision``
    apply to every model.

    Raises:
        ValueError: a dict that names a model ``models`` does not have.
    """

    def each(setting: str, value) -> dict:
        if not isinstance(value, dict):
            return dict.fromkeys(models, value)
        unknown = [name for name in value if name not in models]
        if unknown:
            raise ValueError(f"{setting}: {', '.join(map(repr, unknown))} is not a model; models: {', '.join(models)}")
        return {name: value.get(name) for name in models}

    archs, layers = each("arch", arch), each("layer", layer)
    common = {"image_size": image_size, "mean": mean, "std": std, "precision": precision}
    return {name: {**common, "arch": archs[name], "layer": layers[name]} for name in models}


def load_models(cfg: TransferConfig) -> dict[str, FeatureExtractor]:
    """Every model of ``cfg`` (validated first), loaded on its device: name -> feature extractor. Loading checks each
    checkpoint (exists, is a file, readable, a layout the project reads, weights fit the architecture), so a run can
    load its models before any data work.

    Raises:
        ValueError, FileNotFoundError, IsADirectoryError, RuntimeError: naming the setting or the file.
    """
    from inv_kernels.distributed import resolve_device

    device = resolve_device(cfg.validate().device)
    return {
        name: load_extractor(
            spec, device=device, seed=cfg.seed, trust=cfg.trust_checkpoint, **cfg.load_options.get(name, {})
        )
        for name, spec in cfg.models.items()
    }


def evaluate_transfer(cfg: TransferConfig, extractors: dict[str, FeatureExtractor] | None = None) -> dict:
    """Runs every (model or fusion) x task; returns {"results": rows, "settings": ..., "skipped_images": {task:
    {"trainval": skipped_record, "test": skipped_record}}} (the images left out of each task's features).

    Args:
        cfg: the settings and tasks.
        extractors: the models as ``load_models(cfg)`` gives them (loaded here when None).

    Each row: model (a name, or members joined by "+"), members, fusion, task, kind, metric, test_score, the chosen
    regularisation, CV score, feature dimension, probe time.
    """
    cfg.validate()
    combos = model_combinations(list(cfg.models), cfg.combos)
    extractors = extractors if extractors is not None else load_models(cfg)
    device = next(iter(extractors.values())).device
    rows, skipped = [], {}
    for task in cfg.tasks:
        feats = {
            name: task_features(ext, task, batch_size=cfg.batch_size, workers=cfg.workers, progress=cfg.progress)
            for name, ext in extractors.items()
        }
        files = next(iter(feats.values())).skipped_files  # the same images for every model
        skipped[task.name] = {split: skipped_record(pairs) for split, pairs in files.items()}
        jobs = [(c, f) for c in combos for f in (cfg.fusions if len(c) > 1 else ("single",))]
        for members, fusion in tqdm(jobs, desc=f"probes {task.name}", disable=not cfg.progress):
            started = time.time()
            train_blocks = [feats[m].X_trainval for m in members]
            test_blocks = [feats[m].X_test for m in members]
            y, y_test = feats[members[0]].y_trainval, feats[members[0]].y_test
            if fusion == "weighted":
                X, X_test, weights, _ = weighted_fusion(train_blocks, test_blocks, y, task.kind, seed=cfg.seed)
            else:
                mode = "cat" if fusion == "single" else fusion
                X, X_test, weights = fuse(train_blocks, mode), fuse(test_blocks, mode), None
            wide = any(extractors[m].info.arch == "resnet50w3" for m in members)
            kept = (feats[members[0]].kept_trainval, feats[members[0]].kept_test)
            result = _probe(task, X.double(), y, X_test.double(), y_test, len(members), wide, cfg, kept)
            rows.append(
                {
                    "model": "+".join(members),
                    "members": list(members),
                    "fusion": fusion,
                    "task": task.name,
                    "kind": task.kind,
                    "metric": task.metric,
                    "test_score": float(result.test_metrics[task.metric]),
                    "chosen": result.best_params,
                    "cv_score": float(result.cv_scores[result.best_index]),
                    "feature_dim": int(X.shape[1]),
                    "weights": list(weights) if weights is not None else None,
                    "seconds": time.time() - started,
                }
            )
    return {
        "results": rows,
        "settings": {
            "mode": cfg.mode,
            "folds": cfg.folds,
            "fusions": list(cfg.fusions),
            "models": {
                name: spec if isinstance(spec, str) else type(spec).__name__ for name, spec in cfg.models.items()
            },
            "device": str(device),
        },
        "skipped_images": skipped,
        "models": {name: asdict(extractor.info) for name, extractor in extractors.items()},  # what each one loaded
        "provenance": provenance(
            device=device, call=cfg.call, model_hash={name: ext.info.model_id for name, ext in extractors.items()}
        ),
    }
