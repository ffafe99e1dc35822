"""Two-view MoCo training batches with DALI decoding and one ``fused_augment`` call per batch.

DALI reads and decodes (``fn.readers.file``; ``fn.decoders.image`` on the CPU, or "mixed" on a GPU) and pads each
batch to its largest image (``fn.pad``), handing over the padded (B, Hmax, Wmax, 3) uint8 batch with every image's
(H, W). The torch side draws both views' parameters of the batch (``sample_augment_params``, a generator seeded by
(seed, epoch, rank, step)) and makes all 2B views in one ``fused_augment`` call; the batch keeps those parameters.

Order, sharding and resume: each epoch's order is ``data.sampler.epoch_shares`` (seed, epoch), the one that
``ResumableBatchSampler`` batches, and process ``rank`` of ``world_size`` gets the same share of it (incomplete batches
dropped unless ``drop_last=False``), so both loaders see the same batches of files. The reader receives the shares one
after another and takes its own with ``shard_id=rank, num_shards=world_size``.
DALI's own ``random_shuffle`` is not used: it shuffles within a buffer (1024 files by default), which on a
class-sorted list gives batches of one or two classes, and its order depends on every epoch read before.
``set_epoch(epoch, start_step)`` starts an epoch at any step without reading the batches before it: exact resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from inv_kernels.augment.params import sample_augment_params
from inv_kernels.augment.recipes import Recipe, get_recipe
from inv_kernels.backend import resolve_backend
from inv_kernels.data.dali.common import (
    FolderBackedLoader,
    check_device_id,
    check_folder,
    check_positive_int,
    import_dali,
    to_torch,
)
from inv_kernels.data.folders import ImageFolderIndex
from inv_kernels.data.sampler import epoch_shares
from inv_kernels.ops.fused_augment import fused_augment
from inv_kernels.ops.fused_augment_ref import IMAGENET_MEAN, IMAGENET_STD, OUT_DTYPES

OWNER = "DaliTwoViewLoader"


def batch_seed(seed: int, epoch: int, rank: int, step: int) -> int:
    """The 63-bit seed of the parameter generator of batch ``step`` of ``epoch`` on process ``rank``."""
    return int(np.random.SeedSequence([seed, epoch, rank, step]).generate_state(1, np.uint64)[0]) >> 1


class DaliTwoViewLoader(FolderBackedLoader):
    """Batches of two augmented views of an ImageFolder's images, in the trainer's batch format.

    Args:
        root_or_index: root/<class>/**/<image>, or an ImageFolderIndex of it.
        recipe: a Recipe or anything ``get_recipe`` accepts.
        out_size: S (may be omitted when the recipe's crop op sets it).
        batch_size: images per batch on this process.
        seed: the run's seed (non-negative int).
        rank, world_size: this process and the number of processes (torch.distributed).
        device_id: None: decode and augment on the CPU; a GPU index: "mixed" decode and views on that GPU.
        num_threads: DALI's worker threads.
        drop_last: drop each epoch's incomplete last batch (as ResumableBatchSampler does).
        mean, std, out_dtype: as ``fused_augment``.
        backend: fused_augment's backend ("auto": INV_KERNELS_BACKEND, else the fastest here).

    Each batch is what ``collate_two_views`` returns: {"views": (N, 2, 3, S, S) out_dtype, "params": AugmentParams
    of the 2N views (params[2 n + v] made views[n, v]), "labels": (N,) int64, "indices": (N,) int64 positions in
    ``paths``, "sizes": (N, 2) int64 decoded (H, W), "skipped": 0, "skipped_paths": []}. Files that the up-front
    check leaves out (the images ``TwoViewDataset`` skips: not decodable by PIL, or under 2 x 2 pixels; see
    ``data.dali.common``) never enter a batch: ``skipped`` counts them and ``skipped_files`` lists them with
    the reason.

    Raises:
        ValueError: a bad recipe, size, seed, batch, rank or dtype (before the folder is read); a missing, empty or
            class-less folder, or none usable; batch_size x world_size larger than the decodable images.
        FileNotFoundError, NotADirectoryError: root missing or a file. ImportError: DALI missing.
        RuntimeError: a device_id whose GPU is absent, or a backend that cannot run there.
    """

    kind = "dali"

    def __init__(
        self,
        root_or_index: str | Path | ImageFolderIndex,
        recipe: str | Recipe | list,
        out_size: int | None = None,
        batch_size: int = 256,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device_id: int | None = None,
        num_threads: int = 2,
        drop_last: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        out_dtype: torch.dtype = torch.float32,
        backend: str = "auto",
    ) -> None:
        self.recipe = get_recipe(recipe)
        self.out_size = self.recipe.out_size(out_size)
        self.batch_size = check_positive_int(OWNER, "batch_size", batch_size)
        self.world_size = check_positive_int(OWNER, "world_size", world_size)
        self.num_threads = check_positive_int(OWNER, "num_threads", num_threads)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{OWNER}: seed must be a non-negative int, got {seed!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"{OWNER}: rank must be an int in [0, {world_size}), got {rank!r}")
        if out_dtype not in OUT_DTYPES or len(mean) != 3 or len(std) != 3 or any(v <= 0 for v in std):
            raise ValueError(
                f"{OWNER}: need out_dtype in {OUT_DTYPES} and 3 mean / 3 positive std values, "
                f"got {out_dtype}, mean={mean}, std={std}"
            )
        self.device = check_device_id(device_id, OWNER)
        resolve_backend(backend, self.device, op=f"{OWNER} (fused_augment)")  # an unusable backend fails here
        self.device_id, self.seed, self.rank, self.drop_last = device_id, seed, rank, bool(drop_last)
        self.mean, self.std, self.out_dtype, self.backend = tuple(mean), tuple(std), out_dtype, backend
        blur = self.recipe.get("gaussian_blur")
        self.blur_kernel = blur.kernel if blur is not None else "from_sigma"
        self.folder = check_folder(root_or_index, owner=OWNER, threads=self.num_threads)
        if self.batch_size * self.world_size > len(self.folder):
            raise ValueError(
                f"batch size {self.batch_size} x {self.world_size} process(es) is larger than the "
                f"dataset ({len(self.folder)} images)"
            )
        self._dali = import_dali()
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Selects the epoch that the next iteration reads, starting at batch ``start_step`` of it."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"{OWNER}.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        last = self.batches_per_epoch()
        if isinstance(start_step, bool) or not isinstance(start_step, int) or not 0 <= start_step <= last:
            raise ValueError(f"{OWNER}.set_epoch: start_step must be an int in [0, {last}], got {start_step!r}")
        self.epoch, self.start_step = epoch, start_step

    def batches_per_epoch(self) -> int:
        share = len(self.folder) // self.world_size
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)

    def __len__(self) -> int:
        """Batches left in the selected epoch (from ``start_step``)."""
        return self.batches_per_epoch() - self.start_step

    def _build_pipeline(self, files: list[str], items: list[int]):
        from nvidia.dali import fn, types

        # No random operator runs in DALI (the parameters come from torch), so its seed changes nothing.
        pipe = self._dali.Pipeline(
            batch_size=self.batch_size,
            num_threads=self.num_threads,
            device_id=self.device_id,
            seed=self.seed % 2**31,
            prefetch_queue_depth=2,
        )
        with pipe:
            # "labels" carries each file's position in self.paths, so a batch names its items itself.
            encoded, items_out = fn.readers.file(
                files=files,
                labels=items,
                random_shuffle=False,
                shard_id=self.rank,
                num_shards=self.world_size,
                pad_last_batch=True,
                stick_to_shard=True,
                name="reader",
            )
            images = fn.decoders.image(
                encoded, device="cpu" if self.device_id is None else "mixed", output_type=types.RGB
            )  # (H, W, 3) uint8 each
            sizes = images.shape(dtype=types.INT64)  # (3,) each: H, W, 3
            padded = fn.pad(images, axes=(0, 1), fill_value=0)  # (Hmax, Wmax, 3): the batch's largest
            pipe.set_outputs(padded, sizes, items_out)
        pipe.build()
        return pipe

    def __iter__(self) -> Iterator[dict]:
        shares = epoch_shares(len(self.folder), self.world_size, self.seed, self.epoch)
        count = self.batches_per_epoch() * self.batch_size if self.drop_last else len(shares[0])
        first = self.start_step * self.batch_size
        if first >= count:
            return
        # Equal shares one after another: the reader's shard r is exactly process r's share.
        items = [i for share in shares for i in share[first:count]]
        pipe = self._build_pipeline([self.folder.paths[i] for i in items], items)
        try:
            for step in range(self.start_step, self.batches_per_epoch()):
                padded, sizes, index = pipe.run()
                n = min(self.batch_size, count - step * self.batch_size)  # the padded last batch's real items
                yield self._views(
                    to_torch(padded, self.device)[:n],
                    to_torch(sizes, torch.device("cpu"))[:n, :2],
                    to_torch(index, torch.device("cpu"))[:n, 0].long(),
                    step,
                )
        finally:
            del pipe

    def _views(self, padded: Tensor, sizes: Tensor, indices: Tensor, step: int) -> dict:
        """The batch dict of n decoded images: padded (n, Hmax, Wmax, 3) uint8, sizes (n, 2), indices (n,)."""
        n = padded.shape[0]
        source = torch.arange(n).repeat_interleave(2)  # (2n,): view 2i + v comes from image i, as collate's order
        generator = torch.Generator().manual_seed(batch_seed(self.seed, self.epoch, self.rank, step))
        params = sample_augment_params(self.recipe, sizes[source], generator)  # 2n views
        views = fused_augment(
            padded,
            params,
            self.out_size,
            self.mean,
            self.std,
            self.out_dtype,
            self.blur_kernel,
            sizes=sizes,
            source_index=source,
            layout="NHWC",
            backend=self.backend,
        )  # (2n, 3, S, S)
        labels = torch.tensor([self.folder.labels[i] for i in indices.tolist()], dtype=torch.int64)
        return {
            "views": views.view(n, 2, 3, self.out_size, self.out_size),
            "params": params,
            "labels": labels,
            "indices": indices,
            "sizes": sizes,
            "skipped": 0,
            "skipped_paths": [],
        }
