"""Loading the model to measure or probe, from whatever a user has: ``load_model(model_or_path, arch=None,
image_size=None, trust=False)`` -> (module, LoadReport). Every entry point that reads a model goes through it.

Accepted:

- ``random:<arch>``: a seeded random initialisation of any architecture ``build_backbone`` builds (torchvision names,
  ``resnet50w3``, ``timm:<name>``);
- an ``nn.Module`` object (Python only): used as it is;
- a file: this project's pretraining checkpoints and exported backbones; official MoCo v2 (``module.encoder_q.*``, the
  ``fc`` projection head dropped) and MoCo v3 (``module.base_encoder.*``, the ``head``/``fc`` MLP dropped) checkpoints;
  solo-learn (Lightning) checkpoints (``state_dict`` with ``backbone.*``; projector and momentum keys ignored);
  lightly backbones (``nn.Sequential(*list(resnet.children())[:-1])``: Sequential indices mapped to torchvision names;
  also under ``backbone.``); plain torchvision or timm state dicts (bare, or under ``state_dict`` / ``model``) as
  .pth/.pt/.tar/.ckpt; ``.safetensors`` files; a pickled ``nn.Module`` only when trusted (``trust=True``,
  ``--trust-checkpoint``: unpickling it could run code from the file).

Weights are matched to the architecture by the key prefix that fits it best among the usual wrappers (``module.``,
``model.``, ``backbone.``, ``encoder_q.``, ``encoder.``, ``base_encoder.``, ...): keys outside it are ignored, the
classifier or projection head is dropped, and the report names the prefix stripped, the key groups ignored, the head
dropped, and the keys missing or unexpected. A load that fills fewer than ``MIN_MATCHED`` of the model's tensors is an
error, never a silently random model.
"""

import hashlib
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from inv_kernels.io import atomic_torch_save
from inv_kernels.models.backbones import (
    HeadlessEncoder,
    build_backbone,
    check_arch,
    check_input_size,
    drop_classifier,
)
from inv_kernels.models.checkpoint import read_checkpoint

WRAPPERS = ("module", "model", "backbone", "encoder_q", "encoder", "base_encoder", "body", "_orig_mod")
HEADS = ("fc", "head", "heads", "classifier")
MIN_MATCHED = 0.9  # the share of the model's tensors a checkpoint must fill
DEFAULT_SIZE = 224
# Architecture names official MoCo v3 checkpoints record, as timm names (their ViTs are timm VisionTransformers; their
# vit_small has 12 heads where timm's has 6, so it has no timm name).
ARCH_ALIASES = {"vit_base": "timm:vit_base_patch16_224"}
SEQUENTIAL = "Sequential indices -> the model's child names"


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """The first 16 hex digits of the file's SHA-256: the identity of a checkpoint in caches and stats files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class LoadReport:
    """What was loaded, and how the file's keys were matched to the architecture."""

    model_id: str  # "<file name>@<sha256 prefix>", "random:<arch>:seed<s>" or "module:<class>@<weights digest>"
    arch: str
    feature_dim: int
    source: str  # export, pretraining, moco_v2, moco_v3, solo-learn, lightly, torchvision, timm, safetensors, ...
    stripped: str = ""  # the key prefix removed
    renamed: str | None = None  # how keys were renamed (lightly's Sequential indices, timm's checkpoint filter)
    ignored: dict[str, int] = field(default_factory=dict)  # key groups outside the backbone -> number of keys
    dropped_head: list[str] = field(default_factory=list)  # classifier / projection-head keys dropped
    missing: list[str] = field(default_factory=list)  # the model's tensors the file lacks (left random)
    unexpected: list[str] = field(default_factory=list)  # the file's backbone keys the model lacks, or misshapen
    loaded: int = 0  # the model's tensors filled from the file
    expected: int = 0  # the model's tensors (BatchNorm step counters aside)
    cifar_stem: bool = False
    image_size: int | None = None  # the training view size the checkpoint records
    input_size: int | None = None  # the size the model was built and checked for
    recipe: str | None = None
    epoch: int | None = None
    mean: tuple[float, float, float] | None = None  # a timm model's pretrained-config normalisation
    std: tuple[float, float, float] | None = None

    def summary(self) -> str:
        """One line: what was loaded and how the keys matched."""
        if self.source in ("random", "module"):
            return f"loaded {self.arch} ({self.model_id}), {self.feature_dim}-d features"
        parts = [f"loaded {self.arch} from {self.model_id} ({self.source}): {self.loaded}/{self.expected} tensors"]
        if self.stripped:
            parts.append(f"stripped {self.stripped!r}")
        if self.renamed:
            parts.append(f"renamed {self.renamed}")
        if self.ignored:
            parts.append("ignored " + ", ".join(f"{k} ({_keys(n)})" for k, n in self.ignored.items()))
        if self.dropped_head:
            heads = sorted({key.split(".")[0] for key in self.dropped_head})
            parts.append(f"dropped head {', '.join(heads)} ({_keys(len(self.dropped_head))})")
        for name in ("missing", "unexpected"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{name} {len(keys)}: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary()}


