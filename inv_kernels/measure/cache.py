"""The feature cache of a measurement run (``inv_kernels.feature_cache`` entries, fp16, atomic writes).

Entries, each keyed by the model id (checkpoint file name + SHA-256 prefix, or ``random:<arch>:seed<s>``), the
forward precision (fp32, or bf16 autocast: ``--precision auto`` on a GPU or a CPU with bfloat16 instructions), whether
BatchNorm was folded into the convolutions, out_size and resize_size, plus:

- ``measure-moments``: the statistics pass's float64 moments (exact, so any shrinkage can be applied to them), keyed by
  the digest of the statistics image list;
- ``measure-clean``: the clean-view features of the synthetic images, keyed by the digest of their list (the sampled
  paths, in order, with repeats) and the sampling seed;
- ``measure-<family>``: the family's view features (n, k, D), keyed as the clean ones plus the family, the mode and a
  digest of its parameter grid;
- ``measure-groups``: the features of a real-world group set's images, keyed by the digest of their list.

Only the main process reads and writes; it tells the others whether an entry was found. Features handed back on a
miss are the stored ones, so a run that computes and a rerun that reads give identical results.

Features are stored in fp16 or fp32 (the storage dtype is part of their keys). fp16 rounding (relative 2^-11 per
value) is amplified by whitening, by about the square root of the statistics' condition number, so the driver's
"auto" choice stores fp16 only for well-conditioned statistics (``FP16_MAX_CONDITION``) and fp32 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from inv_kernels.distributed import DistContext, broadcast_object
from inv_kernels.feature_cache import entry_path, open_cache_folder, read_entry, to_storage, write_entry

CACHE_VERSION = 1
FEATURE_KEYS = ("features",)  # entry fields stored in the storage dtype
STORAGE = {"float16": torch.float16, "float32": torch.float32}
# Above this condition number of the statistics, "auto" stores fp32: at 8e2 fp16 moved family means by <= 4e-5 in
# cosine; at 2e11 (a rank-deficient covariance with a tiny ridge) by up to 9e-3 (docs/MEASURE.md).
FP16_MAX_CONDITION = 1e4


def auto_storage(condition_number: float) -> str:
    """ "float16" for statistics with condition number <= FP16_MAX_CONDITION, else "float32"."""
    return "float16" if condition_number <= FP16_MAX_CONDITION else "float32"


class MeasureCache:
    """Reads and writes a run's entries. ``folder`` None disables the cache (every entry computed, nothing written).
    On construction the main process opens the folder (``feature_cache.open_cache_folder``: created private, stale
    temporaries of interrupted writes removed).

    Args:
        folder: the cache folder, or None.
        base: the config fields every entry shares (model id, precision, sizes).
        ctx: the process's DistContext.
        verbose: print a line per entry read or written (main process only).
        storage: "float16" or "float32", the dtype features are stored in (part of their keys); may be changed
            before the first feature entry (``storage`` attribute).

    Attributes:
        read, written: the names of the entries read from / written to disk by this run, in order.
    """

    def __init__(
        self, folder: str | Path | None, base: dict, ctx: DistContext, *, verbose: bool = True, storage: str = "float16"
    ):
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None and ctx.is_main:
            open_cache_folder(self.folder)
        self.base = {"version": CACHE_VERSION, **base}
        self.ctx, self.verbose = ctx, verbose
        self.storage = storage
        self.read: list[str] = []
        self.written: list[str] = []

    @property
    def storage(self) -> str:
        return self._storage

    @storage.setter
    def storage(self, value: str) -> None:
        if value not in STORAGE:
            raise ValueError(f"MeasureCache: storage must be one of {', '.join(STORAGE)}, got {value!r}")
        self._storage = value

    def say(self, message: str) -> None:
        """Prints ``measure: message`` to stderr (main process, when verbose)."""
        if self.verbose and self.ctx.is_main:
            tqdm.write(f"measure: {message}", file=sys.stderr)  # above any progress bar

    def get(self, name: str, config: dict, compute: Callable[[], dict | None], *, features: bool = True) -> dict | None:
        """The entry ``name`` for ``config``: read on the main process when cached, else ``compute()``.

        Args:
            name: the file name prefix ("measure-rotation").
            config: what the entry depends on beyond ``base`` (JSON-serialisable).
            compute: called on every process when the entry is not cached (it may shard the work and gather it);
                returns the entry's tensors as a dict on the main process (CPU tensors; "features" is stored in
                the storage dtype) and None on the others.
            features: whether the entry holds "features" (its key then names the storage dtype).

        Returns:
            The entry dict on the main process (with "config"); None on the others.
        """
        full = {**self.base, "entry": name, **config, **({"storage": self.storage} if features else {})}
        path = entry_path(self.folder, name, full) if self.folder is not None else None
        stored = None
        if path is not None and self.ctx.is_main:
            stored = read_entry(path, full, op="measure")
        if broadcast_object(self.ctx, stored is not None):
            self.read.append(name)
            self.say(f"read {name} from the feature cache ({path})")
            return stored
        entry = compute()
        if entry is None:
            return None
        entry = {"config": full, **entry}
        if path is not None:
            for key in FEATURE_KEYS:
                if key in entry:
                    entry[key] = to_storage(entry[key], STORAGE[self.storage])
            write_entry(entry, path)
            self.written.append(name)
            self.say(f"cached {name} ({path})")
        return entry

    def summary(self) -> dict:
        """For the results: the folder (None when disabled) and the entries read and written."""
        return {
            "dir": None if self.folder is None else str(self.folder),
            "storage": self.storage,
            "read": self.read,
            "written": self.written,
        }
