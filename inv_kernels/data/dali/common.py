"""What a DALI loader needs: the folder scan that leaves unusable files out, DALI import and device choice, and
the copy of DALI outputs into torch tensors.

DALI decodes a whole batch in one operator, so one bad file would stop the epoch, and its decoder carries on past
damage that PIL refuses (a JPEG whose scan holds a stray marker is decoded with warnings). So every file is checked
once, up front, by the rule the torchvision loaders follow (``inv_kernels.data.folders.load_image``: a known format
by content, a complete PIL decode, at least 2 x 2 pixels), and a file that fails is left out of the list, counted and
logged; both pretraining loaders thus use the same files. The check decodes every file once, on the loader's
``num_threads`` threads, and is remembered for the process (``unusable_files``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from inv_kernels.data.folders import ImageFolderIndex, describe_skipped, unusable_files

LOG = logging.getLogger("inv_kernels.data.dali")
DALI_INSTALL = "pip install nvidia-dali-cuda130"


@dataclass(frozen=True)
class CheckedFolder:
    """The usable files of an ImageFolder: ``paths[i]`` has class ``labels[i]``; ``skipped`` lists
    (path, reason) of the files left out."""

    root: Path
    classes: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    skipped: tuple[tuple[str, str], ...]

    def __len__(self) -> int:
        return len(self.paths)


class FolderBackedLoader:
    """What a loader over a ``CheckedFolder`` (``self.folder``) tells about its files."""

    folder: CheckedFolder

    @property
    def paths(self) -> tuple[str, ...]:
        return self.folder.paths

    @property
    def classes(self) -> tuple[str, ...]:
        return self.folder.classes

    @property
    def skipped(self) -> int:
        """How many files of the folder were left out by the up-front check (unusable images)."""
        return len(self.folder.skipped)

    @property
    def skipped_files(self) -> tuple[tuple[str, str], ...]:
        """(path, reason) of each file left out."""
        return self.folder.skipped


def check_folder(root_or_index: str | Path | ImageFolderIndex, *, owner: str, threads: int = 1) -> CheckedFolder:
    """Scans an ImageFolder (or takes its index) and leaves out the files ``load_image`` refuses.

    Args:
        root_or_index: root/<class>/**/<image>, or an ImageFolderIndex of it.
        owner: the caller's name, for messages.
        threads: threads decoding the files.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: as ImageFolderIndex (missing, empty, no class folders);
            ValueError also when no file is usable.
    """
    index = root_or_index if isinstance(root_or_index, ImageFolderIndex) else ImageFolderIndex(root_or_index)
    skipped = unusable_files(index.paths, threads=threads)
    left_out = {path for path, _ in skipped}
    kept = [(path, label) for path, label in zip(index.paths, index.labels) if path not in left_out]
    if skipped:
        LOG.warning("%s: %s (of %d files in %s)", owner, describe_skipped(skipped), len(index), index.root)
    if not kept:
        raise ValueError(
            f"{owner}: none of the {len(index)} files in {str(index.root)!r} is a usable image "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    return CheckedFolder(
        index.root, index.classes, tuple(p for p, _ in kept), tuple(y for _, y in kept), tuple(skipped)
    )


def import_dali():
    """The ``nvidia.dali`` module; raises ImportError with the install command when DALI is missing."""
    try:
        import nvidia.dali as dali
    except ImportError as error:
        raise ImportError(f"NVIDIA DALI is not installed ({error}); install it with `{DALI_INSTALL}`") from None
    return dali


def check_device_id(device_id: int | None, owner: str) -> torch.device:
    """The torch device that a pipeline with ``device_id`` delivers to: the CPU for None, else that GPU.

    Raises:
        ValueError: device_id not None or a non-negative int. RuntimeError: a GPU id without that GPU.
    """
    if device_id is None:
        return torch.device("cpu")
    if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
        raise ValueError(f"{owner}: device_id must be None (CPU decode) or a GPU index, got {device_id!r}")
    if not torch.cuda.is_available() or device_id >= torch.cuda.device_count():
        raise RuntimeError(
            f"{owner}: device_id={device_id} needs CUDA GPU {device_id}, but this machine has "
            f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}; use device_id=None"
        )
    return torch.device("cuda", device_id)


def check_positive_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def to_torch(output, device: torch.device) -> Tensor:
    """Copies one dense DALI output batch (TensorListCPU or TensorListGPU) into a new torch tensor on ``device``."""
    from nvidia.dali.backend import TensorListGPU
    from nvidia.dali.plugin.pytorch import feed_ndarray
    from nvidia.dali.types import DALIDataType

    torch_dtypes = {
        DALIDataType.UINT8: torch.uint8,
        DALIDataType.INT32: torch.int32,
        DALIDataType.INT64: torch.int64,
        DALIDataType.FLOAT: torch.float32,
    }

    if isinstance(output, TensorListGPU) and device.type == "cpu":
        output = output.as_cpu()
    tensor = output.as_tensor()
    dtype = torch_dtypes[tensor.dtype]
    out = torch.empty(tensor.shape(), dtype=dtype, device=device)
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else None
    feed_ndarray(tensor, out, cuda_stream=stream)
    return out


def decode_images(paths: list[str], device_id: int | None = None, num_threads: int = 2) -> list[Tensor]:
    """Decodes files with DALI's image decoder, as the loaders do (the reference for comparisons).

    Args:
        paths: image files.
        device_id: None (CPU decoder) or a GPU index ("mixed" decoder).

    Returns:
        One (3, H, W) uint8 CPU tensor per path, in order.
    """
    dali = import_dali()
    from nvidia.dali import fn, types

    check_device_id(device_id, "decode_images")
    pipe = dali.Pipeline(batch_size=1, num_threads=num_threads, device_id=device_id, seed=0)
    with pipe:
        encoded, _ = fn.readers.file(files=list(paths), labels=list(range(len(paths))), random_shuffle=False)
        pipe.set_outputs(
            fn.decoders.image(encoded, device="cpu" if device_id is None else "mixed", output_type=types.RGB)
        )
    pipe.build()
    return [to_torch(pipe.run()[0], torch.device("cpu"))[0].permute(2, 0, 1).contiguous() for _ in paths]
