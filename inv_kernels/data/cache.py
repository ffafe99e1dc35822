"""The cache folder for generated data, and building a folder so that it appears complete or not at all.

Location: ``$INV_KERNELS_CACHE`` if set, else ``$XDG_CACHE_HOME/inv_kernels``, else ``~/.cache/inv_kernels``.
A set is built in ``<name>.partial-<pid>`` beside its final place, finished with a ``manifest.json``, then renamed
to ``<name>``. A folder counts as complete only when its manifest is there and names the current format, so a
generation that was interrupted (an exception, Ctrl-C, a killed process) never leaves a folder taken as complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "INV_KERNELS_CACHE"
MANIFEST = "manifest.json"
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


def config_hash(config: dict) -> str:
    """A short stable hash (12 hex digits) of a JSON-serialisable config, independent of key order."""
    text = json.dumps({**config, "format_version": FORMAT_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a complete set at ``folder``, or None when the folder is missing, partial or outdated."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


def write_json_atomic(path: Path, data: dict) -> None:
    """Writes ``data`` as JSON to a temporary name beside ``path``, then renames it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
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
        Whatever ``build`` raises; the partial folder is removed first, and ``final`` is left as it was.
    """
    final = Path(final)
    if read_manifest(final) is not None:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(final)
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        counts = build(partial)
        record = {**manifest, "counts": counts, "format_version": FORMAT_VERSION,
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json_atomic(partial / MANIFEST, record)
        if final.exists():
            if read_manifest(final) is not None:  # another process finished first: keep its copy
                shutil.rmtree(partial, ignore_errors=True)
                return final
            shutil.rmtree(final)  # an incomplete or outdated set in the way
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
