"""Files the project writes go through here: written to a temporary name in the same folder, then renamed, so a
crash never leaves a half-written file in place of a good one.

A temporary is named ``.<final name>.<8 random characters>.tmp`` (``TEMPORARY_NAME``; ``tempfile.mkstemp`` picks the
characters, so the name cannot be guessed in advance) and its writer holds an exclusive ``flock`` on it until it has
been renamed. A write interrupted by a kill leaves its temporary behind; ``remove_stale_temporaries`` removes those when
a run starts.
"""

import errno
import fcntl
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what _atomic_write names its temporaries
STALE_AFTER_S = 600.0  # a temporary untouched for this long, and locked by no process, is left from a dead write


def _atomic_write(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # in flight until renamed: remove_stale_temporaries spares it
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(handle.fileno(), 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a crash right after could otherwise lose it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot sync a folder
            raise
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Removes the temporaries that interrupted atomic writes left in ``folder`` (not in its subfolders).

    Only regular files named as this module names its temporaries (``TEMPORARY_NAME``) are candidates, and one is
    removed only when it was last modified more than ``older_than_s`` seconds ago and no process holds its lock. A
    writer locks its temporary right after creating it and keeps the lock until the rename, and a lock ends with its
    process, so a temporary being written now -- by this run or by another one sharing the folder, such as a feature
    cache -- is never removed; the age covers the instant between creating and locking, and filesystems that do not
    share locks between machines.

    Returns:
        The removed files, sorted; none when ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for entry in os.scandir(folder):
        if not TEMPORARY_NAME.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: being written now
                os.unlink(entry.path)
            finally:
                os.close(fd)
        except OSError:  # being written, removed by another run first, or not ours to remove
            continue
        removed.append(Path(entry.path))
    return sorted(removed)


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
