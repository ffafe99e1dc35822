"""The cache folder for generated data, and building a folder so that it appears complete or not at all.

Location: ``$INV_KERNELS_CACHE`` if set, else ``$XDG_CACHE_HOME/inv_kernels``, else ``~/.cache/inv_kernels``.
A set is built in ``<name>.partial-<pid>`` beside its final place, marked as the project's own (``MARKER``) as soon
as it is made, finished with a ``manifest.json``, then renamed to ``<name>``. A folder counts as complete only when its
manifest is there and names the current format, so a generation that was interrupted (an exception, Ctrl-C, a killed
process) never leaves a folder taken as complete. Only folders the project wrote (holding its marker or a manifest of
a set) are ever replaced or removed; anything else in the way is an error naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from inv_kernels.hashing import config_hash
from inv_kernels.io import atomic_write_json

CACHE_ENV = "INV_KERNELS_CACHE"
MANIFEST = "manifest.json"
MARKER = ".inv_kernels-set"  # written first into every set folder the project builds
# Bump when the renderer or a layout changes: old sets are then regenerated rather than reused.
FORMAT_VERSION = 2


def cache_root() -> Path:
    """The cache folder (not created): $INV_KERNELS_CACHE, else $XDG_CACHE_HOME/inv_kernels (an absolute path only,
    as the XDG spec says), else ~/.cache/inv_kernels."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "inv_kernels"


def set_key(config: dict) -> str:
    """12 hex digits naming a generated set: ``config_hash`` of its settings and the current ``FORMAT_VERSION``."""
    return config_hash({**config, "format_version": FORMAT_VERSION}, length=12)


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a complete set at ``folder``, or None when the folder is missing, partial or outdated."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


def is_project_folder(folder: Path) -> bool:
    """Whether ``folder`` is a set folder this project wrote: it holds ``MARKER``, or a set's manifest of any format
    version (sets written before the marker existed)."""
    folder = Path(folder)
    if (folder / MARKER).is_file():
        return True
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"format_version", "counts"} <= manifest.keys()


def check_replaceable(folder: Path) -> None:
    """Checks that nothing is at ``folder``, or a set folder this project wrote (which it may replace).

    Raises:
        FileExistsError: naming ``folder``, when it is a file, a link, or a folder the project did not write.
    """
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise FileExistsError(f"{folder} exists and is not a folder of generated data; refusing to replace it")
    if folder.exists() and not is_project_folder(folder):
        raise FileExistsError(
            f"{folder} exists and was not written by inv_kernels (it holds neither {MANIFEST} nor "
            f"{MARKER}); refusing to replace it: move it away or choose another folder"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(final: Path) -> None:
    """Removes ``<name>.partial-<pid>`` folders left by processes of this machine that no longer run."""
    for partial in final.parent.glob(f"{final.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and is_project_folder(partial):
            shutil.rmtree(partial, ignore_errors=True)


def build_atomically(final: Path, build: Callable[[Path], dict], manifest: dict) -> Path:
    """Makes the complete folder ``final``, calling ``build(tmp_folder) -> counts`` only when it is not there yet.

    Args:
        final: where the set lives once complete.
        build: fills the (existing, empty) folder it is given and returns a dict of counts for the manifest.
        manifest: what to record besides the counts (config, versions); ``format_version`` and ``created`` are added.

    Returns:
        ``final``, complete (with its manifest).

    Raises:
        FileExistsError: ``final`` (or this process's partial folder) is in the way and was not written by the
            project (``check_replaceable``); nothing is created then.
        Whatever ``build`` raises; the partial folder is removed first, and ``final`` is left as it was.
    """
    final = Path(final)
    if read_manifest(final) is not None:
        return final
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    check_replaceable(final)
    check_replaceable(partial)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(final)
    shutil.rmtree(partial, ignore_errors=True)  # left by an earlier process that had this pid
    partial.mkdir()
    try:
        (partial / MARKER).write_text("a set of generated data written by inv_kernels\n")
        counts = build(partial)
        record = {
            **manifest,
            "counts": counts,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(record, partial / MANIFEST)
        if final.exists():
            if read_manifest(final) is not None:  # another process finished first: keep its copy
                shutil.rmtree(partial, ignore_errors=True)
                return final
            check_replaceable(final)
            shutil.rmtree(final)  # an incomplete or outdated set of the project's in the way
        try:
            os.rename(partial, final)
        except OSError:
            if read_manifest(final) is None:
                raise
            shutil.rmtree(partial, ignore_errors=True)  # lost a race to another process: its copy is as good
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final
