"""Evaluation batches with DALI: decode, resize the shorter side (antialiased), centre crop S x S and normalise.

The DALI counterpart of torchvision's Resize(R) + CenterCrop(S) + ToTensor + Normalize (R = S by default; 256 / 224
is ImageNet's habit). Every usable file comes out exactly once per pass, in folder order; under torch.distributed
process ``rank`` reads the ``rank``-th contiguous shard (DALI's ``shard_id`` / ``num_shards``). The result differs
slightly from torchvision's: DALI rounds the longer side where torchvision truncates it (375 x 500 -> 224 x 299, not
224 x 298), and when shrinking its antialiasing filter treats the image edge differently: measured on 64 px photos,
at most 1/255 inside a 2-pixel frame, up to 14/255 on it at 64 -> 32 px (tests/pipelines/test_dali_pipelines.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from inv_kernels.augment.reference import IMAGENET_MEAN, IMAGENET_STD
from inv_kernels.data.folders import ImageFolderIndex
from pipelines._dali_common import (
    FolderBackedLoader,
    check_device_id,
    check_folder,
    check_positive_int,
    import_dali,
    to_torch,
)

OWNER = "DaliEvalLoader"


def shard_bounds(num_items: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """[start, end) of DALI's contiguous shard ``shard_id`` of ``num_items`` (its rule: floor(n * k / shards))."""
    return num_items * shard_id // num_shards, num_items * (shard_id + 1) // num_shards


class DaliEvalLoader(FolderBackedLoader):
    """Centre-cropped, normalised images of an ImageFolder, one pass per iteration.

    Args:
        root_or_index: root/<class>/**/<image>, or an ImageFolderIndex of it.
        out_size: S, the side of the centre crop.
        batch_size: images per batch.
        resize_size: the shorter side before cropping (default S).
        rank, world_size: this process's shard of the files.
        device_id: None: the CPU path; a GPU index: "mixed" decode, resize and normalise on that GPU.
        num_threads: DALI's worker threads.
        mean, std: 3 per-channel normalisation values in [0, 1] units.

    Each batch is {"images": (N, 3, S, S) float32 on the CPU or the GPU, "labels": (N,) int64, "indices": (N,) int64
    positions in ``paths``}; the last batch may be shorter. Files that fail the up-front check (not decodable by
    PIL, or under 2 x 2 pixels: the rule of every loader, ``inv_kernels.data.folders.load_image``) are skipped
    and counted (``skipped``, ``skipped_files``).

    Raises:
        ValueError: a bad size, batch, rank, mean or std; a missing, empty or class-less folder, or none usable.
        FileNotFoundError, NotADirectoryError: root missing or a file. ImportError: DALI missing.
        RuntimeError: a device_id whose GPU is absent.
    """

    def __init__(self, root_or_index: str | Path | ImageFolderIndex, out_size: int, batch_size: int = 256, *,
                 resize_size: int | None = None, rank: int = 0, world_size: int = 1, device_id: int | None = None,
                 num_threads: int = 2, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.out_size = check_positive_int(OWNER, "out_size", out_size)
        self.resize_size = check_positive_int(OWNER, "resize_size", out_size if resize_size is None else resize_size)
        if self.resize_size < self.out_size:
            raise ValueError(f"{OWNER}: resize_size {self.resize_size} is smaller than the crop {self.out_size}")
        self.batch_size = check_positive_int(OWNER, "batch_size", batch_size)
        self.world_size = check_positive_int(OWNER, "world_size", world_size)
        self.num_threads = check_positive_int(OWNER, "num_threads", num_threads)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"{OWNER}: rank must be an int in [0, {world_size}), got {rank!r}")
        if len(mean) != 3 or len(std) != 3 or any(v <= 0 for v in std):
            raise ValueError(f"{OWNER}: need 3 mean and 3 positive std values, got mean={mean}, std={std}")
        self.device = check_device_id(device_id, OWNER)
        self.device_id, self.rank, self.mean, self.std = device_id, rank, tuple(mean), tuple(std)
        self.folder = check_folder(root_or_index, owner=OWNER, threads=self.num_threads)
        self._dali = import_dali()

    def _count(self) -> int:
        start, end = shard_bounds(len(self.folder), self.rank, self.world_size)
        return end - start

    def __len__(self) -> int:
        """Batches of this process's shard."""
        return -(-self._count() // self.batch_size)

    def _build_pipeline(self):
        from nvidia.dali import fn, types

        gpu = self.device_id is not None
        pipe = self._dali.Pipeline(batch_size=self.batch_size, num_threads=self.num_threads,
                                   device_id=self.device_id, seed=0, prefetch_queue_depth=2)
        with pipe:
            encoded, items = fn.readers.file(files=list(self.folder.paths), labels=list(range(len(self.folder))),
                                             random_shuffle=False, shard_id=self.rank, num_shards=self.world_size,
                                             pad_last_batch=True, stick_to_shard=True, name="reader")
            images = fn.decoders.image(encoded, device="mixed" if gpu else "cpu", output_type=types.RGB)
            images = fn.resize(images, resize_shorter=self.resize_size, antialias=True,
                               interp_type=types.INTERP_LINEAR)  # (R', R'', 3) uint8, shorter side R
            images = fn.crop_mirror_normalize(
                images, crop=(self.out_size, self.out_size), crop_pos_x=0.5, crop_pos_y=0.5,
                mean=[255 * m for m in self.mean], std=[255 * s for s in self.std], dtype=types.FLOAT,
                output_layout="CHW")  # (3, S, S) float32
            pipe.set_outputs(images, items)
        pipe.build()
        return pipe

    def __iter__(self) -> Iterator[dict]:
        count = self._count()
        pipe = self._build_pipeline()
        try:
            for b in range(len(self)):
                images, items = pipe.run()
                n = min(self.batch_size, count - b * self.batch_size)  # the padded last batch's real images
                indices = to_torch(items, torch.device("cpu"))[:n, 0].long()
                labels = torch.tensor([self.folder.labels[i] for i in indices.tolist()], dtype=torch.int64)
                yield {"images": to_torch(images, self.device)[:n], "labels": labels, "indices": indices}
        finally:
            del pipe
