"""Files the project writes go through here: written to a temporary name in the same folder, then renamed, so a
crash never leaves a half-written file in place of a good one."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to ``path`` atomically."""
    return _atomic_write(Path(path), lambda handle: torch.save(obj, handle))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """JSON (indented, UTF-8) to ``path`` atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    return _atomic_write(Path(path), lambda handle: handle.write(data))


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Raw bytes to ``path`` atomically."""
    return _atomic_write(Path(path), lambda handle: handle.write(data))


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Checks, creating nothing, that ``path`` is a folder or can be made one, and that it can be written to.

    Raises:
        NotADirectoryError: ``path``, or the nearest of its parents that exists, is not a folder.
        PermissionError: that folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} exists and is not a folder")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path} is not writable: no write permission on {existing}")
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Checks, creating nothing, that a file can be written at ``path`` (not a folder; its folder can be made).

    Raises:
        IsADirectoryError: ``path`` is a folder. NotADirectoryError, PermissionError: as ``check_output_dir`` for its
        parent.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, expected a file name")
    check_output_dir(path.parent, f"{what} {path}: folder")
    return path


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Creates ``path`` if needed and checks a file can be written there; raises PermissionError/NotADirectoryError
    naming the folder, before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise PermissionError(f"{what} {path} is not writable: {error.strerror or error}") from None
    return path