def _keys(count: int) -> str:
    return f"{count} key{'' if count == 1 else 's'}"


def state_digest(module: nn.Module) -> str:
    """The first 16 hex digits of the SHA-256 of a module's state dict (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:16]


def load_model(
    model_or_path: "str | Path | nn.Module",
    arch: str | None = None,
    *,
    image_size: int | None = None,
    trust: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, LoadReport]:
    """The feature extractor in ``model_or_path``, in eval mode, without classifier or projection head.

    Args:
        model_or_path: a checkpoint file (any layout the module docstring lists), ``random:<arch>``, or an
            ``nn.Module`` (used as it is).
        arch: the architecture (a torchvision name, ``resnet50w3`` or ``timm:<name>``); overrides the one the file
            records; needed for files that record none.
        image_size: the input size S the model will see (ViTs are built for it); default: the size the file
            records, else 224.
        trust: read a file only full unpickling reads, such as a pickled ``nn.Module`` (it could run code from the
            file).
        seed: the seed of a ``random:`` initialisation.

    Returns:
        (module: (B, 3, S, S) -> (B, feature_dim), LoadReport).

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable file, an unknown layout or architecture, a size the
            model cannot take, weights that fill too few of the model's tensors (the message names the counts and
            the keys). UntrustedCheckpointError (a ValueError): a file only full unpickling reads, without ``trust``.
        ImportError: a timm architecture without timm (the message says ``pip install timm``).
    """
    if arch is not None:
        check_arch(arch)
    if isinstance(model_or_path, nn.Module):
        size = image_size or DEFAULT_SIZE
        module = model_or_path.eval()
        model_id = f"module:{type(module).__name__}@{state_digest(module)}"
        dim = check_input_size(module, type(module).__name__, size)
        return module, LoadReport(model_id, type(module).__name__, dim, "module", input_size=size)
    spec = str(model_or_path)
    if not isinstance(model_or_path, Path) and spec.startswith("random:"):
        return _random(spec.removeprefix("random:"), image_size, seed)
    return _load_file(Path(model_or_path), arch, image_size, trust)


def _random(arch: str, image_size: int | None, seed: int) -> tuple[nn.Module, LoadReport]:
    size = image_size or DEFAULT_SIZE
    torch.manual_seed(seed)
    backbone = build_backbone(arch, image_size=size)
    dim = _checked_dim(backbone.module, arch, backbone.feature_dim, size)
    report = LoadReport(f"random:{arch}:seed{seed}", arch, dim, "random", input_size=size, **_timm_norm(backbone))
    return backbone.module.eval(), report


def _checked_dim(module: nn.Module, arch: str, feature_dim: int, size: int) -> int:
    """The feature dimension, checked by a forward pass where the architecture does not fix its input (timm, models
    wrapped without a known width)."""
    if isinstance(module, HeadlessEncoder) or not feature_dim:
        return check_input_size(module, arch, size)
    return feature_dim


def _timm_norm(backbone) -> dict:
    config = getattr(getattr(backbone.module, "body", None), "pretrained_cfg", None) or {}
    if not backbone.arch.startswith("timm:") or "mean" not in config:
        return {}
    return {"mean": tuple(float(v) for v in config["mean"]), "std": tuple(float(v) for v in config["std"])}


def _read(path: Path, trust: bool) -> tuple[dict, dict | None, nn.Module | None]:
    """(the file's entries, its weights as a flat name -> tensor dict, a trusted pickled module or None)."""
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                weights = {key: handle.get_tensor(key) for key in handle.keys()}
                metadata = handle.metadata() or {}
        except Exception as error:  # a damaged or foreign file
            raise ValueError(f"checkpoint {path} cannot be read as safetensors ({type(error).__name__})") from None
        recorded = {"arch": metadata["arch"]} if "arch" in metadata else {}  # metadata values are all strings
        return {**recorded, "_format": "safetensors"}, weights, None
    state = read_checkpoint(path, trust=trust)
    module = state.pop("module", None) if trust else None
    for entry in ("backbone", "state_dict", "model"):
        if isinstance(state.get(entry), dict):
            return state, _tensors(state[entry]), module
    if state and all(isinstance(value, torch.Tensor) for value in state.values()):
        return state, state, module
    if module is not None:
        return state, None, module
    raise ValueError(
        f"{path}: not a checkpoint this project reads (no 'backbone', 'state_dict' or 'model' entry of weights, and "
        f"not a state dict itself)"
    )


def _tensors(weights: dict) -> dict:
    return {key: value for key, value in weights.items() if isinstance(value, torch.Tensor)}


def _load_file(path: Path, arch: str | None, image_size: int | None, trust: bool) -> tuple[nn.Module, LoadReport]:
    state, weights, module = _read(path, trust)
    model_id = f"{path.name}@{file_digest(path)}"
    extra = state.get("inv_kernels") if isinstance(state.get("inv_kernels"), dict) else {}
    config = extra.get("config") if isinstance(extra.get("config"), dict) else {}
    trained = extra.get("image_size") or state.get("image_size") or state.get("input_size")
    trained = int(trained) if trained else None
    size = image_size or trained or DEFAULT_SIZE
    recorded = state.get("arch") if isinstance(state.get("arch"), str) else None
    if arch is None and recorded is not None:
        arch = ARCH_ALIASES.get(recorded, recorded)
        try:
            check_arch(arch)
        except ValueError:
            raise ValueError(
                f"{path} records architecture {recorded!r}, which this project does not build: pass --arch NAME "
                f"(arch= in Python), a torchvision name such as resnet50, or timm:NAME"
            ) from None
    details = {"image_size": trained, "input_size": size, "recipe": config.get("recipe") or state.get("recipe")}
    details["epoch"] = state.get("epoch") if isinstance(state.get("epoch"), int) else None
    if arch is None and module is not None:  # a trusted pickled model: used as it is, without its classifier
        module, dim = drop_classifier(module)
        dim = check_input_size(module, type(module).__name__, size) if dim is None else dim
        name = type(module).__name__
        return module.eval(), LoadReport(model_id, name, dim, "pickled_module", **details)
    if arch is None:
        raise ValueError(
            f"{path} does not record its architecture: pass --arch NAME (arch= in Python), a torchvision name such "
            f"as resnet50, or timm:NAME"
        )
    cifar = state.get("cifar_stem")
    cifar = bool(cifar) if cifar is not None else _has_cifar_stem(weights, arch)
    backbone = build_backbone(arch, cifar_stem=cifar, image_size=size)
    target = backbone.module.body if isinstance(backbone.module, HeadlessEncoder) else backbone.module
    report = LoadReport(model_id, arch, 0, "", cifar_stem=cifar, **details, **_timm_norm(backbone))
    _fill(target, weights, report, path)
    report.source = _source(state, report, arch)
    report.feature_dim = _checked_dim(backbone.module, arch, backbone.feature_dim, size)
    return backbone.module.eval(), report


def _has_cifar_stem(weights: dict, arch: str) -> bool:
    if "resnet" not in arch or arch.startswith("timm:"):
        return False
    for key, value in weights.items():
        name = ".".join(part for part in key.split(".") if part not in WRAPPERS)
        if name in ("conv1.weight", "0.weight") and value.ndim == 4:
            return value.shape[-1] == 3
    return False


def _source(state: dict, report: LoadReport, arch: str) -> str:
    prefix = report.stripped.split(".")
    if "backbone" in state and report.stripped in ("", "body."):
        return "export"
    if "encoder_q" in prefix:
        return "pretraining" if "inv_kernels" in state else "moco_v2"
    if "base_encoder" in prefix:
        return "moco_v3"
    if report.renamed == SEQUENTIAL:
        return "lightly"
    if "backbone" in prefix and ("global_step" in state or "pytorch-lightning_version" in state):
        return "solo-learn"
    if state.get("_format") == "safetensors":
        return "safetensors"
    return "timm" if arch.startswith("timm:") else "torchvision"


def _prefixes(keys) -> set[str]:
    """Every chain of wrapper names that starts some key ("", "module.", "module.encoder_q.", ...)."""
    found = {""}
    for key in keys:
        prefix = ""
        for part in key.split(".")[:-1]:
            if part not in WRAPPERS:
                break
            prefix += part + "."
            found.add(prefix)
    return found


def _renamed(weights: dict, prefix: str, target: nn.Module) -> tuple[dict, str | None]:
    """The weights under ``prefix`` without it; keys that start with a Sequential index (lightly's
    ``nn.Sequential(*children)``) take the model's child names."""
    sub = {key[len(prefix) :]: value for key, value in weights.items() if key.startswith(prefix)}
    if not sub or not all(key.split(".")[0].isdigit() for key in sub):
        return sub, None
    children = [name for name, _ in target.named_children()]
    mapped = {}
    for key, value in sub.items():
        index, _, rest = key.partition(".")
        mapped[f"{children[int(index)]}.{rest}" if int(index) < len(children) else key] = value
    return mapped, SEQUENTIAL


def _fits(sub: dict, shapes: dict) -> int:
    return sum(1 for key, value in sub.items() if key in shapes and shapes[key] == value.shape)


def _fill(target: nn.Module, weights: dict | None, report: LoadReport, path: Path) -> None:
    """Loads the best-fitting key family of ``weights`` into ``target``; records the matching in ``report``."""
    weights = weights or {}
    shapes = {key: value.shape for key, value in target.state_dict().items()}
    best = max(
        (_renamed(weights, prefix, target) + (prefix,) for prefix in _prefixes(weights)),
        key=lambda found: (_fits(found[0], shapes), -len(found[2])),
    )
    sub, renamed, prefix = best
    if _fits(sub, shapes) < len(sub) and _is_timm(target):
        sub, renamed = _timm_filtered(sub, target, shapes, renamed)
    report.stripped, report.renamed = prefix, renamed
    report.ignored = _groups([key for key in weights if not key.startswith(prefix)], prefix)
    counted = [key for key in shapes if not key.endswith("num_batches_tracked")]
    fitting = {key: value for key, value in sub.items() if key in shapes and shapes[key] == value.shape}
    report.missing = sorted(key for key in counted if key not in fitting)
    extra = sorted(key for key in sub if key not in fitting)
    report.dropped_head = [key for key in extra if key not in shapes and key.split(".")[0] in HEADS]
    report.unexpected = [key for key in extra if key not in report.dropped_head]
    report.loaded, report.expected = sum(key in fitting for key in counted), len(counted)
    if report.loaded < MIN_MATCHED * report.expected:
        misshapen = [f"{key} {tuple(sub[key].shape)} vs {tuple(shapes[key])}" for key in extra if key in shapes]
        raise ValueError(
            f"{path}: weights do not fit architecture {report.arch!r}: {report.loaded} of the model's "
            f"{report.expected} tensors match (key prefix {prefix!r} stripped; at least {MIN_MATCHED:.0%} needed); "
            f"missing {report.missing[:3]}, unexpected {[k for k in report.unexpected if k not in shapes][:3]}, "
            f"misshapen {misshapen[:2]}: pass the right --arch"
        )
    target.load_state_dict(fitting, strict=False)


def _is_timm(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.")


def _timm_filtered(sub: dict, target: nn.Module, shapes: dict, renamed: str | None) -> tuple[dict, str | None]:
    """The weights through the model's own timm checkpoint filter (it resamples a ViT's position embedding to the
    model's image size and renames keys of the architecture's original code), where that fits more tensors."""
    filter_fn = getattr(sys.modules.get(type(target).__module__), "checkpoint_filter_fn", None)
    if filter_fn is None:
        return sub, renamed
    try:
        filtered = filter_fn(dict(sub), target)
    except Exception:  # the filter does not apply to these weights
        return sub, renamed
    return (filtered, "timm checkpoint filter") if _fits(filtered, shapes) > _fits(sub, shapes) else (sub, renamed)


def _groups(keys: list[str], prefix: str) -> dict[str, int]:
    """Ignored keys grouped by their leading names, down to the first that leaves the chosen prefix."""
    chosen = prefix.split(".")[:-1]
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        depth = next((i for i, part in enumerate(parts[:-1]) if i >= len(chosen) or part != chosen[i]), len(parts) - 1)
        name = ".".join(parts[: depth + 1])
        groups[name] = groups.get(name, 0) + 1
    return dict(sorted(groups.items()))


@dataclass
class LoadedBackbone:
    module: nn.Module  # eval mode; (B, 3, H, W) -> (B, feature_dim)
    feature_dim: int
    arch: str
    cifar_stem: bool
    source: str  # as LoadReport.source
    image_size: int | None = None  # the training view size our checkpoints and exports record
    recipe: str | None = None  # the augmentation recipe they record
    epoch: int | None = None  # completed pretraining epochs, where recorded
    report: LoadReport | None = None


def load_backbone(path: str | Path, *, arch: str | None = None, trust: bool = False) -> LoadedBackbone:
    """``load_model`` of a checkpoint file, as a record (see ``load_model`` for the layouts and errors)."""
    module, report = load_model(Path(path), arch, trust=trust)
    return LoadedBackbone(
        module,
        report.feature_dim,
        report.arch,
        report.cifar_stem,
        report.source,
        image_size=report.image_size,
        recipe=report.recipe,
        epoch=report.epoch,
        report=report,
    )


def export_model(module: nn.Module, report: LoadReport, out: str | Path, *, source: str | Path) -> Path:
    """Writes a loaded backbone (``load_model``'s module and report) to ``out`` as tensors and plain values, with its
    architecture and sizes, so ``load_model(out)`` needs neither ``arch`` nor trust."""
    if report.source in ("module", "random"):
        raise ValueError(f"{source}: only a checkpoint file is exported, not a {report.source} model")
    if report.source == "pickled_module":
        raise ValueError(f"{source}: pass --arch to export a pickled model (the export records its architecture)")
    payload = {
        "arch": report.arch,
        "cifar_stem": report.cifar_stem,
        "feature_dim": report.feature_dim,
        "backbone": module.state_dict(),
        "source_checkpoint": str(source),
        "epoch": report.epoch,
        "recipe": report.recipe,
        "image_size": report.image_size,
        "input_size": report.input_size,
    }
    return atomic_torch_save(payload, out)


def export_backbone(checkpoint: str | Path, out: str | Path, *, arch: str | None = None, trust: bool = False) -> Path:
    """Writes the backbone (no head, key encoder or queue) of any checkpoint ``load_model`` reads to ``out``
    (``export_model``); readable without trust whatever ``trust`` allowed reading."""
    module, report = load_model(Path(checkpoint), arch, trust=trust)
    return export_model(module, report, out, source=checkpoint)


__all__ = [
    "MIN_MATCHED",
    "LoadReport",
    "LoadedBackbone",
    "export_backbone",
    "export_model",
    "file_digest",
    "load_backbone",
    "load_model",
]
