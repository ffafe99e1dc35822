"""Checkpoints: reading them safely, and writing pretraining state in the official MoCo layout (loading a model from
any checkpoint layout is ``models.load``).

A pretraining checkpoint is a dict with ``epoch``, ``arch``, ``state_dict`` (keys ``module.encoder_q.*``,
``module.encoder_k.*``, ``module.queue``, ``module.queue_ptr``, as the official code writes under DDP) and
``optimizer``, plus ``inv_kernels``: everything else needed to resume exactly (config, step counters, RNG states).

Every checkpoint is read with ``torch.load(weights_only=True)``, which unpickles only tensors and plain Python values,
so no code from the file runs. The project's checkpoints hold nothing else (RNG states are stored as tensors and plain
values, ``rng_state``), nor do the official MoCo ones or torchvision state dicts. A file that needs full unpickling (a
pickled ``nn.Module``, NumPy arrays as in checkpoints of older versions of this project, any other object) is refused
with ``UntrustedCheckpointError``, unless the caller trusts it: ``trust=True`` in Python, ``--trust-checkpoint`` on the
command line of every entry point that reads checkpoints. A trusted pickled module is read as its state dict (and the
module itself, for a caller that uses it as it is).
"""

import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from inv_kernels.io import atomic_torch_save

LAST = "checkpoint_last.pth.tar"
TRUST_FLAG = "--trust-checkpoint"
TRUST_HELP = (
    "read a checkpoint that only full unpickling reads (a pickled module, or one written by an older version "
    "of inv_kernels): loading it could run code from the file, so give this only for a file you trust"
)


class UntrustedCheckpointError(ValueError):
    """A checkpoint that only full unpickling reads, which could run code from the file: read it only if it is
    trusted (``trust=True``, ``--trust-checkpoint``)."""


def _refused_objects(path: Path, error: Exception) -> list[str] | None:
    """What a weights-only load of ``path`` refused: the names of the objects it holds beyond tensors and plain values,
    [] for a pickle the weights-only reader cannot parse, or None when the file is damaged or no pickle at all."""
    if zipfile.is_zipfile(path):  # the format torch.save writes
        try:
            return torch.serialization.get_unsafe_globals_in_checkpoint(path) or None
        except Exception:  # a damaged archive
            return None
    names = re.findall(r"Unsupported global: GLOBAL (\S+)", str(error))  # torch's legacy format
    if names:
        return names
    with open(path, "rb") as handle:
        return [] if handle.read(1) == pickle.PROTO else None  # a bare pickle stream


def _untrusted(path: Path, objects: list[str]) -> UntrustedCheckpointError:
    risk = "loading it could run code from the file"
    opt_in = f"re-run with {TRUST_FLAG} (trust=True in Python) if you trust it"
    if objects and all(name.startswith("numpy") for name in objects):
        return UntrustedCheckpointError(
            f"checkpoint {path} holds NumPy arrays: it was written by an older version of inv_kernels, or by another "
            f"program; only full unpickling reads it, and {risk}: {opt_in}"
        )
    shown = ", ".join(objects[:4]) + (", ..." if len(objects) > 4 else "")
    what = f"objects other than tensors ({shown})" if objects else "a pickle that is not a torch checkpoint"
    if any(name.startswith(("torch.nn.modules.", "torchvision.models.", "timm.")) for name in objects):
        what = f"a whole pickled model, torch.save(model) ({shown})"
        opt_in += " (or save model.state_dict() instead and give --arch)"
    return UntrustedCheckpointError(
        f"checkpoint {path} holds {what}; only full unpickling reads it, and {risk}: {opt_in}"
    )


def read_checkpoint(path: str | Path, *, trust: bool = False) -> dict:
    """Loads a checkpoint file onto the CPU, with ``torch.load(weights_only=True)`` unless ``trust``.

    Args:
        path: the file.
        trust: unpickle whatever the file holds (it could run code from the file); a pickled ``nn.Module`` is then
            read as ``{"state_dict": its state dict, "module": the module, "arch": its ``arch`` attribute if any}``.

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: a folder.
        UntrustedCheckpointError: (a ValueError) without ``trust``, a file only full unpickling reads; the message
            names the risk and the opt-in.
        ValueError: a damaged file, or one that holds no dict.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as error:  # truncated, not a torch file, refused by the weights-only reader, ...
        refused = None if trust or not isinstance(error, pickle.UnpicklingError) else _refused_objects(path, error)
        if refused is not None:
            raise _untrusted(path, refused) from None
        raise ValueError(f"checkpoint {path} cannot be read ({type(error).__name__}: {_first_line(error)})") from None
    if trust and isinstance(state, nn.Module):
        module = state
        arch = {"arch": module.arch} if isinstance(getattr(module, "arch", None), str) else {}
        state = {"state_dict": module.state_dict(), "module": module, **arch}
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def rng_state() -> dict:
    """The global RNG states (torch CPU and CUDA, Python's ``random``, NumPy's legacy generator) as tensors and plain
    values, which a weights-only load reads back; ``restore_rng_state`` sets them."""
    version, words, gauss = random.getstate()
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": {"version": version, "state": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def restore_rng_state(state: dict) -> None:
    """Sets the global RNG states saved by ``rng_state`` (or, for a trusted checkpoint of an older version, the
    ``random.getstate()`` and ``np.random.get_state()`` tuples it stored)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    python, numpy_state = state["python"], state["numpy"]
    if isinstance(python, dict):
        python = (python["version"], tuple(python["state"].tolist()), python["gauss"])
    random.setstate(python)
    if isinstance(numpy_state, dict):
        numpy_state = (
            numpy_state["algorithm"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)


def moco_state_dict(model: nn.Module) -> dict:
    """The model's state dict with the ``module.`` prefix the official code has under DDP."""
    return {f"module.{key}": value for key, value in model.state_dict().items()}


def strip_module_prefix(state_dict: dict) -> dict:
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def save_pretraining_checkpoint(path: str | Path, *, model, optimizer, epoch: int, extra: dict) -> Path:
    """Writes a pretraining checkpoint atomically. ``epoch`` counts completed epochs, as the official code."""
    state = {
        "epoch": epoch,
        "arch": model.arch,
        "state_dict": moco_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "inv_kernels": extra,
    }
    return atomic_torch_save(state, path)


def __getattr__(name: str):
    """Loading lives in ``models.load``; its names are also found here, where earlier versions kept them."""
    if name in ("LoadedBackbone", "export_backbone", "load_backbone"):
        from inv_kernels.models import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
