"""The on-disk feature cache shared by downstream evaluation (``downstream.features``) and invariance measurement
(``measure.cache``).

An entry is one file ``<folder>/<name>-<key>.pt``. The key is ``inv_kernels.hashing.config_hash`` (24 hex digits) of
a config dict naming everything the stored tensors depend on: the model's id (checkpoint file name and SHA-256 prefix,
or ``random:<arch>:seed<s>``), the image list, the preprocessing, and so on. The file holds that config beside
the tensors, so a hand-renamed file or a hash collision is caught on reading. Features are stored in fp16 (fp32 when a
value would overflow fp16). Writes are atomic (``inv_kernels.io``): a crash leaves no partial file. A file that cannot
be read, or that was made for another config, is ignored with a warning; the caller recomputes and overwrites it.

The folder is trusted as it stands (a file planted there is read as features), so it must be private to its user: a
folder the cache creates gets mode 0700, and one that any user can write to draws a warning. When a writer starts on a
folder (``open_cache_folder``; ``write_entry`` calls it at its first write there), the temporaries of writes that were
interrupted are removed (``inv_kernels.io.remove_stale_temporaries``: never one another run is writing now).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from inv_kernels.hashing import config_hash
from inv_kernels.io import atomic_torch_save, remove_stale_temporaries

FP16_MAX = 65504.0
KEY_LENGTH = 24  # hex digits: entries of many models and image lists share a folder
_OPENED: set[Path] = set()  # folders this process has opened for writing


def default_cache_dir() -> Path:
    """``inv_kernels.data.cache.cache_root() / "features"`` ($INV_KERNELS_CACHE honoured); not created."""
    from inv_kernels.data.cache import cache_root

    return cache_root() / "features"


def config_key(config: dict) -> str:
    """The entry key of ``config``: ``config_hash(config, length=KEY_LENGTH)``."""
    return config_hash(config, length=KEY_LENGTH)


def digest_tensors(tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) of named tensors' names, dtypes, shapes and bytes, in name order (e.g. a parameter grid)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}\n".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def to_storage(x: Tensor, dtype: torch.dtype = torch.float16) -> Tensor:
    """x as stored: ``dtype`` on the CPU; float16 falls back to float32 when some |value| exceeds its range.

    Args:
        x: (...) floating tensor, any device.
        dtype: torch.float16 (the default) or torch.float32.

    Returns:
        (...) float16 or float32 CPU tensor.
    """
    if dtype not in (torch.float16, torch.float32):
        raise ValueError(f"to_storage: dtype must be torch.float16 or torch.float32, got {dtype}")
    x = x.detach().cpu()
    if dtype == torch.float16 and (x.numel() == 0 or bool((x.abs() <= FP16_MAX).all())):
        return x.to(torch.float16)
    return x.to(torch.float32)


def open_cache_folder(folder: str | os.PathLike) -> Path:
    """Prepares ``folder`` for a writer: creates it with mode 0700 (private to the user) when missing, warns when any
    user can write to it, and removes the stale temporaries of interrupted writes. Returns the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)  # whatever the umask
    elif folder.stat().st_mode & 0o002:
        warnings.warn(
            f"feature cache folder {str(folder)!r} can be written by any user, and a file "
            f"planted there would be read as features; make it private (chmod 700)",
            stacklevel=3,
        )
    remove_stale_temporaries(folder)
    _OPENED.add(folder.resolve())
    return folder


def entry_path(folder: str | os.PathLike, name: str, config: dict) -> Path:
    """``folder / f"{name}-{config_key(config)}.pt"``."""
    return Path(folder) / f"{name}-{config_key(config)}.pt"


def read_entry(path: str | os.PathLike, config: dict, *, op: str) -> dict | None:
    """The stored dict at ``path`` when it exists, loads, and was made for ``config``; else None.

    A damaged file, or one whose recorded config differs, gives a ``UserWarning`` (prefixed with ``op``) and None, so
    the caller recomputes and overwrites it.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        warnings.warn(
            f"{op}: ignoring unreadable feature cache {str(path)!r} ({type(error).__name__}: {error}); recomputing",
            stacklevel=3,
        )
        return None
    if not isinstance(stored, dict) or stored.get("config") != config:
        warnings.warn(f"{op}: feature cache {str(path)!r} was made for other settings; recomputing", stacklevel=3)
        return None
    return stored


def write_entry(entry: dict, path: str | os.PathLike) -> Path:
    """Writes ``entry`` (a dict holding its ``"config"``, tensors on the CPU) to ``path`` atomically; the first write
    of this process to a folder opens it (``open_cache_folder``)."""
    if "config" not in entry:
        raise ValueError("write_entry: entry must hold its 'config' (read_entry checks it)")
    path = Path(path)
    if path.parent.resolve() not in _OPENED:
        open_cache_folder(path.parent)
    return atomic_torch_save(entry, path)
